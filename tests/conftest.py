from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def documented_texts() -> dict[str, str]:
    """What learners read, by file: the READMEs, the Makefile, and each notebook's Markdown (not its code)."""
    import nbformat

    texts = {name: (ROOT / name).read_text() for name in ("README.md", "Makefile", "benchmarks/README.md")}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        texts[path.name] = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    return texts
