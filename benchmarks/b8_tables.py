"""B8: clustering and anomaly detection on public tables, against classical baselines.

Clustering: every table of clustering-data-v1 (fcps, graves, wut, sipu) and the pmlb tables
of :func:`b8_pmlb_tables`; k = the number of reference classes; rows of the noise class
(clustering-data-v1's label 0) are clustered but not scored; ARI, NMI and Hungarian accuracy
(``umeta.metrics``). Anomaly detection: the 43 tables of adbench-classical, unsupervised (every
method fits all rows, without labels); AUROC and average precision. Baselines in the same run:
``table_baselines.CLUSTERING`` and ``table_baselines.ANOMALY`` (settings and row caps there).

The method under test is pluggable: ``--method package.module:factory`` (``--method-option
key=value`` are passed to the factory) builds an object with ``cluster(x, k) -> labels (N,)``
and ``score(x) -> scores (N,)`` (higher = more anomalous), where ``x`` is the table as read
(float32 (N, D), NaN = missing, not standardised), optional ``name`` and ``training``
attributes, and the tables it was trained on: a ``training_tables`` attribute, or
``--training-tables`` (a JSON list or ``{"training_tables": [...]}``, or a checkpoint whose
metadata holds ``training_tables``). Entries are table keys (``pmlb/iris``); entries starting
with ``synthetic`` name generated tables and are not compared. No figure of the method is
reported for a table that its training tables contain or near-copy
(``umeta.data.table_copies.find_near_copies``); those tables are listed with the reason.

Per-table rows go under ``per_table`` in the results file; ``results`` holds the summary
rows and the speed rows. Summary rows per metric: the mean over tables (+- 95% CI), the mean rank (1 = best, ties
averaged), and, with a method, ``<metric>_gain_vs_best_baseline`` (its mean minus the best
baseline's, over the tables it may report, with the 95% CI of the paired differences) and
``wilcoxon_p_<metric>`` (two-sided Wilcoxon signed-rank test, scipy); without one, the best
baseline against the runner-up. With a method, speed rows: rows/s of ``cluster`` (k = 5) and
``score`` on seeded synthetic tables of 10,000 x 50 and 100,000 x 50.

    nice -n 10 python benchmarks/b8_tables.py --out benchmarks/results/b8_baselines_cpu.json
    python benchmarks/b8_tables.py --method mypkg.tables:load --method-option \
        checkpoint=model.safetensors --out benchmarks/results/b8_umeta_cpu.json
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from entry import run_main
import table_baselines
from umeta.data.table_copies import find_near_copies, source_name
from umeta.data.table_sets import near_copies_of
from umeta.data.tables import Table, list_tables, load_table
from umeta.errors import UmetaError
from umeta.metrics import auroc, average_precision, clustering_scores, mean_ci95
from umeta.results import result_row, write_results

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESERVED = ("iris", "wine", "glass", "yeast", "ionosphere", "pima", "breast", "vowel", "letter",
            "satimage", "optdigits", "pendigits", "mnist", "spambase", "ecoli", "vertebral",
            "wdbc", "wpbc", "thyroid", "cardio", "shuttle", "waveform", "segment", "page",
            "mammography", "hepatitis", "lymph", "magic", "musk", "landsat", "cover", "skin",
            "vehicle", "heart", "diabetes", "sonar", "balance", "car")
"""pmlb names holding one of these are held out of development (the model helper's DEV
tables are the others); B8's pmlb tables come from them."""
PMLB_RULE = ("pmlb tables whose name contains a RESERVED word, with 2..10 classes, 150..5000 "
             "rows and at most 100 features, in name order, each dropped when it is a copy or "
             "near-copy (umeta.data.table_copies.compare_tables) of one kept before it")
CLUSTERING_METRICS = ("ari", "nmi", "clustering_accuracy")
ANOMALY_METRICS = ("auroc", "average_precision")
SPEED_SHAPES = ((10_000, 50), (100_000, 50))


# ----------------------------------------------------------------------------- tables

def b8_sized(table: Table) -> bool:
    """Whether a table has B8's clustering size (:data:`PMLB_RULE`): 2 .. 10 classes,
    150 .. 5,000 rows, at most 100 features."""
    n, d = table.shape
    return 2 <= table.n_classes <= 10 and 150 <= n <= 5000 and d <= 100


def b8_pmlb_tables(root) -> list[str]:
    """The pmlb keys of B8's clustering part, by :data:`PMLB_RULE` (data properties only)."""
    kept: list[Table] = []
    for key in list_tables("pmlb", root):
        name = key.split("/", 1)[1].lower()
        if not any(word in name for word in RESERVED):
            continue
        table = load_table(key, root)
        if not b8_sized(table):
            continue
        if not find_near_copies(kept, [table]):
            kept.append(table)
    return [t.name for t in kept]


def clustering_keys(root) -> list[str]:
    return list_tables("clustering-data-v1", root) + b8_pmlb_tables(root)


# ----------------------------------------------------------------------------- the method

def load_method(spec: str, options: Sequence[str]):
    """The object built by ``--method module:factory`` with ``--method-option key=value``."""
    module_name, _, factory = spec.partition(":")
    if not factory:
        raise UmetaError(f"--method {spec!r} must look like package.module:factory")
    kwargs = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise UmetaError(f"--method-option {option!r} must look like key=value")
        kwargs[key] = value
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if not err.name or not (module_name + ".").startswith(err.name + "."):
            raise  # the module exists but one of its own imports is missing
        raise UmetaError(f"--method {spec!r}: no module {module_name!r}; name an importable "
                         f"module (e.g. umeta.table_method:load) or add its folder to "
                         f"PYTHONPATH") from None
    build = getattr(module, factory, None)
    if not callable(build):
        raise UmetaError(f"--method {spec!r}: module {module_name!r} has no factory {factory!r}")
    try:
        inspect.signature(build).bind(**kwargs)
    except TypeError as err:
        raise UmetaError(f"--method-option: {factory}() does not take {sorted(kwargs)} "
                         f"({err})") from None
    method = build(**kwargs)
    for attr in ("cluster", "score"):
        if not callable(getattr(method, attr, None)):
            raise UmetaError(f"--method {spec!r} built {type(method).__name__}, which has no "
                             f"{attr}() method")
    return method


def read_training_tables(path: str | None, method) -> list[str]:
    """The method's training table keys: from ``path`` (JSON or checkpoint), else its
    ``training_tables`` attribute."""
    if path is None:
        tables = getattr(method, "training_tables", None)
        if tables is None:
            raise UmetaError("the method has no training_tables attribute; pass "
                             "--training-tables (JSON list or checkpoint) so that B8 can "
                             "leave its training tables out")
        return list(tables)
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(p), framework="np") as handle:
            meta = json.loads((handle.metadata() or {}).get("umeta", "{}"))
        for place in (meta, meta.get("config", {}), meta.get("progress", {})):
            if "training_tables" in place:
                return list(place["training_tables"])
        raise UmetaError(f"checkpoint {path!r} records no training_tables (looked in its "
                         f"metadata, config and progress); pass a JSON list instead")
    doc = json.loads(p.read_text())
    return list(doc["training_tables"] if isinstance(doc, dict) else doc)


def excluded_tables(training: Sequence[str], evaluation: Sequence[str], root,
                    records: Sequence[dict] = ()) -> dict[str, list[dict]]:
    """Evaluation keys that a training table contains or near-copies, with the evidence.

    ``records`` are exclusion records (`umeta.data.table_sets`): a pair's outcome is taken from
    one only where both tables have the name and content hash it records; every other pair is
    compared here.

    Raises
    ------
    UmetaError
        For a training entry that is neither a readable table key nor ``synthetic...``.
    """
    real = [k for k in training if not k.startswith("synthetic")]
    train_tables = []
    for key in real:
        try:
            train_tables.append(load_table(key, root))
        except UmetaError as err:
            raise UmetaError(f"training table {key!r} cannot be checked for copies ({err}); "
                             f"record training tables as collection keys like 'pmlb/iris'"
                             ) from None
    eval_tables = [load_table(k, root) for k in evaluation]
    found: dict[str, list[dict]] = {}
    for hits in near_copies_of(train_tables, eval_tables, records=records).values():
        for hit in hits:
            found.setdefault(hit["b"], []).append(hit)
    return dict(sorted(found.items()))


# ----------------------------------------------------------------------------- running

def score_clustering(table: Table, labels: np.ndarray) -> dict[str, float]:
    """ARI, NMI (fractions) and Hungarian accuracy (percent) on the rows with a class."""
    scored = table.y >= 0
    scores = clustering_scores(table.y[scored], np.asarray(labels)[scored])
    scores["clustering_accuracy"] *= 100.0
    return scores


def score_anomaly(table: Table, scores: np.ndarray) -> dict[str, float]:
    """AUROC and average precision (fractions)."""
    return {"auroc": auroc(table.y, scores), "average_precision": average_precision(table.y,
                                                                                  scores)}


def run_task(task: str, tables: Sequence[Table], methods: dict[str, Callable],
             training: dict[str, str], skip: dict[str, set[str]], log=print
             ) -> tuple[dict, list[dict]]:
    """Run every method on every table.

    Parameters
    ----------
    task : {"clustering", "anomaly"}
    methods : dict of name -> callable
        ``f(table) -> (labels or scores (N,), note)``.
    training : dict of name -> the ``training`` field of its rows
    skip : dict of method name -> set of table names it may not report (near-copies).

    Returns
    -------
    values : dict ``values[table][method][metric] -> float``
    rows : per-table result rows (with wall time, rows, note)
    """
    score = score_clustering if task == "clustering" else score_anomaly
    values: dict[str, dict[str, dict[str, float]]] = {}
    rows: list[dict] = []
    for table in tables:
        values[table.name] = {}
        for name, run in methods.items():
            if table.name in skip.get(name, set()):
                continue
            t0 = time.perf_counter()
            try:
                out, note = run(table)
                out = np.asarray(out)
                if out.shape != (len(table.x),) or (task == "anomaly"
                                                    and not np.isfinite(out).all()):
                    raise ValueError(f"returned shape {out.shape} (finite: "
                                     f"{bool(np.isfinite(out).all())})")
            except Exception as err:  # a failed run is scored as the trivial answer
                out = np.zeros(len(table.x))
                note = f"failed ({type(err).__name__}: {str(err)[:160]}); scored as one " \
                       f"cluster / constant scores"
            wall = time.perf_counter() - t0
            values[table.name][name] = score(table, out)
            for metric, value in values[table.name][name].items():
                rows.append(result_row(name, training[name], table.name, metric, value, 0.0, 1,
                                       rows=len(table.x),
                                       columns=table.x.shape[1], wall_s=round(wall, 3),
                                       **({"note": note} if note else {})))
            headline = "ari" if task == "clustering" else "auroc"
            log(f"{task:10s} {table.name:45s} {name:10s} {headline} "
                f"{values[table.name][name][headline]:.3f}  {wall:6.1f} s  {note}")
    return values, rows


def _ranks(values: dict, tables: Sequence[str], methods: Sequence[str], metric: str
           ) -> np.ndarray:
    """Ranks (T, M), 1 = the highest value of ``metric`` on a table, ties averaged."""
    scores = np.array([[values[t][m][metric] for m in methods] for t in tables])
    return stats.rankdata(-scores, axis=1)


def summarise(values: dict, metrics: Sequence[str], baselines: Sequence[str],
              method: str | None, training: dict[str, str], setting: str) -> list[dict]:
    """Summary rows (module docstring) over the tables where every compared method has a
    value."""
    names = list(baselines) + ([method] if method else [])
    tables = [t for t, by in values.items() if all(m in by for m in names)]
    if not tables:
        return []
    rows = []
    for metric in metrics:
        per = {m: np.array([values[t][m][metric] for t in tables]) for m in names}
        ranks = _ranks(values, tables, names, metric)
        for j, m in enumerate(names):
            rows.append(result_row(m, training[m], setting, metric, *mean_ci95(per[m]),
                                   len(tables)))
            rows.append(result_row(m, training[m], setting, f"mean_rank_{metric}", *mean_ci95(ranks[:, j]), len(tables),
                                   of_methods=len(names)))
        order = sorted(baselines, key=lambda m: -per[m].mean())
        best = order[0]
        challenger, against = (method, best) if method else (best, order[1] if len(order) > 1
                                                             else None)
        if against is None:
            continue
        diff = per[challenger] - per[against]
        test = stats.wilcoxon(per[challenger], per[against]) if np.any(diff) else None
        extra = {"vs": against, "best_baseline": best}
        rows.append(result_row(challenger, training[challenger], setting,
                               f"{metric}_gain_vs_best_baseline" if method
                               else f"{metric}_gain_vs_runner_up", *mean_ci95(diff),
                               len(tables), **extra))
        rows.append(result_row(challenger, training[challenger], setting,
                               f"wilcoxon_p_{metric}",
                               1.0 if test is None else float(test.pvalue), 0.0, len(tables),
                               statistic=None if test is None else float(test.statistic),
                               **extra))
    return rows


def speed_rows(method, name: str, training: str, seed: int, log=print) -> list[dict]:
    """Rows/s of ``method.cluster(x, 5)`` and ``method.score(x)`` on synthetic tables."""
    rows = []
    rng = np.random.default_rng(seed)
    for n, d in SPEED_SHAPES:
        centers = rng.normal(scale=4.0, size=(5, d))
        x = (centers[rng.integers(0, 5, n)] + rng.normal(size=(n, d))).astype(np.float32)
        for verb, call in (("cluster", lambda: method.cluster(x, 5)),
                           ("score", lambda: method.score(x))):
            t0 = time.perf_counter()
            call()
            wall = time.perf_counter() - t0
            rows.append(result_row(name, training, f"{verb} {n}x{d}", "rows_per_s", n / wall, 0.0, 1,
                                   wall_s=round(wall, 3)))
            log(f"speed {verb} {n}x{d}: {wall:.2f} s ({n / wall:,.0f} rows/s)")
    return rows


# ----------------------------------------------------------------------------- main

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("UMETA_SHARED_DATA", DEFAULT_DATA))
    parser.add_argument("--task", choices=("both", "clustering", "anomaly"), default="both")
    parser.add_argument("--tables", help="comma-separated table keys (default: all of B8)")
    parser.add_argument("--baselines", help="comma-separated baseline names (default: all)")
    parser.add_argument("--method", help="package.module:factory of the method under test")
    parser.add_argument("--method-option", action="append", default=[])
    parser.add_argument("--training-tables", help="JSON list or checkpoint of the method's "
                                                  "training tables")
    parser.add_argument("--copies-record", action="append", default=[],
                        help="an exclusion record (benchmarks/tables_exclusion.py): near-copy "
                             "outcomes of table pairs, used where both tables' names and "
                             "content hashes match it (the rest are compared)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    parser.add_argument("--device", default="cpu",
                        help="the device the method runs on, for the record (pass it to the "
                             "method too, e.g. --method-option device=cuda)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    root = args.data_dir
    method = load_method(args.method, args.method_option) if args.method else None
    method_name = getattr(method, "name", "umeta") if method else None
    training_of = {b: "none" for b in (*table_baselines.CLUSTERING, *table_baselines.ANOMALY)}
    if method is not None:
        training_of[method_name] = getattr(method, "training", "meta-trained")
    wanted = set(args.baselines.split(",")) if args.baselines else None
    keys = {"clustering": clustering_keys(root) if args.task != "anomaly" else [],
            "anomaly": list_tables("adbench-classical", root) if args.task != "clustering"
            else []}
    if args.tables:
        chosen = set(args.tables.split(","))
        keys = {task: [k for k in ks if k in chosen] for task, ks in keys.items()}
    training, excluded = None, {}
    if method is not None:
        training = read_training_tables(args.training_tables, method)
        records = [json.loads(Path(p).read_text()) for p in args.copies_record]
        excluded = excluded_tables(training, keys["clustering"] + keys["anomaly"], root, records)
        for key, why in excluded.items():
            print(f"{method_name} may not report {key}: near-copy of "
                  f"{', '.join(w['a'] for w in why)}")
    rows: list[dict] = []
    per_table_rows: list[dict] = []
    seed = args.seed
    with threadpool_limits(args.threads):
        for task, names, metrics in (("clustering", table_baselines.CLUSTERING,
                                      CLUSTERING_METRICS),
                                     ("anomaly", table_baselines.ANOMALY, ANOMALY_METRICS)):
            if not keys[task]:
                continue
            baselines = [b for b in names if wanted is None or b in wanted]
            if task == "clustering":
                methods = {b: (lambda t, b=b: table_baselines.cluster_labels(
                    b, t.x, t.n_classes, seed)) for b in baselines}
                if method is not None:
                    methods[method_name] = lambda t: (method.cluster(t.x, t.n_classes), "")
            else:
                methods = {b: (lambda t, b=b: table_baselines.anomaly_scores(b, t.x, seed))
                           for b in baselines}
                if method is not None:
                    methods[method_name] = lambda t: (method.score(t.x), "")
            tables = [load_table(k, root) for k in keys[task]]
            values, per_table = run_task(task, tables, methods, training_of,
                                         {method_name: set(excluded)} if method else {})
            per_table_rows += per_table
            rows += summarise(values, metrics, baselines, method_name, training_of,
                              f"{task}: all tables")
            if task == "clustering":
                for collection in ("clustering-data-v1", "pmlb"):
                    part = {t: v for t, v in values.items() if t.startswith(collection + "/")}
                    rows += summarise(part, metrics, baselines, method_name, training_of,
                                      f"clustering: {collection}")
        if method is not None:
            rows += speed_rows(method, method_name, training_of[method_name], seed)
    protocol = {
        "clustering": {"tables": keys["clustering"], "pmlb_rule": PMLB_RULE,
                       "reserved_words": RESERVED, "k": "number of reference classes",
                       "scored_rows": "rows with a reference class (noise label 0 of "
                                      "clustering-data-v1 excluded)",
                       "metrics": "ari, nmi (fractions), clustering_accuracy (percent, "
                                  "Hungarian matching)",
                       "baselines": {b: table_baselines.CLUSTERING[b]
                                     for b in table_baselines.CLUSTERING
                                     if wanted is None or b in wanted}},
        "anomaly": {"tables": keys["anomaly"], "fit": "all rows, no labels",
                    "metrics": "auroc, average_precision (fractions)",
                    "baselines": {b: table_baselines.ANOMALY[b] for b in table_baselines.ANOMALY
                                  if wanted is None or b in wanted}},
        "preprocessing": table_baselines.__doc__.split("\n\n", 1)[1].strip(),
        "fit_rows": table_baselines.FIT_ROWS,
        "ranks": "per table, 1 = best, ties averaged, over the tables where every compared "
                 "method has a value",
        "wilcoxon": "scipy.stats.wilcoxon, two-sided, paired over tables",
    }
    extra: dict[str, Any] = {"dataset": "clustering-data-v1 + pmlb (B8 set) + adbench-classical",
                             "protocol": protocol, "threads": args.threads}
    if method is not None:
        extra.update(method=args.method, method_options=args.method_option,
                     training_tables=training, copies_records=args.copies_record,
                     excluded={k: v for k, v in sorted(excluded.items())},
                     source_names={k: source_name(k) for k in training})
    extra["per_table"] = per_table_rows
    write_results(args.out, "B8", rows, device=args.device, wall_s=time.perf_counter() - start,
                  seed=seed, **extra)
    print(f"wrote {args.out} ({len(rows)} rows, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    run_main(main)
