import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_in_sync_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("notebooks", "test"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    wanted = {"pytorch" if n == "torch" else n for n in wanted}
    env = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    listed = {_name(m) for m in re.findall(r"^\s*-\s+([A-Za-z][\w.\-]*[^\n]*)$", env, re.M)}
    missing = wanted - listed
    assert not missing, f"environment.yml lacks {sorted(missing)}"
    extra = listed - wanted - {"python", "pip", "pip:", "cpuonly", "-e"}
    assert not extra, f"environment.yml lists {sorted(extra)} which pyproject.toml does not"


def test_readme_names_the_commands():
    readme = (ROOT / "README.md").read_text()
    for cmd in ("make course", "make test", "make notebooks", "conda env create -f environment.yml"):
        assert cmd in readme, cmd
