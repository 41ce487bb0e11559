"""MNIST, Fashion-MNIST and CIFAR-10 from their files (the course's chapters use the embedded digits).

Images are scaled to [-1, 1] as `data.to_model_range` does: 8-bit images lie on K = 256 levels.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from ..data import load_digits, to_model_range

__all__ = ["load_mnist", "load_cifar10", "DATASETS", "load_dataset"]


MNIST_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's layout: root/<folder>/raw/
MNIST_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}  # also read gzipped (.gz)


def _download(dataset: str, root: str, split: str, by_hand: str) -> None:
    """Fetch one of torchvision's data sets (`torchvision.datasets.<dataset>`: MNIST, FashionMNIST, CIFAR10) into
    `root`, where the readers below find its files; torchvision is the optional `datasets` extra."""
    try:
        import torchvision
    except ImportError as exc:
        raise ImportError(
            f"downloading {dataset} needs torchvision: pip install 'ddpm-from-scratch[datasets]', or {by_hand}"
        ) from exc
    try:
        getattr(torchvision.datasets, dataset)(root=root, train=split == "train", download=True)
    except Exception as exc:  # URLError offline, RuntimeError on a failed checksum
        raise RuntimeError(f"could not download {dataset} into {root!r} ({exc})") from exc


def _read_idx_images(path: Path) -> np.ndarray:
    """The images of an IDX file (MNIST's format): a big-endian header (magic 2051, count, rows, columns), then
    one unsigned byte per pixel, row by row. Gzipped files (.gz) are read as they come."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        try:
            raw = f.read()
        except (OSError, EOFError) as exc:  # a damaged or cut-off gzip stream
            raise ValueError(f"{str(path)!r} cannot be read ({exc})") from exc
    if len(raw) < 16 or struct.unpack(">I", raw[:4])[0] != 2051:
        raise ValueError(f"{str(path)!r} is not an IDX image file (MNIST's format)")
    n, rows, cols = struct.unpack(">III", raw[4:16])
    if len(raw) != 16 + n * rows * cols:
        raise ValueError(
            f"{str(path)!r} is truncated or corrupt: {len(raw) - 16} bytes for {n} images of {rows}x{cols}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def load_mnist(name: str = "mnist", split: str = "train", root: str = "data", download: bool = False) -> torch.Tensor:
    """MNIST or Fashion-MNIST, (N, 1, 28, 28) in [-1, 1], read from the raw IDX files under `root`.

    The files go where torchvision puts them (`root/MNIST/raw/train-images-idx3-ubyte`, or `FashionMNIST`; gzipped
    or not), and are read without torchvision. With `download=True` and internet, torchvision (the optional
    `datasets` extra) fetches them first.
    """
    if name not in MNIST_FOLDERS:
        raise ValueError(f"name must be 'mnist' or 'fashion_mnist', got {name!r}")
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    raw = Path(root) / MNIST_FOLDERS[name] / "raw"

    def found() -> list[Path]:
        return [p for p in (raw / MNIST_FILES[split], raw / f"{MNIST_FILES[split]}.gz") if p.is_file()]

    if download and not found():
        _download(
            "MNIST" if name == "mnist" else "FashionMNIST",
            root,
            split,
            f"copy its raw files into {str(raw)!r} yourself (or use the embedded default, ddpm_utils.load_digits())",
        )
    if not found():
        raise RuntimeError(
            f"{name}'s {split} images ({MNIST_FILES[split]}, gzipped or not) are not in {str(raw)!r}. Copy the "
            "dataset's raw files there, pass download=True (--download on the command line) with internet, or use "
            "the embedded default ddpm_utils.load_digits(), which needs no download."
        )
    images = _read_idx_images(found()[0])
    return to_model_range(torch.from_numpy(images.copy()).float()[:, None], 255.0)


CIFAR10_FOLDER = "cifar-10-batches-py"  # what the official python archive (cifar-10-python.tar.gz) unpacks to
CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class _ArrayUnpickler(pickle.Unpickler):
    """Reads pickles of plain containers and numpy arrays only, as CIFAR-10's files are: anything else in a file
    (which could run code while it is read) is refused, in the spirit of `torch.load(weights_only=True)`."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: a CIFAR-10 file holds only arrays and lists")
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):  # the files' name; numpy 2 moved it
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def _read_cifar10_batch(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{str(path)!r} is not a CIFAR-10 batch file or is corrupt ({exc})") from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{str(path)!r} holds data of shape {data.shape}, not (N, 3072): not a CIFAR-10 batch")
    return data.reshape(-1, 3, 32, 32)  # each row: 1,024 red, then green, then blue values, row by row


def load_cifar10(split: str = "train", root: str = "data", download: bool = False) -> torch.Tensor:
    """CIFAR-10 (Krizhevsky 2009): 50,000 training or 10,000 test 32×32 colour images, (N, 3, 32, 32) in [-1, 1].

    Reads the official python version unpacked under `root` (`root/cifar-10-batches-py/data_batch_1`, ...,
    `test_batch`). With `download=True` and internet, torchvision (the optional `datasets` extra) fetches
    and checks it first. The files are pickles; only arrays and lists are accepted from them.
    """
    if split not in CIFAR10_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(root) / CIFAR10_FOLDER
    if download and not all((folder / name).is_file() for name in CIFAR10_FILES[split]):
        _download("CIFAR10", root, split, f"unpack cifar-10-python.tar.gz under {root!r} yourself")
    missing = [name for name in CIFAR10_FILES[split] if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(
            f"CIFAR-10's {split} files {missing} are not in {str(folder)!r}. Unpack the official python version "
            f"(cifar-10-python.tar.gz) under {root!r}, pass download=True (--download on the command line) with "
            "internet, or use the embedded default ddpm_utils.load_digits(), which needs no download."
        )
    images = np.concatenate([_read_cifar10_batch(folder / name) for name in CIFAR10_FILES[split]])
    return to_model_range(torch.from_numpy(images).float(), 255.0)


DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")


def load_dataset(name: str, split: str = "train", **kwargs) -> torch.Tensor:
    """Images by name: 'digits' (default, embedded), 'mnist', 'fashion_mnist' or 'cifar10' (optional files)."""
    if name == "digits":
        return load_digits(split, **kwargs)
    if name in ("mnist", "fashion_mnist"):
        return load_mnist(name, split, **kwargs)
    if name == "cifar10":
        return load_cifar10(split, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
