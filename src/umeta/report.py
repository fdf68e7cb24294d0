"""Report figures (PNG, matplotlib Agg): learning curve, 2-D embedding, example clusters,
confusion matrix, robustness curves, and a clustering's explanation (a grid of prototypes,
typical and ambiguous members, or a scatter of them)."""

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


def _short(name: str, width: int = 18) -> str:
    """A class name cut to ``width`` characters for a figure (Omniglot names are long)."""
    return name if len(name) <= width else "..." + name[-(width - 3):]


#: Marker of each cluster in the embedding figure (cycled past ten clusters).
MARKERS = "os^vD<>Ppx"


def plot_embedding(points: np.ndarray, clusters: np.ndarray, truth: np.ndarray,
                   class_names: Sequence[str], path: str | Path, title: str) -> Path:
    """Scatter of 2-D points (N, 2): colour = true class (``truth`` (N,) indexes
    ``class_names``, in the legend), marker = cluster (``clusters`` (N,)); axes are the
    embedding's principal components."""
    fig, ax = plt.subplots(figsize=(6.2, 5))
    colours = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for c in np.unique(clusters):
        for k in np.unique(truth[clusters == c]):
            keep = (clusters == c) & (truth == k)
            ax.scatter(points[keep, 0], points[keep, 1], color=colours(k % colours.N),
                       marker=MARKERS[c % len(MARKERS)], s=22, edgecolors="none")
    class_handles = [plt.Line2D([], [], color=colours(k % colours.N), marker="o", ls="",
                                label=_short(class_names[k])) for k in np.unique(truth)]
    cluster_handles = [plt.Line2D([], [], color="gray", marker=MARKERS[c % len(MARKERS)], ls="",
                                  label=f"cluster {c + 1}") for c in np.unique(clusters)]
    first = ax.legend(handles=class_handles, title="true class (colour)", fontsize=7,
                      title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.add_artist(first)
    ax.legend(handles=cluster_handles, title="cluster (marker)", fontsize=7, title_fontsize=7,
              loc="lower left", bbox_to_anchor=(1.01, 0.0))
    ax.set_xlabel("principal component 1 of the meta-learned embedding")
    ax.set_ylabel("principal component 2")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_cluster_grid(images: np.ndarray, clusters: np.ndarray, truth: np.ndarray,
                      class_names: Sequence[str], path: str | Path, title: str,
                      per_cluster: int = 10) -> Path:
    """Rows of example images (N, H, W), one row per cluster of ``clusters`` (N,), each row
    labelled with the cluster's size and the true classes (``truth`` (N,) indexes
    ``class_names``) of its members; each image carries its class's letter."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ids = np.unique(clusters)
    fig, axes = plt.subplots(len(ids), per_cluster + 1, squeeze=False,
                             figsize=(per_cluster * 0.62 + 3.2, len(ids) * 0.66),
                             gridspec_kw={"width_ratios": [5] + [1] * per_cluster})
    for row, cluster in enumerate(ids):
        members = np.flatnonzero(clusters == cluster)
        counts = np.bincount(truth[members], minlength=len(class_names))
        mix = ", ".join(f"{letters[k % 26]} {counts[k]}" for k in np.argsort(-counts, kind="stable")
                        if counts[k])
        label = axes[row, 0]
        label.axis("off")
        label.text(1.0, 0.5, f"cluster {cluster + 1}: {len(members)} images\nclasses {mix}",
                   ha="right", va="center", fontsize=7, transform=label.transAxes)
        for col in range(per_cluster):
            ax = axes[row, col + 1]
            ax.axis("off")
            if col < len(members):
                i = members[col]
                ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=1)
                ax.text(0.02, 0.98, letters[truth[i] % 26], color="tab:red", fontsize=6,
                        ha="left", va="top", transform=ax.transAxes)
    key = "; ".join(f"{letters[k % 26]} = {_short(n)}" for k, n in enumerate(class_names))
    fig.suptitle(f"{title}\ntrue classes: {key}", fontsize=8)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | Path,
                   title: str) -> Path:
    """A confusion matrix (true classes x clusters, the clusters matched to the classes)."""
    fig, ax = plt.subplots(figsize=(5, 4.4))
    im = ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(int(value)), ha="center", va="center", fontsize=7,
                color="white" if value > matrix.max() / 2 else "black")
    labels = [_short(n) for n in class_names]
    ax.set_xticks(range(matrix.shape[1]), labels[:matrix.shape[1]], fontsize=7, rotation=45,
                  ha="right")
    ax.set_yticks(range(matrix.shape[0]), labels, fontsize=7)
    ax.set_xlabel("the cluster matched to each class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="images")
    return _save(fig, path)


def plot_comparison(names: Sequence[str], scores: np.ndarray, intervals: np.ndarray,
                    accuracy: Sequence[float] | None, criterion: str, recommended: int,
                    path: str | Path, title: str) -> Path:
    """Bars of a label-free criterion per candidate (``scores`` (C,), 95% ``intervals``
    (C, 2) as error bars; the ``recommended`` one in orange) and, beside them, each
    candidate's clustering accuracy in percent (``accuracy`` (C,), with labels)."""
    panels = 1 if accuracy is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels + 0.4 * len(names), 3.2),
                             squeeze=False)
    colours = ["tab:orange" if i == recommended else "tab:blue" for i in range(len(names))]
    pos = np.arange(len(names))
    err = np.abs(np.stack([scores - intervals[:, 0], intervals[:, 1] - scores]))
    ax = axes[0, 0]
    ax.bar(pos, scores, color=colours, yerr=err, capsize=3)
    ax.set_ylabel(f"{criterion} (label-free)")
    ax.set_title("label-free, 95% CI; orange: recommended", fontsize=8)
    if accuracy is not None:
        acc_ax = axes[0, 1]
        acc_ax.bar(pos, accuracy, color=colours)
        acc_ax.set_ylabel("clustering accuracy (%)")
        acc_ax.set_title("against the labels", fontsize=8)
    for a in axes[0]:
        a.set_xticks(pos, [_short(n, 14) for n in names], rotation=30, ha="right", fontsize=8)
    fig.suptitle(title, fontsize=9, y=1.02)
    return _save(fig, path)


def plot_robustness(panels: dict[str, dict[str, tuple]], path: str | Path, title: str) -> Path:
    """One panel per condition (a corruption, or the PGD attack): accuracy against severity.

    Parameters
    ----------
    panels : dict
        ``condition -> {line label: (levels, means, ci95s)}``; a condition named ``"pgd"`` is
        plotted against its radius in 1/255 units. Lines share a colour when their labels agree
        up to the first comma; lines whose label contains "pixels" are dashed.
    path, title : where to write the PNG and its title.
    """
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(3.3 * cols, 2.6 * rows),
                             sharey=True)
    colours = {}
    for ax, (condition, lines) in zip(axes.flat, panels.items()):
        for label, (levels, means, cis) in lines.items():
            x = np.asarray(levels, dtype=float) * (255 if condition == "pgd" else 1)
            colour = colours.setdefault(label.split(",")[0], f"C{len(colours)}")
            ax.errorbar(x, means, yerr=cis, label=label, color=colour, marker="o", ms=3,
                        capsize=2, lw=1.2, ls="--" if "pixels" in label else "-")
        ax.set_title(condition.replace("_", " "), fontsize=9)
        ax.set_xlabel("eps x 255 (L-inf)" if condition == "pgd" else "severity", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7,
               bbox_to_anchor=(0.5, -0.02 - 0.03 * (len(labels) > 4)))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, path)


def _thumbnail(ax, image: np.ndarray) -> None:
    """An image (C, H, W) in [0, 1] drawn as it is: grey for one channel, colour for three."""
    ax.axis("off")
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(image[:3].transpose(1, 2, 0), 0, 1))


def plot_explanation_grid(images: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                          prototypes: np.ndarray, typical: np.ndarray, ambiguous: np.ndarray,
                          path: str | Path, title: str) -> Path:
    """One row per cluster: its prototype, its most typical and its most ambiguous members,
    each with its confidence (ambiguous ones in red).

    Parameters
    ----------
    images : ndarray of shape (N, C, H, W), values in [0, 1]
    labels, confidence : ndarrays of shape (N,)
    prototypes : ndarray of shape (k,), sample indices (-1: none)
    typical, ambiguous : ndarrays of shape (k, n), sample indices (-1: none)
    path, title : where to write the PNG and its title.
    """
    k, n = typical.shape
    # columns: label, prototype, gap, n typical, gap, n ambiguous
    groups = [("prototype", prototypes[:, None], 1), ("most typical", typical, 3),
              ("most ambiguous", ambiguous, 4 + n)]
    ratios = [2.4, 1, 0.3] + [1] * n + [0.3] + [1] * n
    fig, axes = plt.subplots(k, len(ratios), squeeze=False,
                             figsize=(0.7 * sum(ratios), 0.8 * k + 0.7),
                             gridspec_kw={"width_ratios": ratios})
    for ax in axes.flat:
        ax.axis("off")
    for row in range(k):
        axes[row, 0].text(1.0, 0.5, f"cluster {row + 1}\n{int((labels == row).sum())} samples",
                          ha="right", va="center", fontsize=7, transform=axes[row, 0].transAxes)
        for name, index, first in groups:
            for j in range(index.shape[1]):
                ax = axes[row, first + j]
                if row == 0 and j == 0:
                    ax.set_title(name, fontsize=7, loc="left")
                i = int(index[row, j])
                if i < 0:
                    continue
                _thumbnail(ax, images[i])
                ax.text(0.5, -0.06, f"{confidence[i]:.2f}", ha="center", va="top", fontsize=6,
                        transform=ax.transAxes,
                        color="tab:red" if name == "most ambiguous" else "black")
    fig.suptitle(f"{title}\nunder each image: its confidence (relative margin between its "
                 f"cluster's centre and the nearest other)", fontsize=8)
    return _save(fig, path)


def plot_explanation_scatter(points: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                             prototypes: np.ndarray, ambiguous: np.ndarray, path: str | Path,
                             title: str) -> Path:
    """The samples in two dimensions (``points`` (N, 2)), coloured by cluster, faded by low
    confidence, with each cluster's prototype (star) and most ambiguous members (circled)."""
    fig, ax = plt.subplots(figsize=(6, 4.8))
    colours = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    alpha = 0.25 + 0.75 * np.clip(confidence, 0, 1)
    for c in np.unique(labels):
        keep = labels == c
        ax.scatter(points[keep, 0], points[keep, 1], s=14, color=colours(c % colours.N),
                   alpha=alpha[keep], edgecolors="none", label=f"cluster {c + 1}")
    shown = prototypes[prototypes >= 0]
    ax.scatter(points[shown, 0], points[shown, 1], marker="*", s=160, c="black",
               label="prototype")
    doubtful = ambiguous[ambiguous >= 0]
    ax.scatter(points[doubtful, 0], points[doubtful, 1], s=60, facecolors="none",
               edgecolors="tab:red", linewidths=1.0, label="most ambiguous")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
