"""Image grids: tiles land where they should, and the separators read as light lines, not black ones."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_utils import plotting  # noqa: E402


def test_image_grid_places_each_tile_and_fills_the_rest_with_pad_value():
    images = torch.stack([torch.full((1, 2, 2), v) for v in (-1.0, 0.0, 1.0)])  # 3 tiles: 0, 0.5, 1 once scaled
    grid = plotting.image_grid(images, nrow=2, pad=1, pad_value=0.25)
    assert grid.shape == (7, 7, 1)  # 2 rows x 2 columns of 2x2 tiles with 1-pixel pads
    g = grid[..., 0]
    assert torch.all(g[1:3, 1:3] == 0.0) and torch.all(g[1:3, 4:6] == 0.5) and torch.all(g[4:6, 1:3] == 1.0)
    assert torch.all(g[4:6, 4:6] == 0.25)  # the missing fourth tile
    assert torch.all(g[0] == 0.25) and torch.all(g[:, 3] == 0.25)  # separators


def test_saved_digit_grid_has_white_background_dark_strokes_and_light_separators(tmp_path):
    images = -torch.ones(4, 1, 4, 4)
    images[:, :, 1:3, 1:3] = 1.0  # a stroke in the middle of each tile
    path = tmp_path / "grid.png"
    plotting.save_grid(images, path, nrow=2)
    png = plt.imread(path)[..., :3].mean(-1)  # grey level in [0, 1], 1 = white
    assert png[1, 1] == pytest.approx(1.0, abs=0.01)  # background
    assert png[2, 2] == pytest.approx(0.0, abs=0.01)  # stroke
    assert 0.6 < png[0, 3] < 0.95  # the separator: light grey, neither black nor invisible


def test_shown_digit_grid_uses_the_same_light_separators():
    images = -torch.ones(4, 1, 4, 4)
    ax = plotting.show_grid(images, nrow=2)
    shown = ax.get_images()[0]
    rgba = shown.to_rgba(shown.get_array())
    assert rgba[0, 0, :3].mean() > 0.6 and rgba[1, 1, :3].mean() == pytest.approx(1.0, abs=0.01)
    plt.close(ax.figure)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"images": torch.zeros(1, 8, 8)}, "B, C, H, W"),
        ({"images": torch.zeros(2, 1, 8, 8), "pad_value": 2.0}, "pad_value"),
        ({"images": torch.zeros(2, 1, 8, 8), "nrow": -1}, "nrow"),
        ({"images": torch.zeros(2, 1, 8, 8), "pad": -1}, "pad must"),
    ],
)
def test_image_grid_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.image_grid(**kwargs)
