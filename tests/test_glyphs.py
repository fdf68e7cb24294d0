import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from umeta.data.glyphs import _normal, _render, _uniform, builtin_glyph_splits, make_glyphs
from umeta.errors import UmetaError


def hungarian_accuracy(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    counts = np.zeros((k, k))
    np.add.at(counts, (y, pred), 1)
    rows, cols = linear_sum_assignment(-counts)
    return counts[rows, cols].sum() / len(y)


def test_shapes_dtype_labels_and_names():
    g = make_glyphs(3, samples_per_class=4, image_size=20, seed=1, first_class=7)
    assert g.images.shape == (12, 1, 20, 20) and g.images.dtype == torch.uint8
    assert g.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert g.class_names == ["glyph0007", "glyph0008", "glyph0009"]
    assert g.groups is None and g.name == "glyphs(seed=1)"
    assert make_glyphs(1, 2, name="mine").name == "mine"
    assert int(g.images.max()) == 255 and int(g.images.min()) == 0


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = make_glyphs(4, 5, seed=3).images
    assert torch.equal(a, make_glyphs(4, 5, seed=3).images)
    assert not torch.equal(a, make_glyphs(4, 5, seed=4).images)


def test_class_and_sample_depend_only_on_seed_class_and_index():
    wide = make_glyphs(6, 5, seed=2)
    part = make_glyphs(2, 3, seed=2, first_class=4)
    expected = wide.images.view(6, 5, 1, 28, 28)[4:6, :3].reshape(6, 1, 28, 28)
    assert torch.equal(part.images, expected)


def test_classes_differ_and_samples_vary():
    g = make_glyphs(20, 6, seed=0)
    flat = g.images.flatten(1).float()
    dist = torch.cdist(flat, flat)
    off_diagonal = ~torch.eye(len(flat), dtype=torch.bool)
    assert dist[off_diagonal].min() > 0  # no two drawings are identical, within class or across
    same = g.labels[:, None] == g.labels[None, :]
    # drawings of one class are closer to each other, on average, than to other classes
    assert dist[same & off_diagonal].mean() < dist[~same].mean()


def test_splits_hold_disjoint_new_classes():
    seen, unseen = builtin_glyph_splits(30, 10, samples_per_class=3, seed=5)
    assert (seen.num_classes, unseen.num_classes, len(seen), len(unseen)) == (30, 10, 90, 30)
    assert (seen.name, unseen.name) == ("glyphs-seen", "glyphs-unseen")
    assert not set(seen.class_names) & set(unseen.class_names)
    assert torch.equal(unseen.images, make_glyphs(10, 3, seed=5, first_class=30).images)
    dist = torch.cdist(unseen.images.flatten(1).float(), seen.images.flatten(1).float())
    assert dist.min() > 0


def test_ink_fraction_is_sane_and_scales_with_image_size():
    small = make_glyphs(30, 4, image_size=28, seed=0)
    ink = (small.images > 127).float().mean((1, 2, 3))
    assert ink.min() > 0.01 and ink.max() < 0.45
    assert 0.05 < ink.mean() < 0.25
    large = make_glyphs(30, 4, image_size=56, seed=0)
    ink_large = (large.images > 127).float().mean()
    assert ink_large == pytest.approx(float(ink.mean()), rel=0.25)  # pen width scales too


def test_hash_random_numbers_have_the_right_moments():
    ids = (torch.arange(500)[:, None], torch.arange(40)[None, :])
    u = _uniform(9, 1, ids, 10)
    assert u.shape == (500, 40, 10) and u.min() > 0 and u.max() < 1
    assert float(u.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(u.var()) == pytest.approx(1 / 12, abs=0.003)
    # neighbouring counters and neighbouring entities are uncorrelated
    assert abs(float(np.corrcoef(u[..., 0].ravel(), u[..., 1].ravel())[0, 1])) < 0.03
    assert abs(float(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1])) < 0.03
    z = _normal(9, 2, ids, 10)
    assert float(z.mean()) == pytest.approx(0.0, abs=0.02)
    assert float(z.std()) == pytest.approx(1.0, abs=0.02)


def test_render_matches_a_brute_force_distance_loop():
    gen = torch.Generator().manual_seed(0)
    size = 12
    points = torch.rand(2, 2, 30, 2, generator=gen) * 1.6 - 0.8
    points[1, 1, 0] = torch.tensor([0.98, -0.98])  # a point by the border
    active = torch.tensor([[True, False], [True, True]])
    width = torch.tensor([1.0, 1.7])
    got = _render(points, active, width, size)
    radius = width * size / 28
    for i in range(2):
        pts = (points[i][active[i]].reshape(-1, 2) + 1) * size / 2 - 0.5
        for row in range(size):
            for col in range(size):
                d = torch.sqrt((pts[:, 0] - col) ** 2 + (pts[:, 1] - row) ** 2).min()
                ink = float((radius[i] - d + 0.5).clamp(0, 1))
                assert int(got[i, 0, row, col]) == round(ink * 255)


@pytest.mark.parametrize("kwargs", [
    {"num_classes": 0}, {"num_classes": 2.5}, {"num_classes": 2, "samples_per_class": 0},
    {"num_classes": 2, "image_size": 4}, {"num_classes": 2, "first_class": -1},
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(UmetaError, match="make_glyphs"):
        make_glyphs(**kwargs)
    with pytest.raises(UmetaError, match="num_unseen"):
        builtin_glyph_splits(5, 0)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = torch.exp(-torch.arange(-4.0, 5.0) ** 2 / (2 * sigma**2))
    k = k / k.sum()
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, 4))
    return F.conv2d(x, k.view(1, 1, -1, 1), padding=(4, 0))


def test_learnable_but_not_pixel_trivial():
    """On unseen classes, k-means on pixels is poor and 1-NN on pixels is weak, but a 1-NN that
    tolerates small shifts (max normalised cross-correlation over +-4 px, the kind of invariance
    a conv net learns) recognises the classes: identity survives, pixel distance misses it."""
    km, nn_pixels, nn_shift = [], [], []
    for task in range(4):
        g = make_glyphs(5, 20, seed=0, first_class=1000 + 5 * task)
        x, y = g.float_images(), g.labels.numpy()
        pred = KMeans(5, n_init=10, random_state=0).fit_predict(x.flatten(1).numpy())
        km.append(hungarian_accuracy(y, pred, 5))
        support = (np.arange(100) % 20) < 5  # 5 shots per class, 15 queries
        flat = x.flatten(1)
        nearest = torch.cdist(flat[~support], flat[support]).argmin(1).numpy()
        nn_pixels.append((y[support][nearest] == y[~support]).mean())
        b = _blur(x, 1.0)
        b = b / b.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        corr = F.conv2d(F.pad(b[~support], (4, 4, 4, 4)), b[support]).flatten(2).amax(-1)
        nn_shift.append((y[support][corr.argmax(1).numpy()] == y[~support]).mean())
    assert np.mean(km) < 0.8
    assert np.mean(nn_shift) > 0.8
    assert np.mean(nn_shift) > np.mean(nn_pixels) + 0.15


@pytest.mark.slow
def test_thousand_classes_render_in_seconds():
    start = time.perf_counter()
    g = make_glyphs(1000, 20)
    assert len(g) == 20000
    assert time.perf_counter() - start < 20
