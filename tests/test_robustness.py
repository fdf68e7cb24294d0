"""Corruptions (shape, range, seeded determinism, monotone severities), PGD (inside its ball, it
raises its objective beyond random noise, it crosses a hand-placed boundary), the mean
corruption error, and the robustness curves on tiny seeded data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from umeta.build import build_learner
from umeta.config import TrainConfig
from umeta.data import make_glyphs
from umeta.errors import UmetaError
from umeta.robustness import (PixelMethod, mean_corruption_error, pgd_attack, prototype_margin,
                              robustness_curves, summary_lines)
from umeta.tasks.corruptions import CORRUPTIONS, corrupt


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def strokes():
    """Glyph-like images: 16 binary 1x28x28 glyphs, ink 1 on 0."""
    return make_glyphs(8, samples_per_class=2, image_size=28).float_images(torch.arange(16))


# ----------------------------------------------------------------------------- corruptions

@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_keep_shape_and_range_and_repeat_with_the_seed(name, strokes):
    for severity in range(1, 6):
        a = corrupt(strokes, name, severity, gen(3))
        assert a.shape == strokes.shape and a.dtype == strokes.dtype
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
        assert torch.equal(a, corrupt(strokes, name, severity, gen(3)))
        assert not torch.equal(a, strokes)
    if name in ("gaussian_noise", "occlusion", "shift"):  # random ones differ with the seed
        assert not torch.equal(corrupt(strokes, name, 3, gen(3)), corrupt(strokes, name, 3, gen(4)))
    assert corrupt(strokes, name, 0, gen()) is strokes


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_severities_damage_more_and_more(name, strokes):
    x = strokes.repeat(8, 1, 1, 1)  # 128 images: the random draws average out
    damage = [float((corrupt(x, name, s, gen(s)) - x).pow(2).mean()) for s in range(6)]
    assert damage[0] == 0.0
    assert all(a < b for a, b in zip(damage, damage[1:])), damage


def test_corruptions_match_their_definitions(strokes):
    noisy = corrupt(strokes, "gaussian_noise", 5, gen(0))
    noise = torch.randn(strokes.shape, generator=gen(0))
    torch.testing.assert_close(noisy, (strokes + 0.38 * noise).clamp(0, 1))
    low = corrupt(strokes, "contrast", 5, gen())
    mean = strokes.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(low, mean + 0.05 * (strokes - mean))
    occluded = corrupt(torch.zeros(4, 1, 20, 20), "occlusion", 5, gen())
    assert ((occluded == 0.5).sum((1, 2, 3)) == 12 * 12).all()  # side round(0.6 * 20)
    blob = torch.zeros(1, 1, 28, 28)
    blob[..., 10:14, 10:14] = 1
    moved = corrupt(blob, "shift", 5, gen())  # by round(0.2 * 28) = 6 pixels
    before, after = (torch.nonzero(b[0, 0]).float().mean(0) for b in (blob, moved))
    assert 5.0 <= float((after - before).norm()) <= 7.1


@pytest.mark.parametrize("args, fragment", [
    ((torch.zeros(2, 1, 8, 8), "fog", 1), "unknown corruption 'fog'"),
    ((torch.zeros(2, 1, 8, 8), "blur", 6), "severity must be an integer in 0 .. 5"),
    ((torch.zeros(2, 1, 8, 8), "blur", 2.0), "severity must be an integer"),
    ((torch.zeros(1, 8, 8), "blur", 1), "float images (B, C, H, W)"),
])
def test_bad_corruption_input_is_one_clear_error(args, fragment):
    with pytest.raises(UmetaError) as err:
        corrupt(*args, gen())
    assert fragment in str(err.value)


# ----------------------------------------------------------------------------- PGD

def tiny_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 14 * 14, 8))


def test_pgd_increases_the_embedding_distance_within_eps(strokes):
    net, eps = tiny_net(), 0.05
    clean = net(strokes).detach()

    def distance(x):
        return (net(x) - clean).pow(2).sum(1)

    adv = pgd_attack(strokes, distance, eps=eps, steps=10, generator=gen(0))
    assert float((adv - strokes).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    noise = (strokes + eps * (2 * torch.rand(strokes.shape, generator=gen(1)) - 1)).clamp(0, 1)
    corner = (strokes + eps * torch.sign(torch.randn(strokes.shape, generator=gen(2)))).clamp(0, 1)
    with torch.no_grad():
        attacked, random, signs = distance(adv), distance(noise), distance(corner)
    assert (attacked > random).all() and (attacked > signs).all()
    assert float(attacked.mean()) > 3 * float(signs.mean())
    assert torch.equal(adv, pgd_attack(strokes, distance, eps=eps, steps=10, generator=gen(0)))


def test_pgd_margin_crosses_a_hand_placed_pixel_boundary_only_when_eps_allows():
    # two 4-pixel prototypes; the query is 0.1 from the boundary in every pixel direction
    prototypes = torch.tensor([[[0.3, 0.3, 0.3, 0.3], [0.7, 0.7, 0.7, 0.7]]])
    query = torch.full((1, 1, 4), 0.4)
    label = torch.tensor([[0]])

    def margin(q):
        return prototype_margin(-((q[:, :, None] - prototypes[:, None]) ** 2).sum(-1), label)

    assert float(margin(query)) < 0
    far = pgd_attack(query, margin, eps=0.15, steps=20, generator=gen())
    near = pgd_attack(query, margin, eps=0.05, steps=20, generator=gen())
    assert float(margin(far)) > 0  # crossed to the other prototype (needs > 0.1 per pixel)
    assert float(margin(near)) < 0  # cannot cross within 0.05
    torch.testing.assert_close(far, torch.full((1, 1, 4), 0.55))


def test_prototype_margin_hand_case_and_bad_pgd_settings():
    scores = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 1.0]])
    assert prototype_margin(scores, torch.tensor([0, 0])).tolist() == [2.0, -4.0]
    with pytest.raises(UmetaError, match="eps > 0"):
        pgd_attack(torch.zeros(1, 2), lambda x: x.sum(1), eps=0.0, steps=3, generator=gen())


# ----------------------------------------------------------------------------- mCE

def test_mean_corruption_error_is_imagenet_c_s_ratio():
    model = np.stack([np.full((2, 50), 10.0), np.full((2, 50), 30.0)])  # (C=2, S=2, T=50)
    pixels = np.stack([np.full((2, 50), 40.0), np.full((2, 50), 30.0)])
    ce, ce_ci, mce, ci = mean_corruption_error(model, pixels)
    assert ce.tolist() == [25.0, 100.0] and mce == 62.5
    assert ce_ci.tolist() == [0.0, 0.0] and ci == 0.0  # constant errors: no spread
    rng = np.random.default_rng(0)
    noisy = model + rng.normal(0, 5, model.shape)
    _, ce_ci, mce, ci = mean_corruption_error(noisy, pixels)
    assert 0 < ci < 5 and abs(mce - 62.5) < 3 * ci and (ce_ci > 0).all()
    with pytest.raises(UmetaError, match="one shape"):
        mean_corruption_error(model, pixels[:1])


# ----------------------------------------------------------------------------- curves

@pytest.fixture(scope="module")
def tiny_learner():
    cfg = TrainConfig()
    cfg.model.hidden = 8
    torch.manual_seed(0)
    return build_learner(cfg, (1, 28, 28)).eval()


@pytest.fixture(scope="module")
def glyphs():
    return make_glyphs(12, samples_per_class=20, image_size=28)


def small_curves(learner, data, **overrides):
    options = dict(corruptions=("blur", "shift"), severities=(1, 4), eps=(8 / 255,),
                   attack_steps=2, n_tasks=6, attack_tasks=3, n_way=3, k_shot=1, q_query=4,
                   per_class=4, batch_tasks=4)
    options.update(overrides)
    return robustness_curves(learner, data, **options)


def test_curves_cover_every_cell_and_repeat_with_the_seed(tiny_learner, glyphs):
    curves = small_curves(tiny_learner, glyphs)
    expected = {(m, t, c, lv) for m in ("model", "pixels") for t in ("fewshot", "clustering")
                for c, lv in [("clean", 0), ("blur", 1), ("blur", 4), ("shift", 1), ("shift", 4),
                              ("pgd", 8 / 255)]}
    assert set(curves.scores) == expected
    for key, values in curves.scores.items():
        assert values.shape == ((3,) if key[2] == "pgd" else (6,))
        assert ((values >= 0) & (values <= 100)).all()
    again = small_curves(tiny_learner, glyphs)
    assert all(np.array_equal(curves.scores[k], again.scores[k]) for k in expected)
    alone = small_curves(tiny_learner, glyphs, corruptions=("shift",), eps=())
    for key, values in alone.scores.items():  # a cell does not depend on the other cells
        assert np.array_equal(values, curves.scores[key])
    assert not tiny_learner.training


def test_pixel_cells_match_a_numpy_nearest_prototype_loop(tiny_learner, glyphs):
    from umeta.tasks.sampler import EpisodeSampler

    curves = small_curves(tiny_learner, glyphs, corruptions=(), eps=())
    sampler = EpisodeSampler(glyphs, 3, 1, 4, seed=0)
    support, query = sampler.sample_indices(6)
    expected = []
    for s, q in zip(support, query):
        protos = glyphs.float_images(s).flatten(1).numpy()  # one shot: the shot is the mean
        queries = glyphs.float_images(q).flatten(1).numpy()
        d = ((queries[:, None] - protos[None]) ** 2).sum(-1)
        expected.append(100 * np.mean(d.argmin(1) == np.repeat(np.arange(3), 4)))
    np.testing.assert_allclose(curves.scores[("pixels", "fewshot", "clean", 0)], expected)
    logits = PixelMethod().fewshot(glyphs.float_images(support[:1]), torch.arange(3)[None], 3)
    assert logits(glyphs.float_images(query[:1])).shape == (1, 12, 3)


def test_rows_panels_and_summary(tiny_learner, glyphs):
    curves = small_curves(tiny_learner, glyphs)
    rows = curves.rows("umeta-tiny", "supervised")
    for row in rows:
        assert {"method", "training", "setting", "metric", "mean", "ci95", "n_tasks"} <= set(row)
    mce = [r for r in rows if r["metric"] == "mce"]
    assert [r["setting"] for r in mce] == ["3w1s", "3x4"]
    assert len([r for r in rows if r["metric"] == "ce"]) == 4
    pgd = [r for r in rows if r.get("corruption") == "pgd"]
    assert len(pgd) == 4 and all(r["attack_steps"] == 2 for r in pgd)
    panels = curves.panels("umeta-tiny")
    assert list(panels) == ["blur", "shift", "pgd"]
    levels, means, cis = panels["pgd"]["3w1s few-shot, umeta-tiny"]
    assert levels == [0, 8 / 255] and len(means) == len(cis) == 2
    clean_attacked = curves.scores[("model", "fewshot", "clean", 0)][:3].mean()
    assert means[0] == pytest.approx(clean_attacked)  # the PGD curve starts on its own tasks
    lines = summary_lines(curves, "umeta-tiny")
    assert lines[1].startswith("clean") and "mCE" in lines[-1]


@pytest.mark.parametrize("overrides, fragment", [
    ({"n_tasks": 1}, "n_tasks=1 must be an integer >= 2"),
    ({"severities": (0, 1)}, "the clean cell (0) is always run"),
    ({"severities": (6,)}, "severity must be an integer in 0 .. 5"),
    ({"corruptions": ("fog",)}, "unknown corruption 'fog'"),
    ({"eps": (2.0,)}, "PGD radii must be in (0, 1]"),
    ({"attack": "fgsm"}, "unknown attack 'fgsm'"),
    ({"severities": (1, 1)}, "list each corruption and severity once"),
    ({"n_way": 20}, "larger than the 12 classes"),
])
def test_bad_settings_are_one_clear_error(tiny_learner, glyphs, overrides, fragment):
    with pytest.raises(UmetaError) as err:
        small_curves(tiny_learner, glyphs, **overrides)
    assert fragment in str(err.value)


@pytest.mark.realdata
def test_b9_script_runs_on_omniglot_evaluation_alphabets(shared_data, tmp_path):
    import json
    import subprocess
    import sys

    from conftest import REPO_ROOT

    out = tmp_path / "b9.json"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "b9_robustness.py"),
                           "--data-dir", str(shared_data / "omniglot"), "--tasks", "2",
                           "--attack-tasks", "2", "--attack-steps", "1", "--out", str(out),
                           "--figure", str(tmp_path / "b9.png")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "B9" and doc["test_classes"] == 659
    assert len([r for r in doc["results"] if r["metric"] == "mce"]) == 2
    cells = [r for r in doc["results"] if r["metric"] in ("accuracy", "clustering_accuracy")]
    assert len(cells) == 4 * (1 + 5 * 5 + 4)
    assert (tmp_path / "b9.png").is_file()
