"""The committed notebooks were executed top to bottom, store no errors, carry no metadata noise, and read well.

nbval (configured in pyproject.toml) re-executes each notebook and compares its checked cells; this
file checks what a reader sees on GitHub or on opening the file: the stored outputs (tools/notebook_hygiene.py
lists the rules; tests/test_notebook_hygiene.py shows each refusing a notebook that breaks it).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from notebook_hygiene import NOTEBOOKS, execution_problems, metadata_problems, reader_problems  # noqa: E402


def test_there_are_notebooks():
    assert NOTEBOOKS, "no numbered notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stored_outputs_are_clean(path):
    assert execution_problems(path) == []
    assert metadata_problems(path) == []
    assert reader_problems(path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_states_run_time_and_has_summary(path):
    text = path.read_text()
    assert "2-core CPU" in text, "each notebook states its run time on a 2-core CPU"
    assert "Exercises" in text and "Summary" in text
