"""Segmentation: textures, mosaic tasks, the dense backbone, the pixelproto learner, segment_image,
MetaSegmenter, label-map files, the `umeta segment` command and the B10 benchmark's helpers."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import REPO_ROOT
from test_cli import assert_user_error, umeta
from umeta.adapt.segment import assign_pixels, image_features, segment_image, snap_to_colour_edges
from umeta.config import load_config
from umeta.data.textures import make_textures
from umeta.errors import UmetaError
from umeta.label_maps import label_map_picture, overlay, save_png
from umeta.learners.segment import PixelProto
from umeta.metrics import segmentation_scores
from umeta.models.dense import dilated
from umeta.params import ParamError
from umeta.segmenter import MetaSegmenter
from umeta.tasks.mosaic import MIN_PIXELS, MosaicTasks, random_partition, sample_pixels
from umeta.train import train


def halves(height: int = 6, width: int = 8) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, width // 2:] = (200, 30, 30)
    return image


# ----------------------------------------------------------------------------- data and tasks

def test_textures_are_seeded_colour_images():
    a, b = make_textures(6, image_size=16, seed=3), make_textures(6, image_size=16, seed=3)
    assert a.images.shape == (6, 3, 16, 16) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, make_textures(6, image_size=16, seed=4).images)
    assert (a.labels == -1).all()
    with pytest.raises(UmetaError, match="image_size >= 8"):
        make_textures(2, image_size=4)


def test_random_partition_respects_each_count():
    gen = torch.Generator().manual_seed(0)
    k = torch.tensor([2, 3, 5, 1])
    masks = random_partition(4, k, 20, gen)
    assert masks.shape == (4, 20, 20)
    assert all(int(masks[i].max()) < int(k[i]) for i in range(4))
    assert (masks[3] == 0).all()
    with pytest.raises(UmetaError, match="unknown partition kind 'stripes'"):
        random_partition(1, k[:1], 8, gen, ("stripes",))


def test_sample_pixels_draws_from_each_segment_only():
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[0, :, 4:] = 1
    masks[1, :2, :2] = 2  # 4 pixels: too few to count
    index, present = sample_pixels(masks, 3, 50, torch.Generator().manual_seed(0))
    assert present.tolist() == [[True, True, False], [True, False, False]]
    for t in range(2):
        for n in range(3):
            if present[t, n]:
                assert (masks[t].flatten()[index[t, n]] == n).all()
    assert MIN_PIXELS > 4


def test_mosaic_tasks_are_label_free_seeded_and_resumable():
    images = make_textures(12, image_size=16, seed=0).images
    tasks = MosaicTasks(images, n_way=4, k_shot=3, q_query=5, seed=1, min_segments=3)
    state = tasks.state_dict()
    batch = tasks.sample(4)
    assert batch.images.shape == (4, 3, 16, 16) and batch.masks.shape == (4, 16, 16)
    assert batch.support.shape == (4, 4, 3) and batch.query.shape == (4, 4, 5)
    assert float(batch.images.min()) >= 0 and float(batch.images.max()) <= 1
    for t in range(4):
        for n in range(4):
            if batch.present[t, n]:
                assert (batch.masks[t].flatten()[batch.support[t, n]] == n).all()
    tasks.load_state_dict(state)
    again = tasks.sample(4)
    assert torch.equal(again.images, batch.images) and torch.equal(again.masks, batch.masks)
    assert MosaicTasks.label_free
    with pytest.raises(UmetaError, match="min_segments"):
        MosaicTasks(images, n_way=4, min_segments=5)
    with pytest.raises(UmetaError, match="square images"):
        MosaicTasks(torch.zeros(4, 3, 16, 12, dtype=torch.uint8), n_way=2)


# ----------------------------------------------------------------------------- model and learner

def test_dense_backbone_works_at_any_size_and_pools_its_map():
    net = dilated((3, 16, 16), hidden=4, out_dim=5, levels=2, dilations=(1, 2)).eval()
    for size in ((2, 2), (7, 5), (16, 16)):
        assert net.dense(torch.rand(2, 3, *size)).shape == (2, 5, *size)
    x = torch.rand(2, 3, 9, 9)
    assert torch.allclose(net(x), net.dense(x).mean((-2, -1)))
    with pytest.raises(UmetaError, match="levels >= 0"):
        dilated((3, 8, 8), levels=-1)


def test_pixelproto_logits_match_a_loop_over_tasks_and_segments():
    torch.manual_seed(0)
    learner = PixelProto(dilated((3, 16, 16), hidden=4, out_dim=6, dilations=(1,))).eval()
    batch = MosaicTasks(make_textures(10, image_size=16).images, n_way=3, k_shot=4, q_query=2,
                        seed=0).sample(3)
    batch.present[1, 2] = False
    logits = learner.segment_logits(batch)
    feats = learner.dense_embedding(batch.images).flatten(2)  # (T, D, P)
    scale = learner.log_scale.exp()
    for t in range(3):
        protos = [F.normalize(feats[t][:, batch.support[t, n]].mean(1), dim=0) for n in range(3)]
        queries = [feats[t][:, i] for n in range(3) for i in batch.query[t, n]]
        for row, q in enumerate(queries):
            for n in range(3):
                want = -torch.inf if not batch.present[t, n] else scale * q @ protos[n]
                assert torch.allclose(logits[t, row, n], torch.as_tensor(want), atol=1e-5)


def test_pixelproto_loss_falls_and_it_refuses_classification():
    torch.manual_seed(0)
    learner = PixelProto(dilated((3, 16, 16), hidden=8, out_dim=8, dilations=(1, 2)))
    tasks = MosaicTasks(make_textures(40, image_size=16).images, n_way=3, k_shot=8, q_query=8)
    optimizer = torch.optim.Adam(learner.parameters(), 3e-3)
    batch = tasks.sample(6)
    first = float(learner.meta_loss(batch).loss.detach())
    for _ in range(30):
        out = learner.meta_loss(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert float(learner.meta_loss(batch).loss.detach()) < 0.7 * first
    with pytest.raises(UmetaError, match="no few-shot classification rule"):
        learner.adapt(None, None, 2)
    with pytest.raises(UmetaError, match="dense backbone"):
        PixelProto(torch.nn.Linear(2, 2))


# ----------------------------------------------------------------------------- scoring

def test_segmentation_scores_by_hand_and_under_relabelling():
    truth = np.array([[0, 0, 0, 1], [1, 1, 2, 2]])
    pred = np.array([[4, 4, 4, 4], [1, 1, 1, 1]])
    # matching 4 <-> 0 (3 px), 1 <-> 1 (2 px); segment 2 unmatched
    # IoU(0) = 3 / 4, IoU(1) = 2 / (3 + 4 - 2) = 0.4, IoU(2) = 0
    scores = segmentation_scores(truth, pred)
    assert scores["pixel_accuracy"] == pytest.approx(5 / 8)
    assert scores["miou"] == pytest.approx((0.75 + 0.4 + 0) / 3)
    assert segmentation_scores(truth, 7 - truth) == {"miou": 1.0, "pixel_accuracy": 1.0}
    with pytest.raises(UmetaError, match="one predicted label per sample"):
        segmentation_scores(truth, pred[:1])


# ----------------------------------------------------------------------------- segment_image

def test_segment_image_on_colours_and_positions():
    image = halves()
    labels = segment_image(None, image, 2).labels
    assert labels.shape == (6, 8)
    assert segmentation_scores(np.repeat([[0] * 4 + [1] * 4], 6, 0), labels)["miou"] == 1.0
    grey = np.zeros((4, 10), np.uint8)  # one colour: only the position can split it
    split = segment_image(None, grey, 2, position_weight=1.0).labels
    assert len(split.unique()) == 2 and (split[:, 0] != split[:, -1]).all()


def test_segment_image_shrinks_large_images_and_estimates_k():
    image = np.zeros((60, 90, 3), np.uint8)
    image[:, 30:60] = (0, 255, 0)
    image[:, 60:] = (0, 0, 255)
    result = segment_image(None, image, max_side=30)
    assert result.work_shape == (20, 30) and result.labels.shape == (60, 90)
    assert result.n_segments == 3 and result.k_range == (2, 8)
    assert segment_image(None, image, 3).k_range is None


@pytest.mark.parametrize("bad, message", [
    (np.zeros(5), "must be (H, W) or (H, W, C)"),
    (np.zeros((4, 4, 2)), "must be (H, W) or (H, W, C)"),
    (np.zeros((1, 4)), "at least 2 x 2"),
    (np.full((4, 4), np.nan), "NaN"),
    (np.full((4, 4), 2.0), "values in [2, 2]"),
    (np.array([["a", "b"], ["c", "d"]]), "must hold numbers"),
])
def test_segment_image_refuses_bad_images(bad, message):
    with pytest.raises(UmetaError) as err:
        segment_image(None, bad, 2)
    assert message in str(err.value)


def test_segment_image_refuses_bad_counts():
    with pytest.raises(ParamError, match="n_segments=1 must be"):
        segment_image(None, halves(), 1)
    with pytest.raises(ParamError, match="more than the 48 pixels"):
        segment_image(None, halves(), 49)


def test_snap_to_colour_edges_moves_edge_pixels_only():
    image = torch.zeros(3, 12, 12)
    image[0, :, 6:] = 1.0  # a colour edge between columns 5 and 6
    late = torch.zeros(12, 12, dtype=torch.long)
    late[:, 7:] = 1  # the model's edge a column late
    labels = late.clone()
    labels[2, 2] = 1  # a stray pixel inside segment 0, same colour as its surround
    snapped = snap_to_colour_edges(labels, image, 2)
    truth = torch.zeros(12, 12, dtype=torch.long)
    truth[:, 6:] = 1
    assert torch.equal(snapped, truth)
    assert torch.equal(snap_to_colour_edges(truth, image, 2), truth)  # right edges stay
    flat = torch.full((3, 12, 12), 0.5)  # no colour edge (segments of one colour, textures):
    assert torch.equal(snap_to_colour_edges(late, flat, 2), late)  # the model's edge stands
    with_third = labels.clone()
    with_third[:, :2] = 2
    assert set(snap_to_colour_edges(with_third, image, 3).unique().tolist()) <= {0, 1, 2}


def test_segment_image_snaps_only_a_learners_edges(segmentation_checkpoint):
    from umeta.build import load_learner

    learner = load_learner(segmentation_checkpoint, "cpu")
    image = halves(16, 16)
    snapped = segment_image(learner, image, 2, seed=0)
    plain = segment_image(learner, image, 2, seed=0, snap_edges=False)
    feats, _, work = image_features(learner, image)
    assert torch.equal(plain.labels, assign_pixels(learner, image, feats, plain.centers, work,
                                                   snap_edges=False))
    assert torch.equal(snapped.labels, assign_pixels(learner, image, feats, plain.centers, work))
    colours = segment_image(None, image, 2, seed=0)
    assert torch.equal(colours.labels, segment_image(None, image, 2, seed=0, snap_edges=False)
                       .labels)
    with pytest.raises(ParamError, match="snap_edges"):
        segment_image(None, image, 2, snap_edges="yes")


# ----------------------------------------------------------------------------- estimator

def test_meta_segmenter_fits_and_predicts_other_images():
    model = MetaSegmenter(n_segments=2).fit(halves())
    assert model.labels_.shape == (6, 8) and model.n_segments_ == 2
    assert model.cluster_centers_.shape == (2, 3)
    flipped = model.predict(halves()[:, ::-1])
    assert (flipped == model.labels_[:, ::-1]).all()
    assert (model.fit_predict(halves()) == model.labels_).all()
    with pytest.raises(ParamError, match="position_weight=-1.0 must be"):
        MetaSegmenter(n_segments=2, position_weight=-1.0).fit(halves())


def test_meta_segmenter_with_a_trained_model(segmentation_checkpoint):
    model = MetaSegmenter(str(segmentation_checkpoint), n_segments=2, device="cpu")
    labels = model.fit_predict(halves(16, 16))
    assert labels.shape == (16, 16) and model.cluster_centers_.shape == (2, 4)
    assert model.predict(halves(10, 12)).shape == (10, 12)
    assert (model.predict(halves(16, 16)) == labels).all()  # predict snaps edges as fit does
    plain = MetaSegmenter(str(segmentation_checkpoint), n_segments=2, device="cpu",
                          snap_edges=False).fit(halves(16, 16))
    assert (plain.predict(halves(16, 16)) == plain.labels_).all()


def test_the_builtin_segmentation_model_separates_two_textures():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3))
    stripes = (np.arange(64) // 3 % 2).astype(float)
    image[:, :32] = 0.5 + 0.4 * (stripes[:, None, None] - 0.5)  # grey stripes, mean 0.5
    image[:, 32:] = 0.5 + 0.05 * rng.normal(size=(64, 32, 1))  # flat grey, mean 0.5
    labels = MetaSegmenter("builtin", n_segments=2, device="cpu").fit_predict(image.clip(0, 1))
    truth = np.repeat([[0] * 32 + [1] * 32], 64, 0)
    assert segmentation_scores(truth, labels)["pixel_accuracy"] > 0.9


# ----------------------------------------------------------------------------- training (CLI)

@pytest.fixture(scope="module")
def segmentation_checkpoint(tmp_path_factory):
    """A tiny pixelproto model: configs/segment_mosaic.toml for 3 steps on 16 x 16 textures."""
    cfg = load_config(REPO_ROOT / "configs" / "segment_mosaic.toml")
    cfg.data.image_size, cfg.model.hidden = 16, 4
    cfg.model.options = {"out_dim": 4, "levels": 1, "dilations": [1]}
    cfg.optim.steps, cfg.optim.meta_batch = 3, 2
    cfg.run.run_dir = str(tmp_path_factory.mktemp("seg") / "run")
    train(cfg, progress=False)
    return cfg.run.run_dir + "/checkpoints/last.safetensors"


# ----------------------------------------------------------------------------- files and CLI

def test_label_map_png_holds_the_labels(tmp_path):
    labels = np.random.default_rng(0).integers(0, 5, (7, 9))
    save_png(label_map_picture(labels), tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as picture:
        assert picture.mode == "P" and (np.asarray(picture) == labels).all()
    many = np.arange(600).reshape(20, 30) % 300
    save_png(label_map_picture(many), tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as picture:
        assert (np.asarray(picture) == many).all()
    tinted = overlay(np.zeros((2, 3)), np.array([[0, 0, 1], [0, 0, 1]]))
    assert tinted.shape == (2, 3, 3) and (tinted[:, 1] == 255).all()  # boundary in white


@pytest.fixture
def pictures(tmp_path):
    Image.fromarray(halves(20, 30)).save(tmp_path / "a.png")
    Image.fromarray(halves(12, 10)[..., 0]).save(tmp_path / "b.jpg")
    (tmp_path / "notes.png").write_text("not an image")
    return tmp_path


def test_cli_segment_writes_label_maps_and_overlays(pictures, segmentation_checkpoint):
    proc = umeta("segment", "a.png", "b.jpg", "--n-segments", "2", "--checkpoint", "none",
                 "--out", "out", cwd=pictures)
    assert proc.returncode == 0, proc.stderr
    assert "a.png: 2 segments (given)" in proc.stdout
    with Image.open(pictures / "out" / "a_segments.png") as picture:
        labels = np.asarray(picture)
    assert labels.shape == (20, 30) and segmentation_scores(
        np.repeat([[0] * 15 + [1] * 15], 20, 0), labels)["miou"] == 1.0
    with Image.open(pictures / "out" / "b_overlay.png") as picture:
        assert picture.size == (10, 12) and picture.mode == "RGB"
    again = umeta("segment", "a.png", "--checkpoint", str(segmentation_checkpoint), "--out", "out",
                  "--force", "--max-side", "8", "--device", "cpu", cwd=pictures)
    assert again.returncode == 0, again.stderr
    assert "estimated: the best silhouette of k = 2..8" in again.stdout
    assert "30x20 segmented at 8x5 (--max-side 8)" in again.stdout
    plain = umeta("segment", "a.png", "--checkpoint", str(segmentation_checkpoint), "--out", "out",
                  "--force", "--n-segments", "2", "--no-snap-edges", "--device", "cpu",
                  cwd=pictures)
    assert plain.returncode == 0, plain.stderr


@pytest.mark.parametrize("args, message", [
    (["missing.png"], "image 'missing.png' not found"),
    (["notes.png"], "cannot read image 'notes.png'"),
    (["a.png", "--n-segments", "1"], "--n-segments 1 must be an integer >= 2"),
    (["a.png", "--n-segments", "601"], "--n-segments 601 is more than the 600 pixels"),
    (["a.png", "--k-range", "3", "2"], "--k-range 3 2 must be a pair"),
    (["a.png", "--n-segments", "2", "--k-range", "2", "4"], "drop it or --n-segments"),
    (["a.png", "--max-side", "4"], "--max-side 4 must be an integer >= 8"),
    (["a.png", "--out", "a.png"], "is a file; name a folder"),
    (["a.png", "sub/a.png"], "would both write a_segments.png"),
])
def test_cli_segment_errors_are_one_line(pictures, args, message, capsys, monkeypatch):
    from umeta.cli import main

    (pictures / "sub").mkdir(exist_ok=True)
    Image.fromarray(halves()).save(pictures / "sub" / "a.png")
    monkeypatch.chdir(pictures)
    assert main(["segment", *args, "--checkpoint", "none"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_cli_segment_refuses_a_model_it_cannot_use(pictures, checkpoint_of_protonet):
    assert_user_error(umeta("segment", "a.png", "--checkpoint", "nothing.safetensors",
                            cwd=pictures), "nothing.safetensors")
    assert_user_error(umeta("segment", "a.png", "--checkpoint", checkpoint_of_protonet,
                            cwd=pictures), "segmentation needs a dense learner")


@pytest.fixture(scope="module")
def checkpoint_of_protonet(tmp_path_factory) -> str:
    from umeta.config import TrainConfig
    from umeta.data.glyphs import make_glyphs

    cfg = TrainConfig()
    cfg.model.hidden, cfg.tasks.q_query = 4, 1
    cfg.optim.steps, cfg.optim.meta_batch = 1, 1
    cfg.run.run_dir, cfg.run.device, cfg.run.val_every = str(
        tmp_path_factory.mktemp("proto") / "run"), "cpu", 0
    train(cfg, train_data=make_glyphs(6), progress=False)
    return cfg.run.run_dir + "/checkpoints/last.safetensors"


def test_cli_segment_never_overwrites_without_force(pictures):
    first = umeta("segment", "a.png", "--checkpoint", "none", "--n-segments", "2", cwd=pictures)
    assert first.returncode == 0, first.stderr
    assert_user_error(umeta("segment", "a.png", "--checkpoint", "none", "--n-segments", "2",
                            cwd=pictures), "segments/a_segments.png' exists; pass --force")


# ----------------------------------------------------------------------------- B10 helpers

def test_b10_sets_have_exact_masks_and_its_summary_counts_wins():
    pytest.importorskip("skimage", reason="B10 needs scikit-image (the bench extra)")
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import b10_segmentation as b10

    for name, items in {"heldout": b10.heldout_set(3, 0), "photos": b10.photo_set(3, 0)}.items():
        for image, mask in items:
            assert image.shape == (b10.HELDOUT_SIZE, b10.HELDOUT_SIZE, 3) and image.dtype == np.uint8
            k = int(mask.max()) + 1
            assert k >= 2 and sorted(np.unique(mask)) == list(range(k)), name
            assert np.bincount(mask.ravel()).min() >= 0.02 * mask.size
    image, mask = b10.heldout_set(1, 5)[0]
    merged = b10.slic_segments(image, 3, seed=0)
    assert merged.shape == mask.shape and len(np.unique(merged)) <= 3
    perfect = {"miou": 1.0, "pixel_accuracy": 1.0}
    half = {"miou": 0.5, "pixel_accuracy": 0.5}
    per_image = [{"set": "heldout-textures", "umeta": perfect, **{b: half for b in b10.BASELINES}},
                 {"set": "heldout-textures", "umeta": half, **{b: perfect for b in b10.BASELINES}}]
    rows = {(r["setting"], r["method"], r["metric"]): r for r in b10.summary_rows(per_image)}
    assert rows["heldout-textures", "umeta", "miou"]["mean"] == 75.0
    assert rows["all", "umeta", "miou_gain_vs_slic"]["mean"] == 0.0
    ahead = rows["all", "umeta", "pct_images_ahead_of_all_baselines"]
    assert ahead["mean"] == 50.0 and ahead["target_met"] is False


def test_mosaics_can_be_cut_from_a_folder_of_ones_own_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png")
    cfg = load_config(REPO_ROOT / "configs" / "segment_mosaic.toml")
    cfg.data.dataset, cfg.data.image_size, cfg.model.hidden = str(tmp_path), 16, 4
    cfg.model.options = {"out_dim": 4, "levels": 1, "dilations": [1]}
    cfg.optim.steps, cfg.optim.meta_batch = 1, 1
    cfg.run.run_dir = str(tmp_path / "run")
    result = train(cfg, progress=False)
    assert result.learner.image_shape == (3, 16, 16) and result.steps == 1


def test_umeta_eval_refuses_a_segmentation_model(segmentation_checkpoint, capsys):
    from umeta.cli import main

    assert main(["eval", "--checkpoint", segmentation_checkpoint, "--episodes", "1",
                 "--device", "cpu", "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no few-shot classification rule" in lines[0], lines
