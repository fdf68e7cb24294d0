import numpy as np
import pytest
import torch

from umeta.config import DataConfig
from umeta.data import mixed
from umeta.data.mixed import is_mixture, load_mixture, parse_mixture
from umeta.data.procedural import (CUT, FILLED, MAX_PARTS, OUTLINE, STROKE, TEXTURED,
                                   _class_params, _segment_distance, make_procedural)
from umeta.data.sources import load_part
from umeta.errors import UmetaError


def test_shapes_dtype_labels_names_and_polarity():
    g = make_procedural(3, samples_per_class=4, image_size=20, seed=1, first_class=7)
    assert g.images.shape == (12, 1, 20, 20) and g.images.dtype == torch.uint8
    assert g.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert g.class_names == ["proc000007", "proc000008", "proc000009"]
    assert g.groups is None and g.name == "procedural(seed=1)"
    assert make_procedural(1, 2, name="mine").name == "mine"
    big = make_procedural(40, 2, seed=0)
    assert int(big.images.max()) == 255
    # ink high on a black background: most pixels are 0, every image has ink
    assert (big.images == 0).float().mean() > 0.5
    assert (big.images.flatten(1).amax(1) > 100).all()


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = make_procedural(4, 5, seed=3).images
    assert torch.equal(a, make_procedural(4, 5, seed=3).images)
    assert not torch.equal(a, make_procedural(4, 5, seed=4).images)


def test_class_and_sample_depend_only_on_seed_class_and_index():
    wide = make_procedural(6, 5, seed=2)
    part = make_procedural(2, 3, seed=2, first_class=4)
    expected = wide.images.view(6, 5, 1, 28, 28)[4:6, :3].reshape(6, 1, 28, 28)
    assert torch.equal(part.images, expected)


def test_classes_differ_and_samples_of_a_class_are_alike():
    g = make_procedural(30, 6, seed=0)
    flat = g.images.flatten(1).float()
    dist = torch.cdist(flat, flat)
    off_diagonal = ~torch.eye(len(flat), dtype=torch.bool)
    assert dist[off_diagonal].min() > 0
    same = g.labels[:, None] == g.labels[None, :]
    assert dist[same & off_diagonal].mean() < 0.7 * dist[~same].mean()


def test_every_kind_of_part_and_a_wide_range_of_styles():
    prm = _class_params(torch.arange(4000), seed=0)
    kinds = prm["kind"][prm["active"]]
    share = torch.bincount(kinds, minlength=5).float() / len(kinds)
    for kind, low in ((STROKE, 0.3), (OUTLINE, 0.12), (FILLED, 0.15), (TEXTURED, 0.1),
                      (CUT, 0.05)):
        assert share[kind] > low, (kind, share)
    assert (prm["kind"][:, 0] != CUT).all()  # a cut always has a part below it
    parts = prm["active"].sum(1)
    assert set(parts.tolist()) == set(range(1, MAX_PARTS + 1))
    assert prm["width"].min() < 0.6 and prm["width"].max() > 3.0  # hairlines to bold
    g = make_procedural(200, 1, seed=0)
    ink = (g.images > 60).float().mean((1, 2, 3))
    assert ink.min() < 0.04 and ink.max() > 0.35  # from a small mark to a filled frame
    grey = ((g.images > 40) & (g.images < 215)).float().mean((1, 2, 3))
    assert (grey > 0.15).float().mean() > 0.1  # grey levels and textures, not just binary ink


def _inside_loop(px, py, poly):
    inside = False
    for i in range(len(poly)):
        (ax, ay), (bx, by) = poly[i], poly[(i + 1) % len(poly)]
        if (ay > py) != (by > py) and px < ax + (py - ay) * (bx - ax) / (by - ay):
            inside = not inside
    return inside


def _segment_loop(px, py, a, b):
    ab = b - a
    t = np.clip(np.dot(np.array([px, py]) - a, ab) / max(np.dot(ab, ab), 1e-12), 0, 1)
    return float(np.linalg.norm(np.array([px, py]) - a - t * ab))


def test_distance_and_inside_match_a_loop():
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(3, 7, 2, generator=gen) * 1.6 - 0.8
    angle = torch.linspace(0, 2 * np.pi, 8)[:-1]
    pts[1] = 0.6 * torch.stack([torch.cos(angle), torch.sin(angle)], -1)  # a convex heptagon
    pts[2, 5:] = pts[2, 4]  # repeated points: zero-length segments
    closed = torch.tensor([False, True, True])
    q = torch.rand(3, 50, 2, generator=gen) * 2 - 1
    dist, inside = _segment_distance(q, pts, closed)
    for k in range(3):
        p = pts[k].numpy()
        n = len(p) if closed[k] else len(p) - 1
        for m in range(50):
            x, y = q[k, m].tolist()
            ref = min(_segment_loop(x, y, p[i], p[(i + 1) % len(p)]) for i in range(n))
            assert dist[k, m].item() == pytest.approx(ref, abs=1e-5)
            assert bool(inside[k, m]) == (bool(closed[k]) and _inside_loop(x, y, p))


@pytest.mark.parametrize("kwargs", [
    {"num_classes": 0}, {"num_classes": 2.5}, {"num_classes": 2, "samples_per_class": 0},
    {"num_classes": 2, "image_size": 4}, {"num_classes": 2, "first_class": -1},
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(UmetaError, match="make_procedural"):
        make_procedural(**kwargs)


def test_on_the_gpu_it_draws_the_same_classes():
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    cpu = make_procedural(8, 4, seed=1)
    gpu = make_procedural(8, 4, seed=1, device="cuda")
    assert gpu.images.is_cuda
    assert (cpu.images.float() - gpu.images.cpu().float()).abs().mean() < 1.0


# --- mixtures ---------------------------------------------------------------------------

def test_mixture_names_parse_and_bad_ones_are_clear_errors():
    assert parse_mixture("omniglot+procedural") == ("omniglot", 0.5)
    assert parse_mixture("omniglot+procedural:0.25") == ("omniglot", 0.25)
    assert parse_mixture("procedural") == (None, 1.0)
    assert is_mixture("procedural") and is_mixture("omniglot+procedural")
    assert not is_mixture("omniglot") and not is_mixture("glyphs")
    for bad in ("omniglot+procedural:1", "omniglot+procedural:x", "omniglot+procedural:0"):
        with pytest.raises(UmetaError, match="strictly between 0 and 1"):
            parse_mixture(bad)
    with pytest.raises(UmetaError, match="unknown data mixture 'glyphs\\+procedural'"):
        parse_mixture("glyphs+procedural")
    with pytest.raises(UmetaError, match="data.rotations"):
        load_mixture(DataConfig(dataset="procedural", rotations=True), "train")


def test_procedural_alone_has_disjoint_parts(monkeypatch):
    monkeypatch.setattr(mixed, "PROCEDURAL_ONLY_CLASSES", 3)
    train = load_part(DataConfig(dataset="procedural"), "train")
    test = load_part(DataConfig(dataset="procedural"), "test")
    assert len(train) == len(test) == 60 and train.num_classes == 3
    assert not set(train.class_names) & set(test.class_names)
    assert torch.equal(train.images, make_procedural(3, 20).images)
    with pytest.raises(UmetaError, match="unknown data part 'bg' of 'procedural'; choose one of"):
        load_part(DataConfig(dataset="procedural"), "bg")


def test_omniglot_mixture_has_the_asked_fraction_and_held_out_parts_are_real(shared_data):
    cfg = DataConfig(dataset="omniglot+procedural:0.02", split="background-evaluation",
                     data_dir=str(shared_data / "omniglot"), download=False)
    data = load_part(cfg, "background")
    real = 964 * 20
    generated = round(real * 0.02 / 0.98)
    assert len(data) == real + generated
    assert data.class_names[963] == "Tifinagh/character55"  # Omniglot first, as loaded
    assert data.class_names[964] == "proc000000"
    assert torch.equal(data.images[real:], make_procedural(20, 20).images[:generated])
    assert data.name == "omniglot/background-evaluation/background+procedural:0.02"
    held_out = load_part(cfg, "evaluation")
    assert len(held_out) == 659 * 20 and held_out.name == "omniglot/background-evaluation/evaluation"
