import math

import pytest
import torch
import torch.nn.functional as F

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


# --- domain randomisation -------------------------------------------------------------------

from umeta.tasks.augment import (compose_affine, gaussian_blur, grid_warp, ink_box,  # noqa: E402
                                 morph)

DOMAIN = Augment(ink_fit=(0.5, 1.0), ink_place=1.0, elastic=1.5, stroke=(-1.0, 2.0),
                 blur=(0.0, 1.5), gamma=(0.5, 2.0), shading=0.5, contrast=(0.4, 1.0),
                 background=(0.0, 0.3), invert=0.5, noise=0.1)
ONE_EACH = [Augment(ink_fit=(0.5, 1.0)), Augment(ink_fit=(0.5, 0.9), ink_place=1.0),
            Augment(elastic=2.0), Augment(stroke=(-1.0, 2.0)), Augment(blur=(0.5, 1.5)),
            Augment(gamma=(0.5, 2.0)), Augment(shading=0.8), Augment(contrast=(0.3, 0.8)),
            Augment(background=(0.1, 0.5)), Augment(invert=0.5), Augment(noise=0.2), DOMAIN,
            Augment(crop_scale=(0.3, 1.0), rotate=10, elastic=1.0, ink_fit=(0.7, 1.0))]


def glyph_like(b=16, seed=0):
    """Sparse grey ink on a black background: a random 6 x 6 patch of ink per image."""
    x = torch.zeros(b, 1, 20, 20)
    g = gen(seed)
    for i, (r, c) in enumerate(torch.randint(2, 12, (b, 2), generator=g).tolist()):
        x[i, 0, r : r + 6, c : c + 6] = torch.rand(6, 6, generator=g)
    return x


@pytest.mark.parametrize("aug", ONE_EACH, ids=range(len(ONE_EACH)))
def test_domain_fields_are_seeded_shaped_and_stay_in_the_unit_range(aug):
    x = glyph_like()
    a, b = aug(x, gen(3)), aug(x, gen(3))
    assert a.shape == x.shape and a.dtype == x.dtype and not aug.is_identity
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, gen(4)))
    assert a.min() >= 0 and a.max() <= 1 and torch.isfinite(a).all()


def test_domain_fields_at_zero_strength_are_the_identity():
    off = Augment(ink_fit=(0, 0), ink_place=0.5, elastic=0, stroke=(0, 0), blur=(0, 0),
                  gamma=(1, 1), shading=0, contrast=(1, 1), background=(0, 0), invert=0, noise=0)
    x, g = glyph_like(), gen(5)
    before = g.get_state()
    assert off.is_identity and torch.equal(off(x, g), x)
    assert torch.equal(g.get_state(), before)


def test_turning_a_domain_field_on_leaves_the_other_draws_alone():
    """The draws of the old fields come first and are unchanged: flip + shift with a blur of
    sigma 0 .. 0 (no kernel) give exactly the images of flip + shift alone."""
    x = images()
    old = Augment(flip=0.5, shift=2)
    new = Augment(flip=0.5, shift=2, blur=(1e-9, 1e-9))
    torch.testing.assert_close(new(x, gen(1)), old(x, gen(1)))


def test_dilation_of_one_pixel_is_a_square_and_erosion_removes_it():
    x = torch.zeros(4, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    out = morph(x, torch.tensor([0.0, 1.0, 2.0, -1.0]))
    assert torch.equal(out[0], x[0])
    ref1 = torch.zeros(9, 9)
    ref1[3:6, 3:6] = 1
    ref2 = torch.zeros(9, 9)
    ref2[2:7, 2:7] = 1
    assert torch.equal(out[1, 0], ref1) and torch.equal(out[2, 0], ref2)
    assert torch.equal(out[3], torch.zeros(1, 9, 9))


def test_fractional_radius_blends_the_two_nearest_and_matches_a_loop():
    x = glyph_like(b=6)
    r = torch.tensor([0.5, 1.25, -0.5, -1.75, 2.0, 0.0])
    out = morph(x, r)
    for i, radius in enumerate(r.tolist()):
        lo = math.floor(radius)
        frac = radius - lo

        def whole(k, img):
            for _ in range(abs(k)):
                img = (F.max_pool2d(img, 3, 1, 1) if k > 0 else -F.max_pool2d(-img, 3, 1, 1))
            return img

        ref = whole(lo, x[i : i + 1]) * (1 - frac) + whole(lo + 1, x[i : i + 1]) * frac
        torch.testing.assert_close(out[i : i + 1], ref)


def test_erosion_keeps_ink_that_touches_the_border():
    x = torch.zeros(1, 1, 6, 6)
    x[:, :, :, :2] = 1.0  # a 2-pixel-wide bar along the left edge
    out = morph(x, torch.tensor([-1.0]))
    assert torch.equal(out[0, 0, :, 0], torch.ones(6)) and out[0, 0, :, 1].sum() == 0


def test_gaussian_blur_matches_a_dense_reference_and_keeps_mass_inside():
    x = torch.zeros(3, 2, 15, 15)
    x[:, :, 7, 7] = 1.0
    sigma = torch.tensor([0.0, 0.8, 1.5])
    out = gaussian_blur(x, sigma)
    assert torch.equal(out[0], x[0])
    for i in (1, 2):
        t = torch.arange(15.0) - 7
        g = torch.exp(-0.5 * (t / sigma[i]) ** 2)
        reach = math.ceil(3 * sigma.max().item())  # one kernel size for the batch
        g = torch.where(t.abs() <= reach, g, torch.zeros(()))
        ref = torch.outer(g, g) / g.sum() ** 2
        torch.testing.assert_close(out[i, 0], ref, atol=1e-6, rtol=0)
        torch.testing.assert_close(out[i, 1], ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.sum((2, 3)), torch.ones(3, 2))


def test_ink_box_finds_the_box_in_normalised_units():
    x = torch.zeros(3, 1, 10, 20)
    x[0, 0, 2:5, 4:10] = 1.0
    x[1, 0, 9, 19] = 0.5
    lo, hi = ink_box(x)
    torch.testing.assert_close(lo[0], torch.tensor([-1 + 2 * 4 / 20, -1 + 2 * 2 / 10]))
    torch.testing.assert_close(hi[0], torch.tensor([-1 + 2 * 10 / 20, -1 + 2 * 5 / 10]))
    torch.testing.assert_close(hi[1], torch.tensor([1.0, 1.0]))
    assert torch.equal(lo[2], torch.zeros(2)) and torch.equal(hi[2], torch.zeros(2))  # blank


def test_ink_fit_centres_the_box_at_the_asked_size():
    x = torch.zeros(2, 1, 32, 32)
    x[:, :, 2:6, 3:11] = 1.0  # an 8 x 4 box in the top-left corner
    out = Augment(ink_fit=(0.5, 0.5))(x, gen())  # longer side -> 16 pixels, centred
    lo, hi = ink_box(out, threshold=0.5)
    width, height = (hi - lo)[0] * 16
    assert abs(width - 16) <= 1 and abs(height - 8) <= 1
    torch.testing.assert_close((lo + hi)[0] / 2, torch.zeros(2), atol=1 / 16, rtol=0)
    blank = torch.zeros(2, 1, 8, 8)
    assert torch.equal(Augment(ink_fit=(0.5, 1.0), ink_place=1.0)(blank, gen()), blank)


def test_ink_place_moves_the_box_but_keeps_it_inside():
    x = torch.zeros(300, 1, 20, 20)
    x[:, :, 8:12, 8:12] = 1.0
    out = Augment(ink_fit=(0.4, 0.4), ink_place=1.0)(x, gen(2))
    lo, hi = ink_box(out, threshold=0.5)
    assert (lo >= -1 - 1e-6).all() and (hi <= 1 + 1e-6).all()
    centre = (lo + hi) / 2
    assert centre.abs().max() > 0.5  # room is 1 - 0.4 = 0.6 in normalised units


def test_grid_warp_without_shift_is_affine_warp_and_compose_is_composition():
    x = images(h=9, w=9)
    theta = Augment(rotate=30, zoom=(0.8, 1.2)).sample_warp(len(x), 9, 9, gen(), "cpu")
    torch.testing.assert_close(grid_warp(x, theta), affine_warp(x, theta), atol=1e-5, rtol=0)
    other = Augment(shear=20).sample_warp(len(x), 9, 9, gen(1), "cpu")
    p = torch.rand(len(x), 2, 1)
    both = compose_affine(theta, other)
    step = other[:, :, :2] @ p + other[:, :, 2:]
    torch.testing.assert_close(both[:, :, :2] @ p + both[:, :, 2:],
                               theta[:, :, :2] @ step + theta[:, :, 2:])


def test_elastic_field_is_smooth_and_bounded():
    aug = Augment(elastic=2.0)
    shift = aug.sample_elastic(64, 28, 28, gen(), "cpu") * 14  # back to pixels
    assert shift.shape == (64, 28, 28, 2)
    jump = (shift[:, 1:] - shift[:, :-1]).abs().max()
    assert jump < 0.25 * shift.abs().max()  # neighbours move alike
    assert shift.abs().max() > 1.0


def test_photometric_maps_hand_checked():
    x = torch.tensor([0.0, 0.25, 1.0]).view(1, 1, 1, 3)
    torch.testing.assert_close(Augment(gamma=(2.0, 2.0))(x, gen()), x ** 2)
    out = Augment(contrast=(0.5, 0.5), background=(0.2, 0.2))(x, gen())
    torch.testing.assert_close(out, 0.2 + 0.5 * 0.8 * x)
    torch.testing.assert_close(Augment(invert=1.0)(x, gen()), 1 - x)
    noisy = Augment(noise=0.5)(torch.full((200, 1, 8, 8), 0.5), gen())
    assert 0.05 < noisy.std() < 0.4 and noisy.min() >= 0 and noisy.max() <= 1


def test_invert_probability_and_shading_darkens_only():
    x = torch.ones(2000, 1, 4, 4)
    flipped = (Augment(invert=0.3)(x, gen()) == 0).all((1, 2, 3)).float().mean()
    assert abs(flipped.item() - 0.3) < 0.04
    shaded = Augment(shading=1.0)(x, gen())
    assert shaded.max() <= 1 and shaded.min() >= 0 and shaded.mean() < 0.9


def test_bad_domain_strengths_are_clear_errors():
    with pytest.raises(UmetaError, match="Augment.stroke must satisfy"):
        Augment(stroke=(-9, 1))
    with pytest.raises(UmetaError, match="Augment.ink_fit must be"):
        Augment(ink_fit=(0, 0.5))
    with pytest.raises(UmetaError, match="Augment.invert must be in"):
        Augment(invert=2)
    assert as_augment({"blur": [0, 1], "invert": 0.5}, Augment()) == Augment(blur=(0.0, 1.0),
                                                                           invert=0.5)


def test_domain_fields_on_the_gpu():
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    x = glyph_like().cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    assert DOMAIN(x, g).device == x.device
