import math
import sys

import pytest
import torch

from ddpm_utils import DIGITS_LEVELS, from_model_range, load_digits, load_toy, to_model_range
from ddpm_utils.data import toy_gaussian_mixture
from ddpm_utils.extras.datasets import load_cifar10, load_dataset, load_mnist


def test_digits_split_is_fixed_disjoint_and_complete():
    train, y_train = load_digits("train", return_labels=True)
    test, y_test = load_digits("test", return_labels=True)
    everything = load_digits("all")
    assert train.shape[1:] == (1, 8, 8) and train.dtype == torch.float32
    assert len(train) + len(test) == len(everything) == 1797
    assert len(test) == round(0.2 * 1797)
    torch.testing.assert_close(load_digits("train"), train)  # deterministic
    assert set(y_test.tolist()) == set(range(10))
    # every train image is found in "all" and no image is in both splits (compare as byte strings)
    key = lambda x: {bytes(v.numpy().tobytes()) for v in x}  # noqa: E731
    assert len(key(train) & key(test)) < 5  # the raw data has a few exact duplicates


def test_digits_lie_on_17_levels_in_model_range():
    x = load_digits("all")
    assert x.min() == -1 and x.max() == 1
    values = torch.unique(x)
    assert len(values) == DIGITS_LEVELS
    torch.testing.assert_close(values, torch.linspace(-1, 1, DIGITS_LEVELS))
    torch.testing.assert_close(from_model_range(x, 16).round(), from_model_range(x, 16), rtol=0, atol=1e-5)
    torch.testing.assert_close(to_model_range(from_model_range(x, 16), 16), x)


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar100")


@pytest.mark.parametrize("name", ["moons", "swiss_roll", "gaussian_mixture"])
def test_toy_sets(name):
    x = load_toy(name, 1000, seed=1)
    assert x.shape == (1000, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    torch.testing.assert_close(load_toy(name, 1000, seed=1), x)
    assert 0.2 < x.std().item() < 2.0
    with pytest.raises(ValueError, match="unknown toy"):
        load_toy("spiral")
    for n in (0, -5, 2.5):  # -5 failed inside torch ("negative dimension"); 0 gave an empty set
        with pytest.raises(ValueError, match="n must be a positive int"):
            load_toy(name, n)


def test_gaussian_mixture_density_matches_torch_distributions():
    gm = toy_gaussian_mixture()
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(gm.weights),
        torch.distributions.Independent(torch.distributions.Normal(gm.means, gm.stds[:, None].expand(-1, 2)), 1),
    )
    x = torch.randn(50, 2, dtype=torch.float64)
    torch.testing.assert_close(gm.log_prob(x), mix.log_prob(x))
    # and the density integrates to 1 on a grid
    grid = torch.linspace(-2, 2, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    dens = gm.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp()
    assert abs(dens.sum().item() * (4 / 800) ** 2 - 1) < 1e-3
    assert math.isclose(gm.weights.sum().item(), 1.0)


def test_mnist_without_files_names_the_embedded_default(tmp_path):
    with pytest.raises((ImportError, RuntimeError), match="load_digits"):
        load_mnist("mnist", root=str(tmp_path), download=False)


def write_fake_cifar10(root, per_file: int = 3, seed: int = 0):
    """CIFAR-10's python layout in miniature: six pickled batches (protocol 2, bytes keys, as the official
    files), each a dict of `per_file` rows of 3,072 uint8 values (1,024 red, green, blue, row by row)."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows[name] = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        batch = {b"batch_label": name.encode(), b"labels": [0] * per_file, b"data": rows[name]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return rows


def test_cifar10_reads_the_official_layout_into_model_range(tmp_path):
    rows = write_fake_cifar10(tmp_path)
    train, test = load_cifar10("train", root=str(tmp_path)), load_dataset("cifar10", "test", root=str(tmp_path))
    assert train.shape == (15, 3, 32, 32) and test.shape == (3, 3, 32, 32) and train.dtype == torch.float32
    # brute force: pixel (row i, column j) of channel c is value c * 1024 + 32 i + j of its row, mapped to [-1, 1]
    first = rows["data_batch_1"][0]
    for c, i, j in ((0, 0, 0), (1, 5, 7), (2, 31, 31), (0, 31, 0)):
        assert train[0, c, i, j].item() == pytest.approx(2 * int(first[c * 1024 + 32 * i + j]) / 255 - 1)
    last = rows["data_batch_5"][-1]  # the five training files in order
    assert train[-1, 2, 3, 4].item() == pytest.approx(2 * int(last[2 * 1024 + 32 * 3 + 4]) / 255 - 1)
    assert train.min() >= -1 and train.max() <= 1


def test_cifar10_refuses_missing_corrupt_and_unsafe_files(tmp_path):
    import pickle

    with pytest.raises(RuntimeError, match="load_digits"):  # missing: says where the files go and what needs none
        load_cifar10("train", root=str(tmp_path))
    with pytest.raises(ValueError, match="split"):
        load_cifar10("valid", root=str(tmp_path))
    write_fake_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="corrupt"):
        load_cifar10("test", root=str(tmp_path))

    class RunsCode:  # what a tampered file could hold: unpickling it would call os.getcwd (or anything)
        def __reduce__(self):
            import os

            return (os.getcwd, ())

    batch.write_bytes(pickle.dumps({b"data": RunsCode()}, protocol=2))
    with pytest.raises(ValueError, match="refusing"):
        load_cifar10("test", root=str(tmp_path))
    batch.write_bytes(pickle.dumps({b"data": [[0] * 100]}, protocol=2))  # readable, but not 3,072 values a row
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        load_cifar10("test", root=str(tmp_path))


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_download_needs_torchvision_and_says_so(tmp_path, monkeypatch, name):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(ImportError, match="datasets"):  # names the extra that installs it
        load_dataset(name, "train", root=str(tmp_path), download=True)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_download_asks_torchvision_for_the_named_set_and_reports_its_failure(tmp_path, monkeypatch, name):
    """With download=True and the files absent, the loader calls torchvision.datasets.<set>(root, train, download)
    (a stand-in module here: no internet) and wraps what goes wrong in an error that names the data set."""
    import types

    calls = []

    def dataset(cls_name):
        def fetch(root, train, download):
            calls.append((cls_name, root, train, download))
            raise OSError("no route to host")

        return fetch

    wanted = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}[name]
    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(**{wanted: dataset(wanted)}))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    with pytest.raises(RuntimeError, match=f"could not download {wanted} into .*no route to host"):
        load_dataset(name, "test", root=str(tmp_path), download=True)
    assert calls == [(wanted, str(tmp_path), False, True)]


def write_idx_images(path, images, gzipped=False):
    """MNIST's IDX format: magic 2051, count, rows, columns (big-endian), then the pixels as bytes."""
    import gzip
    import struct

    raw = struct.pack(">IIII", 2051, *images.shape) + images.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if gzipped else open)(path, "wb") as f:
        f.write(raw)


def test_mnist_reads_idx_files_plain_or_gzipped_without_torchvision(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    train, test = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (5, 3))
    write_idx_images(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", train)
    write_idx_images(tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte.gz", test, gzipped=True)
    x = load_mnist("mnist", "train", root=str(tmp_path))
    y = load_dataset("fashion_mnist", "test", root=str(tmp_path))
    assert x.shape == (5, 1, 28, 28) and y.shape == (3, 1, 28, 28)
    for img, i, j in ((0, 0, 0), (4, 27, 27), (2, 13, 5)):  # pixel (i, j) is byte 28 i + j of its image
        assert x[img, 0, i, j].item() == pytest.approx(2 * int(train[img].reshape(-1)[28 * i + j]) / 255 - 1)
    assert y[1, 0, 3, 20].item() == pytest.approx(2 * int(test[1, 3, 20]) / 255 - 1)
    # damaged files are named, not read as images
    bad = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x01" + bytes(12))  # a label file's magic (2049)
    with pytest.raises(ValueError, match="not an IDX image file"):
        load_mnist("mnist", "test", root=str(tmp_path))
    write_idx_images(bad, test)
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist("mnist", "test", root=str(tmp_path))
    cut = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"  # a download cut off mid-file
    write_idx_images(cut, train, gzipped=True)
    cut.write_bytes(cut.read_bytes()[:-20])
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").unlink()
    with pytest.raises(ValueError, match="cannot be read"):
        load_mnist("mnist", "train", root=str(tmp_path))
