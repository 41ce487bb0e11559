"""The exercise framework: verdicts for None, wrong and right answers. Each chapter's checkers are tested in
tests/test_exercises_chNN.py, each rejecting a wrong answer."""

import pytest
import torch

from ddpm_utils import exercises


@pytest.fixture
def toy_checker():
    key = "00.1"
    exercises._CHECKERS.pop(key, None)
    exercises.checker(key)(lambda answer: exercises.close(answer, 2.0))
    yield key
    exercises._CHECKERS.pop(key, None)


def test_check_verdicts(toy_checker, capsys):
    assert exercises.check(toy_checker, None) is False
    assert "not attempted" in capsys.readouterr().out
    assert exercises.check(toy_checker, 2.5) is False
    assert "off by" in capsys.readouterr().out
    assert exercises.check(toy_checker, 2.0) is True
    assert exercises.check(toy_checker, "two") is False


def test_unknown_key_is_named():
    with pytest.raises(KeyError, match="99.9"):
        exercises.check("99.9", 1.0)


def test_same_function_rejects_wrong_values_and_shapes():
    x = (torch.linspace(-1, 1, 5),)
    assert exercises.same_function(torch.sin, torch.sin, [x])[0]
    assert not exercises.same_function(torch.cos, torch.sin, [x])[0]
    assert not exercises.same_function(lambda v: v.sum(), torch.sin, [x])[0]
    assert not exercises.same_function(3.0, torch.sin, [x])[0]
