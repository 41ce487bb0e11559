import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_in_sync_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env_file = (ROOT / "environment.yml").read_text()
    python = re.search(r"^\s*-\s+python=(\d+\.\d+)", env_file, re.M).group(1)
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in ("notebooks", "test"):
        requirements += [Requirement(r) for r in project["optional-dependencies"][extra]]
    # what pip would install for the environment's Python (tomli, say, only below 3.11)
    wanted = {r.name.lower() for r in requirements if r.marker is None or r.marker.evaluate({"python_version": python})}
    wanted = {"pytorch" if n == "torch" else n for n in wanted}
    env = env_file.split("dependencies:", 1)[1]
    listed = {_name(m) for m in re.findall(r"^\s*-\s+([A-Za-z][\w.\-]*[^\n]*)$", env, re.M)}
    missing = wanted - listed
    assert not missing, f"environment.yml lacks {sorted(missing)}"
    extra = listed - wanted - {"python", "pip", "pip:", "pytorch-cpu", "-e"}
    assert not extra, f"environment.yml lists {sorted(extra)} which pyproject.toml does not"


def test_readme_names_the_commands():
    readme = (ROOT / "README.md").read_text()
    for cmd in ("make course", "make test", "make notebooks", "conda env create -f environment.yml"):
        assert cmd in readme, cmd


def test_an_older_pytorch_is_refused_by_name_and_the_bound_matches_pyproject():
    """ddpm_utils refuses PyTorch < 2.4 at import (2.3.1's AdamW has no fused CPU kernel: measured), with the
    same bound as pyproject.toml's requirement."""
    import pytest

    import ddpm_utils

    requirement = next(
        r
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if _name(r) == "torch"
    )
    assert requirement == "torch>=" + ".".join(map(str, ddpm_utils.MIN_TORCH))
    for version in ("2.3.1+cu121", "2.2.0", "1.13.1"):
        with pytest.raises(ImportError, match=re.escape(f"needs PyTorch 2.4 or newer; this environment has {version}")):
            ddpm_utils._requirements.check_torch(version)
    for version in ("2.4.0", "2.4.1+cpu", "2.13.0+cpu", "2.14.0a0+git1234", "3.0.0"):
        ddpm_utils._requirements.check_torch(version)


def test_lowest_requirements_pin_each_floor_of_pyproject():
    """`make test-lowest` installs what tools/lowest_requirements.py prints: every runtime and test requirement
    at the lowest release its '>=' bound allows, markers kept, so the floors are what gets tested."""
    import pytest

    sys.path.insert(0, str(ROOT / "tools"))
    from lowest_requirements import lowest, lowest_requirements

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    pins = lowest_requirements()
    assert len(pins) == len(declared)
    for requirement, pin in zip(declared, pins):
        req, pinned = Requirement(requirement), Requirement(pin)
        (floor,) = [s.version for s in req.specifier]
        assert pinned.name == req.name and str(pinned.specifier) == f"=={floor}.*" and pinned.marker == req.marker
    assert "torch==2.4.*" in pins
    assert lowest("tomli>=2.0; python_version < '3.11'") == 'tomli==2.0.*; python_version < "3.11"'
    for unbounded in ("torch", "numpy>=1.24,<3", "scipy<2"):
        with pytest.raises(ValueError, match="exactly one '>=' bound"):
            lowest(unbounded)


def test_an_installed_copy_carries_the_shipped_checkpoints(tmp_path):
    """`pip install .` (not -e) or a wheel: the package alone holds the pretrained digits model and the classifier
    behind FD_digits, and a copy installed elsewhere and imported away from the repository loads both. Built from a
    copy of the sources, so that the build leaves nothing in the repository."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "ddpm_utils", src / "ddpm_utils", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)], check=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"ddpm_utils/checkpoints/digits.pt", "ddpm_utils/checkpoints/digits_classifier.pt"} <= names
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True)
    code = (
        "import ddpm_utils as du\n"
        "from ddpm_utils import metrics\n"
        "model, schedule = du.load_pretrained('digits')\n"
        "assert metrics.SHIPPED_CLASSIFIER.is_file(), metrics.SHIPPED_CLASSIFIER\n"
        "metrics.digits_classifier()\n"
        "print(du.__file__, du.pretrained.pretrained_path('digits'), sum(p.numel() for p in model.parameters()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "DDPM_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    module, checkpoint, size = out.stdout.split()
    assert Path(module).is_relative_to(site) and Path(checkpoint).is_relative_to(site), out.stdout
    assert int(size) == 701_345
    assert not (tmp_path / "cache").exists()  # the shipped classifier was used, none trained


def test_every_documented_library_name_exists(documented_texts):
    """Each `du.…` / `ddpm_utils.…` name in the READMEs and the notebooks' text resolves (functions, classes,
    modules), and each keyword shown in `TrainConfig(…=…)` / `UNetConfig(…=…)` is a field: renaming one fails here,
    not in a learner's notebook."""
    import dataclasses
    import importlib

    import ddpm_utils as du

    names, fields = set(), set()
    for where, text in documented_texts.items():
        names |= {(where, m) for m in re.findall(r"\b(?:du|ddpm_utils)((?:\.[A-Za-z_]\w*)+)", text)}
        fields |= {(where, *m) for m in re.findall(r"\b((?:extras\.)?TrainConfig|UNetConfig)\((\w+)=", text)}
    for where, dotted in names:
        obj = du
        for part in dotted.strip(".").split("."):
            if hasattr(obj, part):
                obj = getattr(obj, part)
            else:  # only a submodule that the package's __init__ does not import may be missing as an attribute
                assert hasattr(obj, "__path__"), f"{where} names ddpm_utils{dotted}, which does not exist"
                obj = importlib.import_module(f"{obj.__name__}.{part}")
    for where, cls, field in fields:
        config = du.extras.TrainConfig if cls == "extras.TrainConfig" else getattr(du, cls)
        assert field in {f.name for f in dataclasses.fields(config)}, f"{where}: {cls}({field}=...)"
    assert len(names) >= 30 and len(fields) >= 3, (len(names), len(fields))  # the regexes still find the docs
