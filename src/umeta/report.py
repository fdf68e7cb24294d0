"""Report figures (PNG, matplotlib Agg): learning curve, 2-D embedding, example clusters,
confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_learning_curve(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Training loss (and accuracy, and validation accuracy if present) against step."""
    train = [r for r in history if "loss" in r]
    val = [r for r in history if "val_accuracy" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], color="tab:blue", label="loss")
    ax.set_xlabel("meta-training step")
    ax.set_ylabel("meta-loss", color="tab:blue")
    acc_ax = ax.twinx()
    acc_ax.plot([r["step"] for r in train], [100 * r["accuracy"] for r in train],
                color="tab:orange", label="training-task accuracy")
    if val:
        acc_ax.plot([r["step"] for r in val], [r["val_accuracy"] for r in val], "o-",
                    color="tab:green", label="validation accuracy")
    acc_ax.set_ylabel("accuracy (%)")
    handles = ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
    acc_ax.legend(handles, [h.get_label() for h in handles], loc="center right", fontsize=8)
    ax.set_title("Meta-training")
    return _save(fig, path)


def plot_embedding(points: np.ndarray, labels: np.ndarray, path: str | Path,
                   title: str = "2-D embedding, coloured by cluster") -> Path:
    """Scatter of points (N, 2) coloured by integer labels (N,)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab20", s=14, edgecolors="none")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, path)


def plot_cluster_grid(images: np.ndarray, assignment: np.ndarray, path: str | Path,
                      per_cluster: int = 10, title: str = "Example clusters (one row each)") -> Path:
    """Rows of example images (N, H, W) for each cluster in ``assignment`` (N,)."""
    clusters = np.unique(assignment)
    fig, axes = plt.subplots(len(clusters), per_cluster,
                             figsize=(per_cluster * 0.6, len(clusters) * 0.6), squeeze=False)
    for row, cluster in enumerate(clusters):
        members = np.flatnonzero(assignment == cluster)[:per_cluster]
        for col in range(per_cluster):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(members):
                ax.imshow(images[members[col]], cmap="gray_r", vmin=0, vmax=1)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, path: str | Path,
                   title: str = "Classes (rows) vs matched clusters (columns)") -> Path:
    """A confusion matrix (classes x clusters, clusters already matched to classes)."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(int(value)), ha="center", va="center", fontsize=7,
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xlabel("cluster")
    ax.set_ylabel("class")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)
