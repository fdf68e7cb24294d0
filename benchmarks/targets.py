"""The project's targets (BENCHMARKS.md), to mark each result row as meeting its target or not.

B1 targets are for the Vinyals test protocol with rotated classes (1692 test classes), for the
inductive rule and for transductive refinement with the episode's unlabeled queries alike (the
issue admits test-time adaptation with its ablation: every transductive row has its inductive
row, ``transductive_steps`` 0, in the same file); other rows get no target.
"""

from __future__ import annotations

from typing import Any

#: (benchmark, training, setting, metric) -> minimum.
TARGETS: dict[tuple[str, str, str, str], float] = {
    **{("B1", "supervised", s, "accuracy"): v
       for s, v in {"5w1s": 98.8, "5w5s": 99.7, "20w1s": 96.0, "20w5s": 98.9}.items()},
    **{("B1", "label-free", s, "accuracy"): v
       for s, v in {"5w1s": 97.0, "5w5s": 99.0, "20w1s": 91.0, "20w5s": 97.5}.items()},
    **{("B2", "label-free", s, "clustering_accuracy"): v
       for s, v in {"5x5": 97.0, "5x20": 97.0, "20x5": 90.0, "20x20": 90.0}.items()},
}
MAML_5W1S = 98.5  # the MAML target


def target_for(benchmark: str, row: dict[str, Any]) -> float | None:
    """The target a row is held to, or None."""
    if benchmark == "B1":
        if row.get("test_classes") not in (None, 1692):
            return None
        if row["method"] == "maml":
            return MAML_5W1S if row["setting"] == "5w1s" else None
    return TARGETS.get((benchmark, row["training"], row["setting"], row["metric"]))


def annotate(doc: dict[str, Any]) -> dict[str, Any]:
    """Add ``target`` and ``target_met`` to every row that has a target; returns ``doc``."""
    for row in doc["results"]:
        target = target_for(doc["benchmark"], row)
        if target is not None:
            row["target"], row["target_met"] = target, row["mean"] >= target
    return doc
