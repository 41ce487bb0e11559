"""The committed notebooks were executed top to bottom, store no errors, and carry no metadata noise.

nbval (configured in pyproject.toml) re-executes each notebook and compares its checked cells; this
file checks what a reader sees on GitHub: the stored outputs.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from notebook_hygiene import NOTEBOOKS, execution_problems, metadata_problems  # noqa: E402


def test_there_are_notebooks():
    assert NOTEBOOKS, "no numbered notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stored_outputs_are_clean(path):
    assert execution_problems(path) == []
    assert metadata_problems(path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_states_run_time_and_has_summary(path):
    text = path.read_text()
    assert "2-core CPU" in text, "each notebook states its run time on a 2-core CPU"
    assert "Exercises" in text and "Summary" in text
