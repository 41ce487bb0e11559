"""Print pip requirements that pin every dependency of pyproject.toml (runtime and test extra) to the lowest
release its bound allows: `name>=X.Y` becomes `name==X.Y.*`, environment markers kept. `make test-lowest`
installs them into a separate venv and runs the tests, so that the floors pyproject.toml states are checked
rather than assumed (README, "Which PyTorch").

    python tools/lowest_requirements.py            # one requirement per line
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def lowest(requirement: str) -> str:
    """'numpy>=1.24' -> 'numpy==1.24.*'; markers kept; a requirement without a single lower bound is refused."""
    req = Requirement(requirement)
    floors = [s.version for s in req.specifier if s.operator == ">="]
    if len(floors) != 1 or len(req.specifier) != 1:
        raise ValueError(f"{requirement!r}: expected exactly one '>=' bound")
    pinned = f"{req.name}=={floors[0]}.*"
    return f"{pinned}; {req.marker}" if req.marker else pinned


def lowest_requirements(pyproject: Path = ROOT / "pyproject.toml", extras: tuple[str, ...] = ("test",)) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return [lowest(r) for r in requirements]


if __name__ == "__main__":
    sys.stdout.write("\n".join(lowest_requirements()) + "\n")
