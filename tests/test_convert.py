"""Converting users' images to a model's input: colour, polarity, aspect, antialiased resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from umeta.data.convert import (
    border_median,
    convert_images,
    pad_to_aspect,
    resize,
    to_grayscale,
)
from umeta.errors import UmetaError


def _strokes(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """n images (n, 1, size, size) of a few random bright bars on 0."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(3):
            r, c = torch.randint(size // 4, 3 * size // 4, (2,), generator=gen).tolist()
            x[i, 0, r:r + size // 8, c - size // 4:c + size // 4] = 1.0
    return x


def test_grayscale_is_pillow_luminance():
    rgb = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    ours = to_grayscale(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)[0]
    pillow = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    assert np.abs(ours.numpy() - pillow).max() <= 1 / 255 + 1e-6


def test_area_resize_is_block_mean_and_keeps_the_mean():
    x = torch.rand(2, 1, 56, 42, generator=torch.Generator().manual_seed(1))
    y = resize(x.clone(), (28, 21))
    blocks = x.view(2, 1, 28, 2, 21, 2).mean((3, 5))
    assert torch.allclose(y, blocks, atol=1e-6)
    z = resize(x.clone(), (17, 13))  # non-integer ratios: exact area averaging keeps the mean
    assert torch.allclose(z.mean((2, 3)), x.mean((2, 3)), atol=1e-5)


def test_enlarging_is_bilinear():
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    expected = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear",
                                               align_corners=False)
    assert torch.allclose(resize(x.clone(), (28, 28)), expected)


def test_padding_centres_the_image_with_each_images_background():
    x = torch.ones(2, 1, 10, 20)
    out = pad_to_aspect(x, 1.0, torch.tensor([0.25, 0.75]))
    assert out.shape == (2, 1, 20, 20)
    assert torch.all(out[:, :, 5:15] == 1)
    assert torch.all(out[0, :, :5] == 0.25) and torch.all(out[1, :, 15:] == 0.75)


def test_dark_ink_on_white_rgb_photos_are_converted_and_inverted():
    ink = _strokes(37, 64)
    rgb = (1.0 - ink).expand(-1, 3, -1, -1).clone()
    rgb[:, 0] *= 0.9  # a tint, so the images are colour
    out = convert_images((rgb * 255).round().to(torch.uint8), (1, 28, 28))
    assert out.inverted and out.images.shape == (37, 1, 28, 28)
    assert out.note.startswith("converted 37 RGB images of 64x64 to grayscale 28x28, inverted "
                               "(light background detected: border median")
    expected = resize(ink, (28, 28))
    assert (out.images - expected).abs().max() < 0.12  # only the tint's luminance differs
    assert float(out.images[..., :3, :].max()) < 0.15  # the background became dark


def test_light_ink_is_kept_and_overrides_win():
    ink = _strokes(5, 28)
    kept = convert_images(ink, (1, 28, 28))
    assert not kept.inverted and torch.equal(kept.images, ink)
    assert kept.note == ("converted 5 grayscale images of 28x28 to grayscale 28x28, not inverted "
                         "(dark background detected: border median 0.00)")
    forced = convert_images(ink, (1, 28, 28), invert=True)
    assert forced.inverted and torch.equal(forced.images, 1 - ink) and "(--invert)" in forced.note
    kept_dark = convert_images(1 - ink, (1, 28, 28), invert=False)
    assert not kept_dark.inverted and "(--no-invert)" in kept_dark.note
    for_dark_ink_model = convert_images(ink, (1, 28, 28), ink="dark")
    assert for_dark_ink_model.inverted


def test_images_of_several_sizes_and_a_colour_model():
    images = [torch.zeros(20, 30), torch.zeros(1, 64, 64), torch.zeros(3, 40, 40)]
    images[0][5:15, 10:20] = 1
    out = convert_images(images, (3, 32, 32))
    assert out.images.shape == (3, 3, 32, 32)
    assert out.note.startswith("converted 3 grayscale images of sizes 30x20 to 64x64 to RGB "
                               "32x32, padded to 32:32 with the background")
    # the 30x20 image was padded top and bottom (5 rows each), not squashed: its square stays
    first = out.images[0, 0]
    rows = (first > 0.5).any(1).nonzero().squeeze(1)
    cols = (first > 0.5).any(0).nonzero().squeeze(1)
    assert abs(len(rows) - len(cols)) <= 1


def test_border_median_reads_the_frame():
    x = torch.zeros(1, 1, 20, 20)
    x[..., 2:18, 2:18] = 1.0  # everything but a 2-pixel frame
    assert float(border_median(x)) == 0.0
    assert float(border_median(1 - x)) == 1.0


@pytest.mark.parametrize("bad", [torch.rand(2, 2, 8, 8), torch.rand(8, 8),
                                 torch.full((2, 1, 4, 4), 2.0),
                                 torch.zeros(2, 1, 4, 4, dtype=torch.int32), []])
def test_bad_inputs_raise_one_line_errors(bad):
    with pytest.raises(UmetaError):
        convert_images(bad, (1, 28, 28))


def test_bad_model_shape_raises():
    with pytest.raises(UmetaError, match="image_shape"):
        convert_images(torch.zeros(2, 1, 8, 8), (2, 28, 28))
