import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
