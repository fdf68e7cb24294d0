"""The main job's figures: what a reader needs is on them, and they show a task that was scored."""

from __future__ import annotations

import numpy as np
import pytest

import umeta.mainjob
import umeta.report
from umeta.mainjob import run_main_job


@pytest.fixture
def drawn(monkeypatch):
    """The figures the report functions make, by file name, kept open for inspection."""
    figures = {}

    def keep(fig, path):
        figures[path.name] = fig
        return path

    monkeypatch.setattr(umeta.report, "_save", keep)
    return figures


def texts(fig) -> str:
    """Every piece of text on a figure."""
    import matplotlib.text

    return " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def test_embedding_figure_has_axes_legends_classes_and_clusters(drawn, tmp_path):
    points = np.random.default_rng(0).normal(size=(6, 2))
    umeta.report.plot_embedding(points, np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 1, 1]),
                                ["alpha", "beta"], tmp_path / "embedding.png", "task 3 of 9")
    fig = drawn["embedding.png"]
    ax = fig.axes[0]
    assert "principal component 1" in ax.get_xlabel() and "principal component 2" in ax.get_ylabel()
    words = texts(fig)
    for expected in ("true class", "alpha", "beta", "cluster 1", "cluster 3", "task 3 of 9"):
        assert expected in words


def test_cluster_grid_names_sizes_and_true_classes(drawn, tmp_path):
    images = np.zeros((5, 4, 4))
    umeta.report.plot_cluster_grid(images, np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 1]),
                                   ["alpha", "beta"], tmp_path / "clusters.png", "task 1")
    words = texts(drawn["clusters.png"])
    assert "cluster 1: 3 images" in words and "classes A 2, B 1" in words
    assert "cluster 2: 2 images" in words and "classes B 2" in words
    assert "A = alpha" in words and "B = beta" in words


def test_the_figures_show_the_median_scored_task_and_say_so(drawn, tmp_path, monkeypatch):
    sampled, embedded = [], []
    real_sample, real_embed = umeta.mainjob.sample_clustering_tasks, umeta.mainjob.embed_dataset

    def sample(*args, **kwargs):
        sampled.append(real_sample(*args, **kwargs))
        return sampled[-1]

    def embed(learner, x, *args, **kwargs):
        embedded.append(x)
        return real_embed(learner, x, *args, **kwargs)

    monkeypatch.setattr(umeta.mainjob, "sample_clustering_tasks", sample)
    monkeypatch.setattr(umeta.mainjob, "embed_dataset", embed)
    report = run_main_job(out=tmp_path / "report", steps=2, num_tasks=5, per_class=4,
                          device="cpu", progress=False)
    shown = report["figure_task"]["index"]
    (scored,) = sampled  # no other sample is drawn for the figures
    assert embedded[0].shape == scored.images[shown].shape
    assert (embedded[0] == scored.images[shown]).all()
    title = f"task {shown + 1} of 5, the median one"
    for name in ("embedding.png", "clusters.png", "confusion.png"):
        assert title in texts(drawn[name])
    confusion = drawn["confusion.png"].axes[0]
    assert confusion.get_ylabel() == "true class"
    assert [t.get_text() for t in confusion.get_yticklabels()] == report["figure_task"]["classes"]
