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


def images(n: int = 64, seed: int = 0) -> torch.Tensor:
    """n random 8x8 one-channel images in [-1, 1]."""
    return torch.rand(n, 1, 8, 8, generator=generator(seed)) * 2 - 1


def params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def draw(data: torch.Tensor, n: int, num_steps: int, seed: int):
    """Lines 2-4 of Algorithm 1 written out, in the order the Trainer draws them from its generator:
    (x0, t, eps, index)."""
    g = generator(seed)
    index = torch.randint(0, len(data), (n,), generator=g)
    t = torch.randint(0, num_steps, (n,), generator=g)
    return data[index], t, torch.randn((n, *data.shape[1:]), generator=g, dtype=data.dtype), index
