"""B3: meta-training throughput of umeta's ProtoNets and MAML against plain per-task loops.

Every step is a full training step (episode sampling on the device, forward, backward, Adam
step) on Omniglot-shaped data (random uint8 1x28x28 images on the device) with Conv4 (64
filters). Cases (BENCHMARKS.md, B3):

* ``protonet``: ProtoNets 20-way 1-shot 15-query;
* ``maml`` / ``fomaml``: second- / first-order MAML 5-way 1-shot 15-query, 5 inner steps.

Each is timed for umeta's learner and for a plain per-task Python loop written below (the loop
embeds, or clones and adapts, one task at a time with ``torch.autograd.grad``). Speed levers
(``--compile``, ``--amp bf16``, ``--channels-last``, ``--big-meta-batch``, ``--cuda-graph``) each
add a umeta row, and two or more of the first three one more row with them together;
``--cuda-graph`` (the whole step replayed from a CUDA graph, `umeta.cuda_graph`) adds rows of its
own, alone, with channels-last or autocast if asked, and at the bigger meta-batch.
Rows: ``tasks_per_s`` (mean and 95% CI over repeats), ``ratio_vs_loop`` (over the loop's
rate at ``--meta-batch``, repeat by repeat) and, on CUDA, ``peak_mem_mb``. A lever that fails on
this device is listed under ``failures`` instead of stopping the run.

Examples::

    python benchmarks/b3_throughput.py --device cuda --compile --amp bf16 --channels-last
    python benchmarks/b3_throughput.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from entry import run_main

from umeta.cuda_graph import CapturedStep, capturable_adam
from umeta.data import ImageSet
from umeta.learners import ProtoNet, vmap_ops
from umeta.learners.maml import MAML
from umeta.metrics import mean_ci95
from umeta.models import Conv4
from umeta.results import device_name, result_row, write_results
from umeta.tasks import Episode, EpisodeSampler

REPO = Path(__file__).resolve().parents[1]
IMAGE_SHAPE = (1, 28, 28)
INNER_STEPS, INNER_LR = 5, 0.4


@dataclass(frozen=True)
class Case:
    """One benchmarked algorithm and episode shape."""

    method: str
    n_way: int
    k_shot: int
    q_query: int
    first_order: bool = False

    @property
    def is_maml(self) -> bool:
        return self.method != "protonet"

    @property
    def setting(self) -> str:
        inner = f"-{INNER_STEPS}steps" if self.is_maml else ""
        return f"{self.n_way}w{self.k_shot}s{self.q_query}q{inner}"


CASES = {
    "protonet": Case("protonet", 20, 1, 15),
    "maml": Case("maml", 5, 1, 15),
    "fomaml": Case("fomaml", 5, 1, 15, first_order=True),
}


@dataclass(frozen=True)
class Variant:
    """How umeta's learner is run: the speed levers."""

    name: str = "base"
    meta_batch: int = 32
    compile: str | None = None  # a torch.compile mode
    amp: str = "none"
    channels_last: bool = False
    cuda_graph: bool = False


# ---- the plain per-task loops ------------------------------------------------------------------

class LoopProtoNet(nn.Module):
    """ProtoNets, one task at a time: embed its support and query, class means, distances."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def loss(self, ep: Episode) -> Tensor:
        total = 0.0
        for t in range(ep.num_tasks):
            s = ep.support_x.shape[1]
            feats = self.backbone(torch.cat([ep.support_x[t], ep.query_x[t]]))
            one_hot = F.one_hot(ep.support_y[t], ep.n_way).to(feats.dtype)  # (S, N)
            protos = (one_hot.T @ feats[:s]) / one_hot.sum(0)[:, None]
            logits = -torch.cdist(feats[s:], protos).pow(2)
            total = total + F.cross_entropy(logits, ep.query_y[t])
        return total / ep.num_tasks


class LoopMAML(nn.Module):
    """MAML, one task at a time: clone the weights, adapt with ``torch.autograd.grad``."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, first_order: bool) -> None:
        super().__init__()
        self.net = nn.Sequential(backbone, head)
        self.first_order = first_order

    def loss(self, ep: Episode) -> Tensor:
        params = dict(self.net.named_parameters())
        total = 0.0
        for t in range(ep.num_tasks):
            fast = {n: p.clone() for n, p in params.items()}
            for _ in range(INNER_STEPS):
                inner = F.cross_entropy(functional_call(self.net, fast, (ep.support_x[t],)),
                                        ep.support_y[t])
                grads = torch.autograd.grad(inner, list(fast.values()),
                                            create_graph=not self.first_order)
                fast = {n: w - INNER_LR * g for (n, w), g in zip(fast.items(), grads)}
            logits = functional_call(self.net, fast, (ep.query_x[t],))
            total = total + F.cross_entropy(logits, ep.query_y[t])
        return total / ep.num_tasks


def build_models(case: Case, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """umeta's learner and the loop, with the same initial weights."""
    if case.is_maml:
        umeta = MAML(Conv4(1, 64, 28, running_stats=False), case.n_way, inner_steps=INNER_STEPS,
                     inner_lr=INNER_LR, first_order=case.first_order)
        backbone = Conv4(1, 64, 28, running_stats=False)
        loop = LoopMAML(backbone, nn.Linear(backbone.out_dim, case.n_way), case.first_order)
        loop.net.load_state_dict({**{"0." + k: v for k, v in umeta.backbone.state_dict().items()},
                                  **{"1." + k: v for k, v in umeta.head.state_dict().items()}})
    else:
        umeta = ProtoNet(Conv4(1, 64, 28))
        loop = LoopProtoNet(Conv4(1, 64, 28))
        loop.backbone.load_state_dict(umeta.backbone.state_dict())
    return umeta.to(device), loop.to(device)


def umeta_loss(model: nn.Module) -> Callable[[Episode], Tensor]:
    return lambda ep: model.meta_loss(ep).loss


# ---- timing -------------------------------------------------------------------------------------

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_channels_last(ep: Episode) -> Episode:
    """Episode whose images are channels-last in every (B, C, H, W) slice."""

    def cl(x: Tensor) -> Tensor:
        t, b = x.shape[:2]
        x4 = x.flatten(0, 1).contiguous(memory_format=torch.channels_last)
        return x4.view(t, b, *x.shape[2:])

    return Episode(cl(ep.support_x), ep.support_y, cl(ep.query_x), ep.query_y, ep.n_way)


def make_step(loss_fn: Callable[[Episode], Tensor], model: nn.Module, variant: Variant,
              device: torch.device) -> Callable[[Episode], None]:
    """One training step: forward (under autocast if asked), backward, Adam; replayed from a
    CUDA graph for ``variant.cuda_graph``."""
    if variant.cuda_graph:
        optimizer = capturable_adam(model.parameters(), 1e-3, 0.0, device)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if variant.compile:
        loss_fn = torch.compile(loss_fn, mode=variant.compile)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if variant.amp == "bf16"
                else nullcontext())

    def step(ep: Episode) -> Tensor:
        with autocast:
            loss = loss_fn(ep)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    graphed = CapturedStep(step, device) if variant.cuda_graph else step

    def run(ep: Episode) -> None:
        graphed(to_channels_last(ep) if variant.channels_last else ep)

    return run


def measure(step: Callable[[Episode], None], sampler: EpisodeSampler, meta_batch: int,
            args: argparse.Namespace, steps: int,
            device: torch.device) -> tuple[list[float], float]:
    """Tasks per second of each repeat, and peak CUDA memory in MiB (nan on CPU)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start, warm = time.perf_counter(), 0
    while warm < args.warmup or time.perf_counter() - start < args.warmup_s:
        step(sampler.sample(meta_batch))
        synchronize(device)
        warm += 1
    rates = []
    for _ in range(args.repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step(sampler.sample(meta_batch))
        synchronize(device)
        rates.append(steps * meta_batch / (time.perf_counter() - start))
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else float("nan"))
    return rates, peak


def first_loss_gap(umeta: nn.Module, loop: nn.Module, ep: Episode) -> float:
    """|umeta loss - loop loss| on one episode in eval mode, before any step (a sanity check)."""
    umeta.eval()
    loop.eval()
    try:
        return abs(umeta.meta_loss(ep).loss.detach().item() - loop.loss(ep).detach().item())
    finally:
        umeta.train()
        loop.train()


# ---- the benchmark ------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--cases", default="protonet,maml,fomaml",
                   help="comma-separated subset of: " + ", ".join(CASES))
    p.add_argument("--meta-batch", type=int, default=32)
    p.add_argument("--big-meta-batch", type=int, default=128,
                   help="meta-batch of the extra 'bigger meta-batch' row (0: no such row)")
    p.add_argument("--compile", action="store_true",
                   help="add a row with torch.compile of the loss (forward and backward)")
    p.add_argument("--compile-mode", default="default",
                   choices=["default", "reduce-overhead", "max-autotune",
                            "max-autotune-no-cudagraphs"])
    p.add_argument("--amp", choices=["none", "bf16"], default="none",
                   help="add an autocast row in this dtype")
    p.add_argument("--channels-last", action="store_true", help="add a channels-last row")
    p.add_argument("--cuda-graph", action="store_true",
                   help="add rows with the whole step replayed from a CUDA graph (CUDA only)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (at least)")
    p.add_argument("--warmup-s", type=float, default=2.0,
                   help="and untimed steps for at least this many seconds (a GPU runs a new "
                        "step slower for its first second or so; default %(default)s)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat (umeta)")
    p.add_argument("--loop-steps", type=int, default=3, help="timed steps per repeat (loop)")
    p.add_argument("--quick", action="store_true",
                   help="tiny run for CPU smoke tests: meta-batch 4 (big 8), 1 warmup step, "
                        "2 repeats of 1 step")
    p.add_argument("--matmul-conv-max-k", type=int, default=vmap_ops.MATMUL_CONV_MAX_K,
                   help="vmapped MAML runs convolutions with in_channels*kh*kw up to this as a "
                        "matrix product (0: all through F.conv2d; default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default benchmarks/results/b3_throughput_<device>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.meta_batch, args.big_meta_batch = 4, 8 if args.big_meta_batch else 0
        args.warmup, args.warmup_s, args.repeats, args.steps, args.loop_steps = 1, 0.0, 2, 1, 1
    if args.cuda_graph and not args.device.startswith("cuda"):
        p.error("--cuda-graph needs a CUDA device (--device cuda)")
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        p.error(f"unknown case(s) {sorted(unknown)}; choose from {sorted(CASES)}")
    return args


def variants(args: argparse.Namespace) -> list[Variant]:
    base = Variant(meta_batch=args.meta_batch)
    out = [base]
    if args.compile:
        name = "compile" if args.compile_mode == "default" else f"compile-{args.compile_mode}"
        out.append(replace(base, name=name, compile=args.compile_mode))
    if args.amp != "none":
        out.append(replace(base, name=f"amp-{args.amp}", amp=args.amp))
    if args.channels_last:
        out.append(replace(base, name="channels-last", channels_last=True))
    if len(out) > 2:  # all the levers together
        out.append(Variant("+".join(v.name for v in out[1:]), base.meta_batch,
                           compile=args.compile_mode if args.compile else None, amp=args.amp,
                           channels_last=args.channels_last))
    if args.big_meta_batch:
        out.append(replace(base, name=f"meta-batch-{args.big_meta_batch}",
                           meta_batch=args.big_meta_batch))
    if args.cuda_graph:
        graphed = replace(base, name="cuda-graph", cuda_graph=True)
        out.append(graphed)
        if args.channels_last:
            out.append(replace(graphed, name="cuda-graph+channels-last", channels_last=True))
        if args.amp != "none":
            out.append(replace(graphed, name=f"cuda-graph+amp-{args.amp}", amp=args.amp))
        if args.big_meta_batch:
            out.append(replace(graphed, name=f"cuda-graph+meta-batch-{args.big_meta_batch}",
                               meta_batch=args.big_meta_batch))
    return out


def run_case(case: Case, args: argparse.Namespace, data: ImageSet,
             device: torch.device) -> tuple[list[dict], list[dict], list[str]]:
    """Result rows, table lines (dicts) and failure messages of one case."""
    rows, table, failures = [], [], []

    def sampler() -> EpisodeSampler:
        return EpisodeSampler(data, case.n_way, case.k_shot, case.q_query, seed=args.seed)

    def add(impl: str, variant: Variant, rates: list[float], peak: float,
            loop_rates: list[float] | None, **extra) -> None:
        common = dict(impl=impl, variant=variant.name, meta_batch=variant.meta_batch, **extra)
        n = len(rates) * variant.meta_batch * (args.loop_steps if impl == "loop" else args.steps)
        mean, ci = mean_ci95(rates)
        rows.append(result_row(case.method, "supervised", case.setting, "tasks_per_s", mean, ci,
                               n, **common))
        line = dict(case=case.method, impl=impl, variant=variant.name, T=variant.meta_batch,
                    rate=f"{mean:9.1f} ± {ci:7.1f}", ratio="", peak="")
        if loop_rates is not None:
            ratios = [u / lp for u, lp in zip(rates, loop_rates)]
            r_mean, r_ci = mean_ci95(ratios)
            rows.append(result_row(case.method, "supervised", case.setting, "ratio_vs_loop",
                                   r_mean, r_ci, n, **common))
            line["ratio"] = f"{r_mean:6.1f}x ± {r_ci:.1f}"
        if device.type == "cuda":
            rows.append(result_row(case.method, "supervised", case.setting, "peak_mem_mb", peak,
                                   0.0, n, **common))
            line["peak"] = f"{peak:8.0f}"
        table.append(line)

    base = Variant(meta_batch=args.meta_batch)
    torch.manual_seed(args.seed)
    umeta, loop = build_models(case, device)
    gap = first_loss_gap(umeta, loop, sampler().sample(min(args.meta_batch, 4)))
    loop_rates, loop_peak = measure(make_step(loop.loss, loop, base, device), sampler(),
                                    base.meta_batch, args, args.loop_steps, device)
    add("loop", base, loop_rates, loop_peak, None)
    del loop
    for variant in variants(args):
        if variant.compile and case.is_maml:
            failures.append(f"{case.method}/{variant.name}: skipped: torch.compile computes "
                            f"wrong MAML meta-gradients (umeta.train refuses run.compile for maml)")
            continue
        torch.manual_seed(args.seed)
        model = build_models(case, device)[0]
        if variant.channels_last:
            model = model.to(memory_format=torch.channels_last)
        try:
            rates, peak = measure(make_step(umeta_loss(model), model, variant, device), sampler(),
                                  variant.meta_batch, args, args.steps, device)
        except Exception as err:  # a lever that does not work here is reported, not fatal
            msg = f"{case.method}/{variant.name}: {type(err).__name__}: {str(err).splitlines()[0]}"
            failures.append(msg)
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        extra = {"first_loss_abs_diff_vs_loop": round(gap, 7)} if variant.name == "base" else {}
        add("umeta", variant, rates, peak, loop_rates, **extra)
    return rows, table, failures


def print_table(table: list[dict]) -> None:
    header = f"{'case':9} {'impl':6} {'variant':16} {'T':>4}  {'tasks/s (95% CI)':>19}  " \
             f"{'vs loop':>12}  {'peak MB':>8}"
    print(header)
    print("-" * len(header))
    for r in table:
        print(f"{r['case']:9} {r['impl']:6} {r['variant']:16} {r['T']:>4}  {r['rate']:>19}  "
              f"{r['ratio']:>12}  {r['peak']:>8}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    vmap_ops.MATMUL_CONV_MAX_K = args.matmul_conv_max_k
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    start = time.perf_counter()
    gen = torch.Generator(device=device).manual_seed(args.seed)
    classes, per_class = 200, 20
    data = ImageSet(
        torch.randint(0, 256, (classes * per_class, *IMAGE_SHAPE), generator=gen,
                      dtype=torch.uint8, device=device),
        torch.arange(classes, device=device).repeat_interleave(per_class),
        [f"c{i}" for i in range(classes)], name="random-omniglot-shaped")
    rows, table, failures = [], [], []
    for name in args.cases.split(","):
        r, t, f = run_case(CASES[name], args, data, device)
        rows += r
        table += t
        failures += f
    wall = time.perf_counter() - start
    out = args.out or REPO / "benchmarks" / "results" / f"b3_throughput_{device.type}.json"
    write_results(out, "B3", rows, device=device, wall_s=wall, seed=args.seed,
                  dataset="random uint8 1x28x28 (Omniglot-shaped)", backbone="conv4-64",
                  quick=args.quick, repeats=args.repeats, steps=args.steps,
                  loop_steps=args.loop_steps, warmup=args.warmup, warmup_s=args.warmup_s,
                  matmul_conv_max_k=args.matmul_conv_max_k, failures=failures)
    print(f"B3 throughput on {device_name(device)}; {wall:.0f} s; results in {out}")
    print_table(table)
    for msg in failures:
        print("FAILED", msg)


if __name__ == "__main__":
    run_main(main)
