"""Contrast stretch and ink bounding-box framing, against hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from umeta.data.standardize import (
    OMNIGLOT_MARGIN,
    frame_ink,
    ink_boxes,
    standardize_ink,
    stretch_contrast,
)
from umeta.errors import UmetaError


def test_stretch_maps_each_image_onto_0_1_and_leaves_blank_images():
    x = torch.stack([torch.full((1, 4, 4), 0.2), torch.full((1, 4, 4), 0.3)])
    x[0, 0, 1, 1] = 0.6
    y = stretch_contrast(x)
    assert float(y[0].min()) == 0.0 and float(y[0].max()) == pytest.approx(1.0)
    assert y[0, 0, 1, 1] == pytest.approx(1.0) and y[0, 0, 0, 0] == 0.0
    assert torch.equal(y[1], x[1])


def test_ink_boxes_by_hand():
    x = torch.zeros(3, 1, 10, 12)
    x[0, 0, 2:5, 3:9] = 1.0
    x[1, 0, 7, 11] = 0.5
    boxes = ink_boxes(x, threshold=0.2)
    assert boxes.tolist() == [[2, 3, 5, 9], [7, 11, 8, 12], [0, 0, 10, 12]]  # last: blank


def test_identity_window_without_oversampling_is_exact():
    x = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(frame_ink(x, margin=0.0, threshold=-1.0, oversample=1), x, atol=1e-6)


def test_framing_centres_and_scales_the_ink_box():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 1:9, 18:26] = 1.0  # an 8x8 block in the top-right corner
    y = frame_ink(x, margin=0.25, max_zoom=10.0)
    box = ink_boxes(y, threshold=0.5)[0].tolist()
    # longer side 8 of 28 -> 1 - 2 * 0.25 = half the frame: 14 pixels, centred
    assert box == [7, 7, 21, 21]
    assert y[0, 0, 10:18, 10:18].min() > 0.99 and y[0, 0, :5].max() == 0


def test_ink_that_fills_the_frame_is_shrunk_to_the_margin():
    x = torch.ones(1, 1, 28, 28)
    y = frame_ink(x)
    top, left, bottom, right = ink_boxes(y, threshold=0.5)[0].tolist()
    assert bottom - top == pytest.approx((1 - 2 * OMNIGLOT_MARGIN) * 28, abs=1)
    assert right - left == bottom - top


def test_zoom_is_capped():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 13:15, 13:15] = 1.0
    top, _, bottom, _ = ink_boxes(frame_ink(x, max_zoom=2.0), threshold=0.5)[0].tolist()
    assert bottom - top == 4


def test_standardize_takes_uint8_and_is_stable():
    gen = torch.Generator().manual_seed(3)
    x = torch.zeros(4, 1, 28, 28)
    for i in range(4):
        r, c = torch.randint(2, 14, (2,), generator=gen).tolist()
        x[i, 0, r:r + 10, c:c + 4] = 0.5 + 0.1 * i
    once = standardize_ink((x * 255).round().to(torch.uint8))
    assert once.dtype == torch.float32 and once.min() >= 0 and once.max() <= 1
    twice = standardize_ink(once)
    assert (ink_boxes(twice, 0.5) - ink_boxes(once, 0.5)).abs().max() <= 1


def test_bad_arguments_raise():
    with pytest.raises(UmetaError):
        frame_ink(torch.zeros(1, 1, 8, 8), margin=0.5)
    with pytest.raises(UmetaError):
        stretch_contrast(torch.zeros(8, 8))
