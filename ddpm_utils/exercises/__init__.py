"""Checkers for the chapters' exercises: ``du.exercises.check("03.2", answer)``.

Each chapter's checkers live in ``chNN.py`` beside this file and register themselves with
``@checker("NN.k")``. A checker takes the learner's answer and returns ``(ok, message)``; ``check``
prints the verdict and returns ``ok``, so a solution cell can end in ``assert check(...)``.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable

import torch

_CHECKERS: dict[str, Callable[[object], tuple[bool, str]]] = {}


def checker(key: str):
    """Register ``fn(answer) -> (ok, message)`` as the checker of exercise ``key`` (e.g. "03.2")."""

    def register(fn):
        if key in _CHECKERS:
            raise ValueError(f"exercise {key!r} has two checkers")
        _CHECKERS[key] = fn
        return fn

    return register


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("ch"):
            importlib.import_module(f"{__name__}.{info.name}")


def keys() -> list[str]:
    """Every exercise that has a checker."""
    _load_all()
    return sorted(_CHECKERS)


def check(key: str, answer) -> bool:
    """Check the answer to exercise ``key``; print what is right or wrong and return True if it is right."""
    _load_all()
    if key not in _CHECKERS:
        raise KeyError(f"no checker for exercise {key!r}; known: {', '.join(sorted(_CHECKERS))}")
    if answer is None or answer is ...:
        print(f"Exercise {key}: not attempted yet (replace None with your answer).")
        return False
    try:
        ok, message = _CHECKERS[key](answer)
    except Exception as exc:  # a learner's function that raises is a wrong answer, not a crash
        ok, message = False, f"your answer raised {type(exc).__name__}: {exc}"
    print(f"Exercise {key}: {'correct' if ok else 'not yet'}. {message}")
    return ok


# Helpers shared by the chapters' checkers.


def close(
    answer, expected: float, rtol: float = 1e-3, atol: float = 0.0, what: str = "your number"
) -> tuple[bool, str]:
    """A number within ``atol + rtol * |expected|`` of ``expected``."""
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return False, f"expected a number, got {type(answer).__name__}"
    if not math.isfinite(value):
        return False, f"{what} is {value}"
    tol = atol + rtol * abs(expected)
    if abs(value - expected) <= tol:
        return True, f"{what} {value:.6g} matches {expected:.6g}."
    return False, f"{what} {value:.6g} is off by {value - expected:+.3g} (tolerance {tol:.2g})."


def same_function(fn, reference, inputs: list[tuple], rtol: float = 1e-5, atol: float = 1e-6) -> tuple[bool, str]:
    """``fn(*args)`` equals ``reference(*args)`` for every argument tuple in ``inputs``."""
    if not callable(fn):
        return False, f"expected a function, got {type(fn).__name__}"
    for args in inputs:
        got, want = fn(*args), reference(*args)
        got = torch.as_tensor(got, dtype=torch.as_tensor(want).dtype)
        want = torch.as_tensor(want)
        if got.shape != want.shape:
            shapes = [tuple(getattr(a, "shape", ())) for a in args]
            return False, f"on inputs of shapes {shapes}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        if not torch.allclose(got, want, rtol=rtol, atol=atol):
            err = (got - want).abs().max().item()
            return False, f"wrong values: largest error {err:.3g} on one of the test inputs"
    return True, f"agrees with the reference on {len(inputs)} test inputs."
