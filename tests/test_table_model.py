"""The table modality: synthetic priors, the task source and its exclusions, the encoder, the
learner, training and export through `umeta train`, estimators and the B8 method."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, table_config
from umeta.build import export_learner, load_learner
from umeta.config import TrainConfig
from umeta.data import table_sets
from umeta.data.table_priors import MAX_CLUSTERS, OUTLIER_TYPES, sample_prior_tables
from umeta.data.table_sets import TableCollection, load_table_collection
from umeta.data.tables import Table
from umeta.errors import UmetaError
from umeta.estimators import MetaAnomalyDetector, MetaClusterer, MetaEmbedder
from umeta.learners.table import TableLearner, cluster_loss, outlier_loss
from umeta.metrics import ari, auroc
from umeta.models.table_encoder import TableEncoder, cell_features, column_stats
from umeta.tasks.tables import TableBatch, TableTasks
from umeta.train import train

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))


def small_encoder(**options) -> TableEncoder:
    return TableEncoder(**{"hidden": 8, "row_width": 16, "embed_dim": 4, "heads": 2,
                           "row_points": 4, "neighbours": 3, **options})


def labelled(x, y, name) -> Table:
    d = x.shape[1]
    return Table(np.asarray(x, np.float32), np.asarray(y, np.int64),
                 tuple(f"c{j}" for j in range(d)), np.zeros(d, bool), name, name, "classes")


def blobs(n=120, k=3, d=4, seed=0, gap=6.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.normal(size=(n, d)) + gap * np.eye(k, d)[y], y


# ----------------------------------------------------------------------------- priors

def test_prior_tables_shapes_labels_and_seeds():
    tables = sample_prior_tables(16, 300, 9, torch.Generator().manual_seed(3), outlier_share=1.0)
    again = sample_prior_tables(16, 300, 9, torch.Generator().manual_seed(3), outlier_share=1.0)
    other = sample_prior_tables(16, 300, 9, torch.Generator().manual_seed(4), outlier_share=1.0)
    assert tables.x.shape == (16, 300, 9) and tables.x.dtype == torch.float32
    assert torch.equal(torch.nan_to_num(tables.x, 1e9), torch.nan_to_num(again.x, 1e9))
    assert not torch.equal(torch.nan_to_num(tables.x, 1e9), torch.nan_to_num(other.x, 1e9))
    assert torch.equal(tables.outlier, tables.y == -1)
    assert ((tables.outlier_type >= 0) == tables.outlier).all()
    assert int(tables.outlier_type.max()) < len(OUTLIER_TYPES)
    assert tables.outlier.any(1).all()  # outlier_share 1: every table has outliers
    inliers = tables.y[~tables.outlier]
    assert inliers.min() >= 0 and inliers.max() < MAX_CLUSTERS
    for t in range(16):
        present = tables.y[t][tables.y[t] >= 0].unique()
        assert len(present) <= int(tables.n_clusters[t]) and present.max() < tables.n_clusters[t]
    values = tables.x[~torch.isnan(tables.x)]
    assert torch.isfinite(values).all()
    assert torch.isnan(tables.x).all(1).sum() == 0  # no column is missing everywhere
    codes = tables.x.transpose(1, 2)[tables.categorical]  # (columns, N)
    codes = codes[~torch.isnan(codes)]
    assert torch.equal(codes, codes.round()) and codes.min() >= 0 and codes.max() <= 7
    assert tables.informative.any(1).all()


def test_prior_clusters_are_recoverable_when_well_separated():
    """Tables without warps of their informative columns are not required; still, k-means on
    standardised columns must beat chance on most tables (the labels describe the data)."""
    from sklearn.cluster import KMeans

    tables = sample_prior_tables(12, 400, 6, torch.Generator().manual_seed(0), outlier_share=0.0)
    scores = []
    for t in range(12):
        x = np.nan_to_num(tables.x[t].numpy())
        x = (x - x.mean(0)) / (x.std(0) + 1e-9)
        k = int(tables.n_clusters[t])
        scores.append(ari(tables.y[t].numpy(), KMeans(k, n_init=4, random_state=0).fit_predict(x)))
    assert np.mean(scores) > 0.1


def test_prior_tables_of_many_clusters():
    """max_clusters above 10: about three tables in ten have 11 .. max_clusters clusters, their
    labels in range; the default draws exactly what it drew before the option existed."""
    many = sample_prior_tables(200, 200, 3, torch.Generator().manual_seed(1), max_clusters=24)
    k = many.n_clusters
    assert k.min() >= 2 and k.max() <= 24 and 0.2 < float((k > 10).float().mean()) < 0.4
    inliers = many.y[~many.outlier]
    assert inliers.max() < 24 and (many.y.max(1).values < k).all()
    codes = sample_prior_tables(8, 100, 4, torch.Generator().manual_seed(2), max_clusters=40)
    assert torch.isfinite(codes.x[~torch.isnan(codes.x)]).all()
    default = sample_prior_tables(4, 50, 3, torch.Generator().manual_seed(5))
    ten = sample_prior_tables(4, 50, 3, torch.Generator().manual_seed(5), max_clusters=10)
    assert torch.equal(torch.nan_to_num(default.x, 1e9), torch.nan_to_num(ten.x, 1e9))
    assert default.n_clusters.max() <= 10


def test_plain_prior_tables_are_linear_maps_of_two_or_three_axes():
    """plain_share 1: no missing value, no category, every column informative, and the
    standardised columns of each table of rank 2 or 3 up to float32 rounding (a linear map of
    its latent shapes, then a scale and an offset per column); plain_share 0 draws what the
    default draws."""
    plain = sample_prior_tables(12, 300, 7, torch.Generator().manual_seed(6), outlier_share=0.0,
                                plain_share=1.0)
    assert not torch.isnan(plain.x).any() and not plain.categorical.any()
    assert plain.informative.all()
    for t in range(12):
        x = plain.x[t].double()
        x = (x - x.mean(0)) / x.std(0)
        energy = torch.linalg.svdvals(x) ** 2
        assert energy[:3].sum() / energy.sum() > 0.9999 and energy[1] / energy.sum() > 0.01
    default = sample_prior_tables(4, 50, 3, torch.Generator().manual_seed(5))
    zero = sample_prior_tables(4, 50, 3, torch.Generator().manual_seed(5), plain_share=0.0)
    assert torch.equal(torch.nan_to_num(default.x, 1e9), torch.nan_to_num(zero.x, 1e9))


def test_prior_argument_errors():
    with pytest.raises(UmetaError, match="n_rows >= 4"):
        sample_prior_tables(1, 2, 3, torch.Generator())
    with pytest.raises(UmetaError, match="max_clusters must be in"):
        sample_prior_tables(1, 50, 3, torch.Generator(), max_clusters=5)
    with pytest.raises(UmetaError, match="plain_share must be in"):
        sample_prior_tables(1, 50, 3, torch.Generator(), plain_share=1.5)


# ----------------------------------------------------------------------------- tasks

def real_collection() -> TableCollection:
    x1, y1 = blobs(300, 3, 6, seed=1)
    x2, y2 = blobs(200, 2, 5, seed=2)
    return TableCollection([labelled(x1, y1, "pmlb/one"), labelled(x2, y2, "pmlb/two")])


def test_task_source_mixes_real_and_synthetic_tables_reproducibly():
    options = dict(min_rows=64, max_rows=128, min_columns=3, max_columns=5, real_share=0.5)
    tasks = TableTasks(real_collection(), seed=5, **options)
    state = tasks.state_dict()
    batch = tasks.sample(16)
    assert isinstance(batch, TableBatch) and batch.num_tasks == 16
    assert batch.x.shape[0] == 16 and 64 <= batch.x.shape[1] <= 128
    assert 3 <= batch.x.shape[2] <= 5
    tasks.load_state_dict(state)
    again = tasks.sample(16)
    assert torch.equal(torch.nan_to_num(batch.x), torch.nan_to_num(again.x))
    assert torch.equal(batch.y, again.y) and torch.equal(batch.outlier, again.outlier)
    fresh = TableTasks(real_collection(), seed=5, **options).sample(16)
    assert torch.equal(torch.nan_to_num(batch.x), torch.nan_to_num(fresh.x))
    assert (batch.outlier_task <= batch.outlier.any(1)).all()
    assert torch.equal(batch.outlier, batch.y == -1)


def test_real_anomaly_tasks_take_their_outliers_from_one_class():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [150, 100, 50])
    x = 100.0 * (y[:, None] + 1) + rng.uniform(size=(300, 4))  # |value| // 100 - 1 = class
    table = labelled(x, y, "pmlb/one")
    tasks = TableTasks(TableCollection([table]), real_share=1.0, real_outlier_share=1.0,
                       min_rows=100, max_rows=100, min_columns=4, max_columns=4)
    for _ in range(5):
        xt, yt, outlier, known = tasks._real_task(table, 100, 4, rng)
        assert known and 1 <= outlier.sum() <= 15 and (yt[outlier] == -1).all()
        classes = (np.abs(xt[:, 0]) // 100 - 1).astype(int)
        assert len(set(classes[outlier])) == 1
        assert set(classes[outlier]).isdisjoint(set(classes[~outlier]))
        assert (classes[~outlier] == yt[~outlier]).all()


def test_task_source_refuses_bad_options():
    with pytest.raises(UmetaError, match="real_share > 0 but there are no real tables"):
        TableTasks(TableCollection([]), real_share=0.5)
    with pytest.raises(UmetaError, match="min_rows"):
        TableTasks(TableCollection([]), min_rows=8, real_share=0.0)
    with pytest.raises(UmetaError, match="max_clusters"):
        TableTasks(TableCollection([]), real_share=0.0, max_clusters=100)


def write_pmlb(root: Path, name: str, x: np.ndarray, y: np.ndarray) -> None:
    folder = root / "tabular/pmlb/datasets" / name
    folder.mkdir(parents=True)
    with gzip.open(folder / f"{name}.tsv.gz", "wt") as f:
        f.write("\t".join([f"f{j}" for j in range(x.shape[1])] + ["target"]) + "\n")
        for row, label in zip(x, y):
            f.write("\t".join(f"{v:.6g}" for v in row) + f"\t{label}\n")


@pytest.fixture
def table_root(tmp_path):
    """A shared-data-like folder: pmlb tables alpha, beta, and 'renamed', a copy of alpha
    under another name with its rows and columns shuffled."""
    root = tmp_path / "data"
    xa, ya = blobs(150, 3, 4, seed=1)
    xb, yb = blobs(120, 2, 3, seed=2)
    write_pmlb(root, "alpha", xa, ya)
    write_pmlb(root, "beta", xb, yb)
    order = np.random.default_rng(0).permutation(150)
    write_pmlb(root, "renamed", xa[order][:, [2, 0, 3, 1]], ya[order])
    return root


def test_exclusion_drops_the_table_and_a_renamed_copy(table_root, tmp_path):
    cache = tmp_path / "cache"
    kept = load_table_collection(["pmlb/alpha"], collections=["pmlb"], root=table_root,
                                 cache=cache)
    assert kept.training_tables == ["pmlb/beta"]
    assert set(kept.excluded) == {"pmlb/alpha", "pmlb/renamed"}
    assert "hash" in kept.excluded["pmlb/renamed"][0]["reasons"]
    assert kept.record()["training_tables"] == ["pmlb/beta"]
    everything = load_table_collection([], collections=["pmlb"], root=table_root, cache=None)
    assert everything.training_tables == ["pmlb/alpha", "pmlb/beta", "pmlb/renamed"]


def test_exclusion_of_a_user_file_and_by_pattern(table_root, tmp_path):
    csv = tmp_path / "mine.csv"
    xb, _ = blobs(120, 2, 3, seed=2)
    csv.write_text("p,q,r\n" + "\n".join(",".join(f"{v:.6g}" for v in row) for row in xb))
    kept = load_table_collection([str(csv)], collections=["pmlb"], root=table_root, cache=None)
    assert "pmlb/beta" not in kept.training_tables
    kept = load_table_collection(["pmlb/AL*"], collections=["pmlb"], root=table_root, cache=None)
    assert kept.training_tables == ["pmlb/beta"]
    with pytest.raises(UmetaError, match="matches no table"):
        load_table_collection(["pmlb/zzz*"], collections=["pmlb"], root=table_root)
    with pytest.raises(UmetaError, match="neither a table key"):
        load_table_collection(["nowhere.csv"], collections=["pmlb"], root=table_root)


def test_exclusion_record_is_reused_only_for_unchanged_tables(table_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_table_collection(["pmlb/alpha"], collections=["pmlb"], root=table_root,
                                  cache=cache)
    assert len(list(cache.glob("*.json"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("compared again although the record holds every pair")

    monkeypatch.setattr(table_sets, "find_near_copies", refuse)
    again = load_table_collection(["pmlb/alpha"], collections=["pmlb"], root=table_root,
                                  cache=cache)
    assert again.training_tables == first.training_tables and again.excluded == first.excluded
    # beta changes: its pairs are compared again
    xb, yb = blobs(120, 2, 3, seed=9)
    import shutil

    shutil.rmtree(table_root / "tabular/pmlb/datasets/beta")
    write_pmlb(table_root, "beta", xb, yb)
    from umeta.data.tables import _load_cached

    _load_cached.cache_clear()
    with pytest.raises(AssertionError, match="compared again"):
        load_table_collection(["pmlb/alpha"], collections=["pmlb"], root=table_root, cache=cache)


# ----------------------------------------------------------------------------- the encoder

def test_cell_features_are_scale_free_and_mark_missing_values():
    x = torch.tensor([[[1.0, 5.0], [2.0, float("nan")], [3.0, 5.0], [40.0, 7.0]]])
    f = cell_features(x, column_stats(x))
    g = cell_features(1000 * x - 7, column_stats(1000 * x - 7))
    assert torch.allclose(f, g, atol=1e-4)
    assert f[0, 1, 1].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert f[0, 0, 1, 3] == pytest.approx(2 / 3)  # two of the three known values are 5
    assert f[0, 3, 0, 2] > f[0, 2, 0, 2] > f[0, 1, 0, 2]  # normal scores follow the ranks


def test_encoder_is_row_equivariant_and_column_invariant():
    torch.manual_seed(0)
    encoder = small_encoder().eval()
    x, _ = blobs(60, 3, 5, seed=3)
    x = torch.tensor(x, dtype=torch.float32)[None]
    x[0, 7, 2] = float("nan")
    with torch.no_grad():
        z, logit = encoder(x)
        rows = torch.randperm(60)
        z_rows, logit_rows = encoder(x[:, rows])
        cols = torch.tensor([3, 1, 4, 0, 2])
        z_cols, logit_cols = encoder(x[:, :, cols])
    assert torch.isfinite(z).all() and torch.isfinite(logit).all()
    assert torch.allclose(z_rows, z[:, rows], atol=1e-4)
    assert torch.allclose(logit_rows, logit[:, rows], atol=1e-4)
    # the learned embedding and the scores do not depend on the column order; the weighted
    # values follow the columns (so distances between rows, and k-means, do not either)
    assert torch.allclose(z_cols[..., :4], z[..., :4], atol=1e-4)
    assert torch.allclose(logit_cols, logit, atol=1e-4)
    values = z[..., 4:].reshape(1, 60, 5, 2)
    assert torch.allclose(z_cols[..., 4:].reshape(1, 60, 5, 2), values[:, :, cols], atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 2), (5, 1), (40, 3), (300, 12)])
def test_encoder_takes_any_table_shape(shape):
    encoder = small_encoder().eval()
    x = torch.randn(*shape)
    z, logit, ctx = encoder.encode(x)
    assert z.shape == (shape[0], 4 + 2 * shape[1]) and logit.shape == (shape[0],)
    assert torch.isfinite(z).all() and len(ctx.rows) == shape[0]


def test_the_embedding_keeps_the_values_of_the_most_weighted_columns():
    encoder = small_encoder(raw_columns=3).eval()
    with torch.no_grad():
        assert encoder(torch.randn(1, 40, 8))[0].shape == (1, 40, 4 + 2 * 3)
        assert small_encoder(raw_columns=0)(torch.randn(1, 40, 8))[0].shape == (1, 40, 4)


def test_standard_values_are_each_columns_plain_z_score_times_its_weight():
    encoder = small_encoder(standard_values=True).eval()
    x = torch.randn(60, 3) * torch.tensor([1.0, 100.0, 0.01]) + 7
    x[5, 1] = float("nan")
    with torch.no_grad():
        z = encoder.encode(x)[0]
        weights = torch.nn.functional.softplus(encoder.column_weight(
            encoder.column.summary(encoder.cell_embed(cell_features(
                x[None], column_stats(x[None]))))))[0, 0, :, 2]
    assert z.shape == (60, 4 + 3 * 3)
    finite = torch.isfinite(x)
    mean = torch.stack([x[finite[:, j], j].mean() for j in range(3)])
    std = torch.stack([x[finite[:, j], j].std(unbiased=False) for j in range(3)])
    plain = z[:, 4 + 2::3] / weights
    expected = ((x - mean) / std).nan_to_num(0.0)
    assert torch.allclose(plain, expected, atol=1e-4)


def test_encoder_flags_must_be_booleans():
    with pytest.raises(UmetaError, match="model.options.value_gate must be true or false"):
        small_encoder(value_gate="yes")


@pytest.mark.parametrize("options", [{}, {"standard_values": True, "value_gate": True}])
def test_long_tables_use_a_context_sample_and_chunks(options):
    torch.manual_seed(0)
    encoder = small_encoder(context_rows=64, chunk_cells=1024, reference_rows=32,
                            **options).eval()
    x = torch.randn(500, 6)
    with torch.no_grad():
        z, logit, ctx = encoder.encode(x, seed=1)
        assert len(ctx.rows) == 64
        # the context rows: as the context pass alone gives them
        z_ctx, logit_ctx = encoder(x[ctx.rows][None])
        assert torch.allclose(z[ctx.rows], z_ctx[0], atol=1e-5)
        # every other row: the same whether encoded in chunks or alone
        others = torch.tensor([i for i in range(500) if i not in set(ctx.rows.tolist())][:5])
        alone = torch.cat([encoder.rows(x[i:i + 1], ctx)[0] for i in others.tolist()])
        assert torch.allclose(z[others], alone, atol=1e-5)
        assert not torch.equal(encoder.encode(x, seed=2)[2].rows, ctx.rows)
    with pytest.raises(UmetaError, match="columns"):
        encoder.rows(torch.randn(3, 5), ctx)
    if options:  # the gate: one weight of the table in (0, 2), recorded with the context
        assert ctx.summaries[-1].shape == (1, 1, 1) and 0 < float(ctx.summaries[-1]) < 2


# ----------------------------------------------------------------------------- the learner

def test_cluster_loss_against_a_hand_computation():
    z = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [9.0, 9.0]]])
    y = torch.tensor([[0, 0, 1, -1]])
    loss, accuracy = cluster_loss(z, y, temperature=0.5)
    zv = z[0, :3]
    zn = (zv - zv.mean(0)) / (zv - zv.mean(0)).square().sum(1).mean().sqrt()
    centroids = torch.stack([zn[:2].mean(0), zn[2]])
    logits = -torch.cdist(zn, centroids).square() / 0.5
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0, 1]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert accuracy.item() == pytest.approx((logits.argmax(1) == torch.tensor([0, 0, 1]))
                                            .float().mean().item())


def test_outlier_loss_is_balanced():
    logit = torch.tensor([[0.0, 0.0, 0.0, 2.0]])
    flags = torch.tensor([[False, False, False, True]])
    sp = torch.nn.functional.softplus
    expected = 0.5 * (sp(torch.tensor(-2.0)) + sp(torch.tensor(0.0)))
    assert outlier_loss(logit, flags).item() == pytest.approx(expected.item())


def small_table_config(tmp_path, steps=60, **options) -> TrainConfig:
    cfg = table_config(tmp_path / "run", steps=steps, meta_batch=8, max_rows=128,
                       max_columns=6, **options)
    cfg.model.options["embed_dim"] = 8
    cfg.optim.lr, cfg.run.log_every = 3e-3, 20
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny table model trained by `umeta.train.train` on the synthetic prior."""
    torch.manual_seed(0)
    result = train(small_table_config(tmp_path_factory.mktemp("tables")), progress=False)
    return result


def test_meta_loss_falls_and_the_checkpoint_records_its_tables(trained):
    losses = [r["loss"] for r in trained.history if "loss" in r]
    assert losses[-1] < losses[0]
    path = trained.run_dir / "checkpoints" / "last.safetensors"
    learner = load_learner(path)
    assert isinstance(learner, TableLearner) and learner.input_kind == "tables"
    from umeta.checkpoint import read_checkpoint

    progress = read_checkpoint(path)[1]["progress"]
    assert progress["training_tables"] == [] and progress["exclude"] == []


def test_export_keeps_the_table_model_and_its_training_tables(trained, tmp_path):
    source = trained.run_dir / "checkpoints" / "last.safetensors"
    meta = export_learner(source, tmp_path / "model.safetensors")
    assert meta["progress"]["training_tables"] == []
    a, b = load_learner(source), load_learner(tmp_path / "model.safetensors")
    x = torch.randn(50, 4)
    assert torch.allclose(a.embed(x), b.embed(x), atol=5e-2)


def test_table_learner_refuses_image_backbones_and_episodes():
    from umeta.models.backbones import MLP

    with pytest.raises(UmetaError, match="table_encoder"):
        TableLearner(MLP(4))
    with pytest.raises(UmetaError, match="whole tables"):
        TableLearner(small_encoder()).adapt(None, None, 2)


def test_training_on_tables_refuses_image_pairings(tmp_path):
    cfg = small_table_config(tmp_path)
    cfg.tasks.builder = "psco"
    from umeta.train import check_config

    with pytest.raises(UmetaError, match="do not go together"):
        check_config(cfg)


# ----------------------------------------------------------------------------- estimators

def test_estimators_take_tables_with_missing_values(trained):
    path = str(trained.run_dir / "checkpoints" / "last.safetensors")
    x, y = blobs(150, 3, 4, seed=5)
    x[4, 2] = np.nan
    model = MetaClusterer(path, 3).fit(x)
    assert model.labels_.shape == (150,) and model.n_clusters_ == 3
    assert model.predict(x[:10]).shape == (10,)
    assert MetaClusterer(path).fit(x).k_range_ == (2, 10)  # k estimated
    detector = MetaAnomalyDetector(path).fit(x)
    assert detector.training_scores_.shape == (150,) and detector.reference_ is None
    assert np.isfinite(detector.score_samples(x[:5])).all()
    assert detector.predict(x[:5]).shape == (5,)
    points = MetaEmbedder(path, 2).fit_transform(x)
    assert points.shape == (150, 2) and np.isfinite(points).all()
    with pytest.raises(UmetaError, match="expecting 4 features"):
        model.predict(x[:, :3])
    with pytest.raises(UmetaError, match="fine-tunes image models"):
        MetaClusterer(path, 3, finetune_steps=2).fit(x)


def test_builtin_picks_the_table_model_for_a_table(monkeypatch, trained):
    import umeta.pretrained as pretrained

    asked = []

    def fake_builtin(kind, device="cpu"):
        asked.append(kind)
        return load_learner(trained.run_dir / "checkpoints" / "last.safetensors", device)

    monkeypatch.setattr(pretrained, "load_builtin", fake_builtin)
    x, _ = blobs(60, 2, 3)
    MetaClusterer("builtin", 2).fit(x.astype(np.float32))
    assert asked == ["tables"]


@pytest.mark.parametrize("bad, message", [
    (np.ones((20, 3)), "every column of the table is constant"),
    (np.r_[np.zeros((1, 3)), np.full((1, 3), np.inf)], "infinite value"),
    (np.random.default_rng(0).normal(size=(20, 1)), "at least 2 columns"),
    (np.zeros((20, 3000)), "at most 2048"),
])
def test_table_models_refuse_bad_tables(trained, bad, message):
    learner = load_learner(trained.run_dir / "checkpoints" / "last.safetensors")
    with pytest.raises(UmetaError, match=message):
        MetaClusterer(learner, 2).fit(bad)


# ----------------------------------------------------------------------------- B8 method

def test_b8_method_reports_training_tables_and_runs(trained):
    from umeta.table_method import load

    method = load(str(trained.run_dir / "checkpoints" / "last.safetensors"))
    assert method.training_tables == [] and method.name == "umeta-tables"
    x, y = blobs(100, 2, 3, seed=7)
    assert method.cluster(x.astype(np.float32), 2).shape == (100,)
    scores = method.score(x.astype(np.float32))
    assert scores.shape == (100,) and np.isfinite(scores).all()


def test_b8_leaves_out_what_the_method_trained_on_and_its_copies(table_root):
    import b8_tables

    found = b8_tables.excluded_tables(["pmlb/renamed"], ["pmlb/alpha", "pmlb/beta"], table_root)
    assert list(found) == ["pmlb/alpha"] and "hash" in found["pmlb/alpha"][0]["reasons"]
    assert b8_tables.excluded_tables(["synthetic-priors"], ["pmlb/alpha"], table_root) == {}


def test_b8_method_refuses_a_checkpoint_without_training_tables(tmp_path):
    from umeta.table_method import load
    from umeta.train import train as run

    cfg = TrainConfig()
    cfg.model.hidden, cfg.optim.steps = 4, 1
    cfg.run.run_dir, cfg.run.device = str(tmp_path / "img"), "cpu"
    result = run(cfg, progress=False)
    with pytest.raises(UmetaError, match="records no training_tables"):
        load(str(result.run_dir / "checkpoints" / "last.safetensors"))


# ----------------------------------------------------------------------------- real data

@pytest.mark.realdata
def test_shipped_exclusion_covers_every_b8_table(shared_data):
    import b8_tables
    import tables_dev
    import tomllib

    from umeta.data.table_sets import expand_exclusions
    from umeta.data.tables import list_tables

    config = tomllib.loads((REPO_ROOT / "configs/tables_gpu.toml").read_text())
    patterns = config["data"]["exclude"]
    assert patterns == tables_dev.b8_exclude(shared_data)
    excluded = set(expand_exclusions(patterns, shared_data))
    assert set(list_tables("adbench-classical", shared_data)) <= excluded
    assert set(b8_tables.clustering_keys(shared_data)) <= excluded
    record = json.loads((REPO_ROOT / "benchmarks/results/tables_exclusion_b8.json").read_text())
    assert record["exclude"] == patterns
    assert not set(record["training_tables"]) & excluded


def test_b8_takes_near_copy_outcomes_from_an_exclusion_record(table_root, tmp_path, monkeypatch):
    import b8_tables

    cache = tmp_path / "cache"
    with pytest.raises(UmetaError, match="no training table is left"):  # renamed ~ alpha
        load_table_collection(["pmlb/alpha", "pmlb/beta"], collections=["pmlb"],
                              root=table_root, cache=cache)
    record = json.loads(next(cache.glob("*.json")).read_text())
    monkeypatch.setattr(table_sets, "find_near_copies", lambda *a, **k: 1 / 0)
    found = b8_tables.excluded_tables(["pmlb/renamed"], ["pmlb/alpha", "pmlb/beta"], table_root,
                                      [record])
    assert list(found) == ["pmlb/alpha"]


def test_clustering_a_long_table_fits_on_a_sample_and_labels_every_row():
    from umeta.adapt.cluster import cluster_dataset

    x, y = blobs(3000, 3, 4, seed=11)
    sampled = cluster_dataset(None, x, 3, fit_rows=500, seed=0)
    assert sampled.labels.shape == (3000,) and ari(y, sampled.labels.numpy()) > 0.99
    feats = torch.as_tensor(x, dtype=torch.float32)
    nearest = torch.cdist(feats, sampled.centers.float()).argmin(1)
    assert torch.equal(sampled.labels, nearest)
    inertia = (feats - sampled.centers[sampled.labels]).square().sum()
    assert float(sampled.inertia) == pytest.approx(float(inertia), rel=1e-4)
    full = cluster_dataset(None, x, 3, seed=0)
    assert ari(full.labels.numpy(), sampled.labels.numpy()) > 0.99
