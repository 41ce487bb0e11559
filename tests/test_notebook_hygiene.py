"""Each rule of tools/notebook_hygiene.py rejects a crafted notebook that breaks it, and tidy() repairs what it can."""

import base64
import io
import sys
from pathlib import Path

import matplotlib
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from notebook_hygiene import (  # noqa: E402
    KERNELSPEC,
    WIDGET_VIEW,
    execution_problems,
    metadata_problems,
    png_size,
    reader_problems,
    tidy,
)

matplotlib.use("Agg")


def png(width: int, height: int) -> str:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def image_output(width=640, height=480, alt="Figure: a test pattern."):
    metadata = {"image/png": {"alt": alt}} if alt else {}
    return new_output(
        "display_data", data={"image/png": png(width, height), "text/plain": "<Figure>"}, metadata=metadata
    )


WIDGET = new_output(
    "display_data",
    data={
        WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "text/plain": "interactive(children=(IntSlider(value=0, description='t', max=250), Output()), ...)",
    },
)
FUNCTION = new_output("execute_result", data={"text/plain": "<function __main__.show_step(t=0)>"}, execution_count=2)
PLAYER = new_output("display_data", data={"text/html": "<div><img id='f'><script>new Animation()</script></div>"})


def notebook(*cells, kernelspec=KERNELSPEC):
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = dict(kernelspec)
    count = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
        cell.id = str(index)  # as nbstripout numbers them
    return nb


def write(tmp_path, nb) -> Path:
    path = tmp_path / "01_test.ipynb"
    nbformat.write(nb, path)
    return path


def clean_notebook():
    return notebook(
        new_markdown_cell("# A chapter\nRun time: about 1 s on a 2-core CPU."),
        new_code_cell("x = 1", outputs=[image_output()]),
        new_markdown_cell("Run the next cell to get the slider."),
        new_code_cell("_ = widgets.interact(show, t=(0, 9))"),
    )


def test_png_size_reads_the_header():
    assert png_size(png(640, 120)) == (640, 120)


def test_a_clean_notebook_passes(tmp_path):
    path = write(tmp_path, clean_notebook())
    assert execution_problems(path) == []
    assert metadata_problems(path) == []
    assert reader_problems(path) == []


def test_wrong_kernelspec_is_refused(tmp_path):
    nb = clean_notebook()
    nb.metadata["kernelspec"]["display_name"] = "Python 3"
    (problem,) = reader_problems(write(tmp_path, nb))
    assert "kernelspec" in problem and "modified" in problem


def test_a_stored_widget_view_is_refused(tmp_path):
    nb = clean_notebook()
    nb.cells[3].outputs = [WIDGET]
    (problem,) = reader_problems(write(tmp_path, nb))
    assert "cell 3 stores a widget view" in problem


def test_widget_text_without_the_view_is_refused(tmp_path):
    nb = clean_notebook()
    nb.cells[3].outputs = [new_output("display_data", data={"text/plain": WIDGET.data["text/plain"]})]
    (problem,) = reader_problems(write(tmp_path, nb))
    assert "cell 3 stores a widget view" in problem


def test_a_trailing_function_repr_is_refused(tmp_path):
    nb = clean_notebook()
    nb.cells[3].outputs = [FUNCTION]
    (problem,) = reader_problems(write(tmp_path, nb))
    assert "<function __main__.show_step(t=0)>" in problem and "_ = widgets.interact" in problem


@pytest.mark.parametrize(("width", "height"), [(297, 300), (640, 73)])
def test_a_tiny_figure_is_refused(tmp_path, width, height):
    nb = clean_notebook()
    nb.cells[1].outputs = [image_output(width, height)]
    (problem,) = reader_problems(write(tmp_path, nb))
    assert f"{width}x{height} px figure, too small" in problem


def test_a_figure_without_alt_text_is_refused(tmp_path):
    nb = clean_notebook()
    nb.cells[1].outputs = [image_output(alt=None)]
    (problem,) = reader_problems(write(tmp_path, nb))
    assert "cell 1 stores a figure without alternative text" in problem


def test_figure_alt_describes_a_figure_by_its_titles_and_labels():
    import matplotlib.pyplot as plt
    from figure_alt import describe

    fig, (left, right) = plt.subplots(1, 2)
    fig.suptitle("Forward process")
    left.imshow([[0, 1], [1, 0]])
    left.set_title("$x_t$, t = 10")
    right.plot([1, 2])
    right.set_xlabel("t")
    right.set_ylabel("KL")
    alt = describe(fig)
    plt.close(fig)
    assert alt == "Figure (2 panels): Forward process. panel 1: x_t, t = 10 (image); panel 2: KL against t."


def test_a_narrow_strip_of_panels_is_refused(tmp_path):
    nb = clean_notebook()
    nb.cells[1].outputs = [image_output(400, 150)]
    (problem,) = reader_problems(write(tmp_path, nb))
    assert "400x150 px strip of panels" in problem
    nb.cells[1].outputs = [image_output(500, 150)]
    assert reader_problems(write(tmp_path, nb)) == []


def player_notebook(note="Trust the notebook (or run the cell) to play it; the strip below shows the same frames."):
    return notebook(
        new_markdown_cell(note),
        new_code_cell("HTML(anim.to_jshtml())", outputs=[PLAYER]),
        new_code_cell("show_strip()", outputs=[image_output(900, 200)]),
    )


def test_a_player_with_a_strip_and_a_note_passes(tmp_path):
    assert reader_problems(write(tmp_path, player_notebook())) == []


def test_a_player_without_a_static_image_is_refused(tmp_path):
    nb = player_notebook()
    nb.cells[2].outputs = []
    (problem,) = reader_problems(write(tmp_path, nb))
    assert "needs scripts" in problem and "no static image" in problem


def test_a_player_without_a_note_on_trust_is_refused(tmp_path):
    (problem,) = reader_problems(write(tmp_path, player_notebook(note="An animation of the reverse process.")))
    assert "needs scripts" in problem and "trust" in problem


def test_tidy_repairs_kernelspec_and_widget_outputs_and_keeps_static_ones(tmp_path):
    nb = clean_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    figure = image_output()
    nb.cells[3].outputs = [WIDGET, FUNCTION, figure]
    path = write(tmp_path, nb)
    assert len(reader_problems(path)) == 3
    tidy(nb)
    assert nb.cells[3].outputs == [figure]
    assert reader_problems(write(tmp_path, nb)) == []


def test_tidy_keeps_a_function_repr_that_no_widget_produced(tmp_path):
    nb = clean_notebook()
    nb.cells[3].outputs = [FUNCTION]
    tidy(nb)
    assert nb.cells[3].outputs == [FUNCTION]  # the check still refuses it: the source must change
