import math

import pytest
import torch

from umeta.errors import UmetaError
from umeta.tasks.augment import (PSCO_OMNIGLOT, UMTRA_OMNIGLOT, Augment, affine_warp, as_augment,
                                 translate)


def images(b=8, c=2, h=12, w=12, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


ALL_ON = Augment(crop_scale=(0.3, 1.0), rotate=15, zoom=(0.8, 1.2), shear=10, flip=0.5, shift=2,
                 dropout=0.1)


@pytest.mark.parametrize("aug", [Augment(), ALL_ON, UMTRA_OMNIGLOT, PSCO_OMNIGLOT])
def test_shape_dtype_and_seeded_determinism(aug):
    x = images(h=10, w=14)
    a, b = aug(x, gen(3)), aug(x, gen(3))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    if not aug.is_identity:
        assert not torch.equal(a, aug(x, gen(4)))


def test_zero_strengths_are_the_identity_and_draw_nothing():
    x, g = images(), gen(5)
    before = g.get_state()
    assert torch.equal(Augment()(x, g), x)
    assert torch.equal(g.get_state(), before)
    assert Augment(crop_scale=(1, 1), zoom=(1, 1)).is_identity


def test_translate_matches_a_hand_loop():
    x = images(b=3, h=6, w=7)
    dy, dx = torch.tensor([2, -1, 0]), torch.tensor([-3, 0, 6])
    out = translate(x, dy, dx)
    ref = torch.zeros_like(x)
    for b in range(3):
        for i in range(6):
            for j in range(7):
                si, sj = i - int(dy[b]), j - int(dx[b])
                if 0 <= si < 6 and 0 <= sj < 7:
                    ref[b, :, i, j] = x[b, :, si, sj]
    assert torch.equal(out, ref)


def test_shift_moves_content_by_at_most_k_and_reaches_k():
    k = 3
    x = torch.zeros(400, 1, 15, 15)
    x[:, :, 7, 7] = 1.0  # one ink pixel in the centre
    out = Augment(shift=k)(x, gen(1))
    pos = out.flatten(1).argmax(1)
    dy, dx = pos // 15 - 7, pos % 15 - 7
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(400))  # moved exactly, nothing blurred
    assert dy.abs().max() == k and dx.abs().max() == k
    assert set(dy.tolist()) == set(range(-k, k + 1))


def test_flip_probability_one_is_a_mirror():
    x = images()
    assert torch.equal(Augment(flip=1.0)(x, gen()), x.flip(-1))


def test_dropout_zeroes_the_expected_fraction_in_every_channel():
    x = torch.ones(64, 3, 16, 16)
    out = Augment(dropout=0.25)(x, gen(2))
    assert torch.equal(out[:, 0], out[:, 1])  # one mask for all channels
    assert abs((out == 0).float().mean().item() - 0.25) < 0.02


def test_affine_warp_identity_and_exact_rotations():
    x = images(h=9, w=9)
    eye = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(len(x), 2, 3)
    half_turn = torch.tensor([[-1.0, 0, 0], [0, -1, 0]]).expand(len(x), 2, 3)
    quarter = torch.tensor([[0.0, -1, 0], [1, 0, 0]]).expand(len(x), 2, 3)
    torch.testing.assert_close(affine_warp(x, eye), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(affine_warp(x, half_turn), x.flip(-1).flip(-2), atol=1e-5, rtol=0)
    torch.testing.assert_close(affine_warp(x, quarter), torch.rot90(x, 1, (-2, -1)), atol=1e-5,
                               rtol=0)


def test_random_crop_stays_inside_the_image_and_magnifies():
    x = torch.ones(64, 1, 16, 20)
    out = Augment(crop_scale=(0.1, 0.5), crop_ratio=(0.5, 2.0))(x, gen(3))
    torch.testing.assert_close(out, x)  # every crop lies inside the image: no zero padding
    # a crop of a quarter of the area doubles a centred square's side
    sq = torch.zeros(256, 1, 32, 32)
    sq[:, :, 12:20, 12:20] = 1.0
    theta = Augment(crop_scale=(0.25, 0.25), crop_ratio=(1, 1)).sample_warp(256, 32, 32, gen(), "cpu")
    torch.testing.assert_close(theta[:, :, :2], 0.5 * torch.eye(2).expand(256, 2, 2))
    centred = theta.clone()
    centred[:, :, 2] = 0
    assert affine_warp(sq, centred).sum((1, 2, 3)).allclose(torch.tensor(256.0), atol=1.0)


def test_zoom_out_leaves_a_zero_border():
    out = Augment(zoom=(0.5, 0.5))(torch.ones(4, 1, 16, 16), gen())
    assert torch.equal(out.sum((1, 2, 3)), torch.full((4,), 64.0))  # an 8x8 square of ones
    assert (out[:, :, 4:12, 4:12] == 1).all()


def test_sampled_rotation_angles_respect_the_bound():
    aug = Augment(rotate=20)
    theta = aug.sample_warp(500, 8, 8, gen(), "cpu")
    angles = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0])).abs()
    assert angles.max() <= 20 + 1e-4 and angles.max() > 19
    assert torch.allclose(torch.linalg.det(theta[:, :, :2]), torch.ones(500), atol=1e-5)


def test_zoom_and_shear_change_the_determinant_and_shape():
    theta = Augment(zoom=(2.0, 2.0)).sample_warp(4, 8, 8, gen(), "cpu")
    torch.testing.assert_close(theta[:, :, :2], 0.5 * torch.eye(2).expand(4, 2, 2))
    sheared = Augment(shear=30).sample_warp(200, 8, 8, gen(), "cpu")
    off = sheared[:, 0, 1].abs()
    assert off.max() <= math.tan(math.radians(30)) + 1e-5 and off.max() > 0.4


def test_on_the_device_of_the_input_with_that_devices_generator():
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    x = images().cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    assert ALL_ON(x, g).device == x.device


def test_bad_strengths_and_config_mappings_are_clear_errors():
    with pytest.raises(UmetaError, match="Augment.dropout must be in"):
        Augment(dropout=1.5)
    with pytest.raises(UmetaError, match="Augment.crop_scale must satisfy"):
        Augment(crop_scale=(0.9, 0.2))
    with pytest.raises(UmetaError, match="whole number"):
        Augment(shift=1.5)
    with pytest.raises(UmetaError, match="unknown augmentation option 'shfit'"):
        as_augment({"shfit": 2}, Augment())
    assert as_augment({"shift": 2, "crop_scale": [0.5, 1]}, Augment()) == Augment(
        shift=2, crop_scale=(0.5, 1.0))
    assert as_augment(None, UMTRA_OMNIGLOT) is UMTRA_OMNIGLOT
    with pytest.raises(UmetaError, match="float images"):
        Augment(shift=1)(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), gen())
