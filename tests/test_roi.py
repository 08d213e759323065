"""roi.fit, the upright crop MoveNet runs on: every input pixel holds the image at the grid position fit reports,
so keypoints projected through that grid land where the model saw them."""

from __future__ import annotations

import numpy as np
import pytest

from piposer.estimators.roi import Roi, fit, letterbox_roi


def ramp(width: int, height: int) -> np.ndarray:
    """An image whose pixel (x, y) holds (x, y, 0): smoothing and bilinear sampling leave a ramp exact."""
    x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([x, y, np.zeros_like(x)])


@pytest.mark.parametrize("width, height, roi, side, mirror", [
    (640, 425, None, 192, False),  # a photo letterboxed: one Gaussian halving, then a 1.67x resize
    (1280, 720, None, 256, False),  # a 2x2-mean halving and a Gaussian one
    (1920, 1080, Roi(1800.3, 100.7, 591.2), 192, False),  # a SinglePose region hanging off the corner
    (1920, 1080, Roi(700.3, 500.7, 491.2), 256, True),  # the mirror image's region, no halving
    (640, 425, None, 192, True),
])
def test_crop_pixels_sit_on_the_grid_it_reports(width, height, roi, side, mirror):
    out = np.full((side, side, 3), 7, np.float32)
    grid = fit(ramp(width, height), roi or letterbox_roi(width, height), out, mirror)
    i, j = np.meshgrid(np.arange(side), np.arange(side))
    at = grid.project(np.dstack([i, j]).astype(np.float64))
    if mirror:  # the grid is in the mirror image's pixels: its x is width - 1 - the image's
        at[..., 0] = width - 1 - at[..., 0]
    margin = 3 * np.array([grid.sx, grid.sy])  # the halvings' filters reach past the frame's edge there
    inside = ((at > margin) & (at < np.array([width - 1, height - 1]) - margin)).all(axis=2)
    outside = ((at < -margin / 3) | (at > np.array([width - 1, height - 1]) + margin / 3)).any(axis=2)
    assert inside.mean() > 0.4
    np.testing.assert_allclose(out[..., :2][inside], at[inside], atol=1e-3)
    assert (out[outside] == 0).all() and outside.any() == (roi is None or roi.cx > 1000)  # padding is black
    assert grid.sx == pytest.approx(grid.sy, rel=0.01)  # snapping to whole pixels bends the aspect by < 1 %
