"""B11: does `umeta compare`'s label-free criterion pick the candidate the labels say is best?

Each *case* is one unlabeled image set with k given (as B2 / B6 give it) and a list of candidate
models; :func:`umeta.compare.compare_models` clusters it in every candidate's space, scores each
with every label-free criterion (`umeta.adapt.selection.CRITERIA`) and, with the labels, its
clustering accuracy. Per criterion and group of cases: the **hit rate** (the criterion's first
is the most accurate candidate; ties in accuracy count as hits), with a Wilson 95% interval, the
**regret** (accuracy points lost against the best candidate), and the **Spearman** and
**Kendall** rank correlations between criterion and accuracy over the candidates of a case (mean
over cases, t-interval). Baselines in the same run: a random pick (its expected hit rate) and
"global best" (MetaOD's "no model selection": always the candidate of highest mean accuracy on
the Omniglot cases), plus, for the default criterion, the hit rate of the cases whose
recommendation held in at least 80% of the bootstrap resamples (is the stated uncertainty
informative?).

Part A, candidates given as checkpoints (cheap, many cases): the built-in image model in its own
space and at block 2, the raw pixels, and ProtoNets / MAML / PsCo meta-trained here without
labels on Omniglot's 30 background alphabets (UMTRA / PsCo tasks, `umeta.recipes.compare_config`,
a fixed number of steps each, about two minutes on a shared 2-core CPU). Cases: few-shot clustering
tasks of Omniglot's 20 evaluation alphabets (10 characters x 20 drawers of one alphabet), B6's
tasks (5x10 and 10x10 of each xdomain set, `b6_xdomain.draw_tasks`) and B6's whole sets
(a seeded subsample). No model trains on an evaluated image.

Part B, the command as a user runs it: ProtoNets, MAML and PsCo meta-trained without labels
*on the evaluated images themselves* (allowed: they are the user's own unlabeled data; the labels
are read only to score), 20 s each (`--budget-s`), against the built-in model and the raw pixels, on
whole xdomain sets and whole Omniglot evaluation alphabets.

    nice -n 10 python benchmarks/b11_compare.py --out benchmarks/results/b11_compare.json
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import b6_xdomain as b6
from entry import run_main

from umeta.adapt.selection import CRITERIA
from umeta.compare import CONFIDENT_SHARE as CONFIDENT, LEARNER_CHOICES, compare_models
from umeta.config import DataConfig
from umeta.data.imageset import ImageSet
from umeta.data.sources import load_part
from umeta.metrics import mean_ci95
from umeta.recipes import compare_config
from umeta.results import result_row, write_results
from umeta.tasks.clustering import sample_clustering_tasks
from umeta.train import train

DEFAULT = CRITERIA[0]
#: Steps of each Omniglot-background model (117 to 139 s each in the recorded run, on a shared
#: 2-core CPU).
LIBRARY_STEPS = {"protonet": 600, "maml": 1000, "psco": 1500}


# ----------------------------------------------------------------------------- statistics

def wilson_interval(hits: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion ``hits / n`` (0, 0 for n = 0)."""
    if n == 0:
        return 0.0, 0.0
    z = 1.959963984540054
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def case_outcome(scores: np.ndarray, accuracy: np.ndarray) -> dict:
    """How a criterion's ranking of one case's candidates (``scores`` (C,)) fares against their
    accuracies (C,): hit (its first is among the most accurate), regret (points), Spearman and
    Kendall (nan when either side is constant), and a random pick's hit chance."""
    chosen = int(np.argmax(scores))
    best = accuracy.max()
    constant = np.ptp(scores) == 0 or np.ptp(accuracy) == 0
    return {"hit": bool(accuracy[chosen] >= best), "regret": float(best - accuracy[chosen]),
            "spearman": np.nan if constant else float(stats.spearmanr(scores, accuracy)[0]),
            "kendall": np.nan if constant else float(stats.kendalltau(scores, accuracy)[0]),
            "random_hit": float(np.mean(accuracy >= best))}


def selection_rows(cases: list[dict], criterion: str, group: str, metric: str = "accuracy",
                   unit: str = "accuracy points lost against the best candidate") -> list[dict]:
    """Hit rate, regret, Spearman and Kendall of ``criterion`` over ``cases`` (result rows),
    judged by each case's ``metric`` (a list over its candidates; the regret in ``unit``)."""
    outcomes = [case_outcome(np.array(c["scores"][criterion]), np.array(c[metric]))
                for c in cases]
    n = len(outcomes)
    hits = sum(o["hit"] for o in outcomes)
    low, high = wilson_interval(hits, n)
    random_rate = float(np.mean([o["random_hit"] for o in outcomes]))
    rows = [result_row(criterion, "label-free", group, "hit_rate", 100 * hits / n,
                       100 * (high - low) / 2, n, ci_low=round(100 * low, 2),
                       ci_high=round(100 * high, 2), ci_method="Wilson",
                       random_hit_rate=round(100 * random_rate, 2), unit="percent of cases")]
    mean, ci = mean_ci95([o["regret"] for o in outcomes])
    rows.append(result_row(criterion, "label-free", group, "regret_points", mean, ci, n,
                           unit=unit))
    for metric in ("spearman", "kendall"):
        values = [o[metric] for o in outcomes if not np.isnan(o[metric])]
        mean, ci = mean_ci95(values) if len(values) > 1 else (float("nan"), 0.0)
        rows.append(result_row(criterion, "label-free", group, metric, mean, ci, len(values),
                               cases_without_ranking=n - len(values)))
    return rows


def fixed_choice_rows(cases: list[dict], name: str, group: str, chosen_on: str,
                      metric: str = "accuracy") -> list[dict]:
    """Always choosing candidate ``name`` (MetaOD's global best): hit rate and regret, judged
    by each case's ``metric``."""
    hits, regrets = [], []
    for c in cases:
        acc = np.array(c[metric])
        own = acc[c["candidates"].index(name)]
        hits.append(own >= acc.max())
        regrets.append(acc.max() - own)
    low, high = wilson_interval(int(sum(hits)), len(hits))
    method = f"always-{name}"
    mean, ci = mean_ci95(regrets)
    return [result_row(method, "none", group, "hit_rate", 100 * np.mean(hits),
                       100 * (high - low) / 2, len(hits), ci_low=round(100 * low, 2),
                       ci_high=round(100 * high, 2), ci_method="Wilson", chosen_on=chosen_on),
            result_row(method, "none", group, "regret_points", mean, ci, len(hits),
                       chosen_on=chosen_on)]


def confident_rows(cases: list[dict], group: str) -> list[dict]:
    """The default criterion's hit rate on the cases whose recommendation held in at least
    `CONFIDENT` of the resamples, and on the others."""
    rows = []
    for label, keep in ((f"first_share>={CONFIDENT}", lambda s: s >= CONFIDENT),
                        (f"first_share<{CONFIDENT}", lambda s: s < CONFIDENT)):
        chosen = [c for c in cases if c.get("first_share") is not None
                  and keep(c["first_share"])]
        if not chosen:
            continue
        hits = sum(case_outcome(np.array(c["scores"][DEFAULT]), np.array(c["accuracy"]))["hit"]
                   for c in chosen)
        low, high = wilson_interval(hits, len(chosen))
        rows.append(result_row(DEFAULT, "label-free", group, "hit_rate", 100 * hits / len(chosen),
                               100 * (high - low) / 2, len(chosen), ci_low=round(100 * low, 2),
                               ci_high=round(100 * high, 2), ci_method="Wilson",
                               subset=label))
    return rows


# ----------------------------------------------------------------------------- cases

def run_case(images: torch.Tensor, labels: np.ndarray, k: int, name: str, group: str, *,
             learners=(), checkpoints=(), seed: int, n_boot: int, **options) -> dict:
    """One case: compare_models on ``images`` with k given; the per-candidate record."""
    start = time.perf_counter()
    result = compare_models(images, learners=learners, checkpoints=checkpoints, n_clusters=k,
                            labels=labels, criterion=DEFAULT, n_boot=n_boot, seed=seed,
                            device="cpu", **options)
    cands = result.candidates
    record = {
        "case": name, "group": group, "n_images": result.n_scored, "k": k,
        "candidates": [c.name for c in cands],
        "accuracy": [round(c.truth["clustering_accuracy"], 3) for c in cands],
        "scores": {crit: [round(c.scores[crit], 5) for c in cands] for crit in CRITERIA},
        "recommended": result.recommended, "labelled_best": result.labelled_best,
        "first_share": result.result(result.recommended).first_share,
        "margin_ci95": result.margin_ci95, "wall_s": round(time.perf_counter() - start, 2)}
    trained = {c.name: c.training for c in cands if c.training is not None}
    if trained:
        record["training"] = {n: {"steps": t["steps"], "train_s": t["train_s"]}
                              for n, t in trained.items()}
    print(f"{group:<16} {name:<34} best {result.labelled_best:<16} {DEFAULT} picks "
          f"{result.recommended:<16} ({record['wall_s']:.0f} s)", flush=True)
    return record


def omniglot_evaluation(data_dir: Path) -> ImageSet:
    cfg = DataConfig(dataset="omniglot", split="background-evaluation", data_dir=str(data_dir),
                     download=False)
    return load_part(cfg, "evaluation")


def train_library(omniglot_dir: Path, out_dir: Path, steps: dict[str, int], seed: int) -> dict:
    """ProtoNets / MAML / PsCo meta-trained label-free on Omniglot's background alphabets;
    {name: (checkpoint path, steps, seconds)}."""
    cfg_data = DataConfig(dataset="omniglot", split="background-evaluation",
                          data_dir=str(omniglot_dir), download=False)
    background = load_part(cfg_data, "background")
    library = {}
    for learner in LEARNER_CHOICES:
        cfg = compare_config(learner, "omniglot", len(background), 3600.0, seed, "cpu",
                             out_dir / f"omniglot-{learner}", steps[learner])
        cfg.data = cfg_data  # what it trains on: the background alphabets, images only
        result = train(cfg, progress=False, train_data=background)
        path = out_dir / f"omniglot-{learner}.safetensors"
        (result.run_dir / "checkpoints" / "last.safetensors").rename(path)
        library[f"omniglot-{learner}"] = {"checkpoint": str(path), "steps": result.steps,
                                          "train_s": round(result.wall_s, 2)}
        print(f"trained omniglot-{learner}: {result.steps} steps in {result.wall_s:.0f} s",
              flush=True)
    return library


def subsample(n: int, size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:size].sort().values


def part_a(library: dict, omniglot, sets: dict, args) -> list[dict]:
    checkpoints = [v["checkpoint"] for v in library.values()] + ["builtin", "builtin@block2",
                                                                  "none"]
    cases = []
    alphabets = sorted(set(omniglot.groups))[:args.alphabets]
    for i, alphabet in enumerate(alphabets):
        part = omniglot.select_groups([alphabet])
        n_way = min(10, part.num_classes)
        for t in range(args.omniglot_tasks):
            task = sample_clustering_tasks(part, n_way, 20, 1, seed=args.seed + 100 * i + t)
            cases.append(run_case(task.images[0], task.labels[0], n_way,
                                  f"{alphabet}/{t}", "omniglot-tasks",
                                  checkpoints=checkpoints, seed=args.seed + t,
                                  n_boot=args.n_boot))
    tasks, _ = b6.draw_tasks(sets, [(5, 10), (10, 10)], args.xdomain_tasks, args.seed)
    for (name, setting), cell in tasks.items():
        for t in range(len(cell.images)):
            cases.append(run_case(cell.images[t], cell.labels[t], cell.n_way,
                                  f"{name}/{setting}/{t}", "xdomain-tasks",
                                  checkpoints=checkpoints, seed=args.seed + t,
                                  n_boot=args.n_boot))
    for name, data in sets.items():
        index = subsample(len(data), args.set_size, args.seed)
        cases.append(run_case(data.float_images(index), data.labels[index].numpy(),
                              data.num_classes, f"{name}/{len(index)} images", "xdomain-sets",
                              checkpoints=checkpoints, seed=args.seed, n_boot=args.n_boot))
    return cases


def part_b(omniglot, sets: dict, args) -> list[dict]:
    """The command as a user runs it: ProtoNets, MAML and PsCo meta-trained without labels on
    each case's own images for ``--own-budget-s`` seconds each (wall clock, as `umeta compare
    --budget-s`; the steps each got are recorded), against the built-in model and the pixels."""
    own = {"learners": LEARNER_CHOICES, "checkpoints": ["builtin", "none"],
           "budget_s": args.own_budget_s, "seed": args.seed, "n_boot": args.n_boot}
    cases = []
    for name, data in list(sets.items())[:args.own_sets]:
        index = subsample(len(data), args.set_size, args.seed)
        cases.append(run_case(data.float_images(index), data.labels[index].numpy(),
                              data.num_classes, f"{name}/{len(index)} images", "trained-on-data",
                              **own))
    rng = np.random.default_rng(args.seed)
    for alphabet in rng.choice(sorted(set(omniglot.groups)), args.own_alphabets, replace=False):
        part = omniglot.select_groups([str(alphabet)])
        n_way = min(20, part.num_classes)
        task = sample_clustering_tasks(part, n_way, 20, 1, seed=args.seed)
        cases.append(run_case(task.images[0], task.labels[0], n_way, str(alphabet),
                              "trained-on-data", **own))
    return cases


# ----------------------------------------------------------------------------- script

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--omniglot-dir", help="folder of the Omniglot npz files (default "
                                               "../shared/data/omniglot)")
    parser.add_argument("--xdomain-dir", help="the xdomain folder (default "
                                              "../shared/data/xdomain)")
    parser.add_argument("--alphabets", type=int, default=20, help="Omniglot evaluation "
                                                                  "alphabets in part A")
    parser.add_argument("--omniglot-tasks", type=int, default=1, help="tasks per alphabet")
    parser.add_argument("--xdomain-tasks", type=int, default=6, help="B6 tasks per cell")
    parser.add_argument("--set-size", type=int, default=400,
                        help="images of each whole-set case (seeded subsample)")
    parser.add_argument("--library-scale", type=float, default=1.0,
                        help="multiplies the Omniglot-background models' steps")
    parser.add_argument("--own-sets", type=int, default=4, help="xdomain sets in part B")
    parser.add_argument("--own-alphabets", type=int, default=4, help="alphabets in part B")
    parser.add_argument("--own-budget-s", type=float, default=20.0,
                        help="part B's training seconds per learner (umeta compare --budget-s)")
    parser.add_argument("--n-boot", type=int, default=20, help="resamples per case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    omniglot_dir = Path(args.omniglot_dir) if args.omniglot_dir else shared / "omniglot"
    xdomain_dir = Path(args.xdomain_dir) if args.xdomain_dir else b6.default_data_dir()
    sets = b6.load_xdomain(xdomain_dir)
    omniglot = omniglot_evaluation(omniglot_dir)
    steps = {n: max(1, round(s * args.library_scale)) for n, s in LIBRARY_STEPS.items()}
    with tempfile.TemporaryDirectory(prefix="b11-") as tmp:
        library = train_library(omniglot_dir, Path(tmp), steps, args.seed)
        cases = part_a(library, omniglot, sets, args)
    cases += part_b(omniglot, sets, args)
    rows = summary_rows(cases)
    for row in rows:
        if row["metric"] in ("hit_rate", "regret_points", "spearman"):
            print(f"{row['setting']:<16} {row['method']:<24} {row['metric']:<14} "
                  f"{row['mean']:7.2f} +- {row['ci95']:.2f} (n={row['n_tasks']})"
                  f"{' ' + row['subset'] if 'subset' in row else ''}")
    write_results(args.out, "B11", rows, device="cpu", wall_s=time.perf_counter() - start,
                  seed=args.seed, dataset="omniglot evaluation alphabets + xdomain",
                  library=library, own_budget_s=args.own_budget_s, default_criterion=DEFAULT,
                  criteria=list(CRITERIA), cases=cases)


def summary_rows(cases: list[dict]) -> list[dict]:
    """Rows of every group of cases and of all of them: each criterion's selection scores,
    the default criterion's by confidence, each candidate's mean accuracy, and the global-best
    baseline (chosen on the Omniglot cases, where its candidate is in every case)."""
    groups: dict[str, list[dict]] = {}
    for c in cases:
        groups.setdefault(c["group"], []).append(c)
    groups["all"] = cases
    tune = groups.get("omniglot-tasks", [])
    rows = []
    for group, chosen in groups.items():
        for criterion in CRITERIA:
            rows += selection_rows(chosen, criterion, group)
        rows += confident_rows(chosen, group)
        everywhere = [n for n in chosen[0]["candidates"]
                      if all(n in c["candidates"] for c in chosen)]
        for name in everywhere:
            mean, ci = mean_ci95([c["accuracy"][c["candidates"].index(name)] for c in chosen])
            rows.append(result_row(name, "label-free", group, "clustering_accuracy", mean, ci,
                                   len(chosen)))
        if tune:
            best = max(tune[0]["candidates"], key=lambda n: np.mean(
                [c["accuracy"][c["candidates"].index(n)] for c in tune]))
            if best in everywhere:
                rows += fixed_choice_rows(chosen, best, group, "omniglot-tasks")
    return rows


if __name__ == "__main__":
    run_main(main)
