"""B5: data-parallel scaling of meta-training throughput, tasks/s on 1 and N GPUs.

Run it once per process count on the same machine, one process first::

    python benchmarks/b5_scaling.py                                      # b5_scaling_1gpu.json
    torchrun --standalone --nproc_per_node 4 benchmarks/b5_scaling.py    # b5_scaling_4gpu.json

Every step is the data-parallel training step of ``umeta train`` under ``torchrun``: each rank
samples its share of the meta-batch on its own device from its own seeded sampler, forward,
backward, gradient all-reduce (`umeta.distributed.World.average_gradients`), Adam. Weak
scaling: every rank keeps ``--per-rank-batch`` tasks, so the global meta-batch is N times that.
tasks/s counts the tasks of all ranks over the time of the slowest rank. Omniglot-shaped data
(random uint8 1x28x28 on every device) and Conv4 (64 filters), as B3. Cases:

* ``protonet``: ProtoNets 20-way 1-shot 15-query;
* ``maml`` / ``fomaml``: second- / first-order MAML 5-way 1-shot 15-query, 5 inner steps.

Rows: ``tasks_per_s`` (mean and 95% CI over repeats), ``peak_mem_mb`` on CUDA (rank 0), and,
for N > 1 when the one-process file of the same device is beside the output,
``scaling_efficiency`` = tasks/s(N) / (N * tasks/s(1)). On CPU (gloo, ``--device cpu``) it only
checks that the script runs: torchrun gives each process one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist

from umeta.data import ImageSet
from umeta.distributed import World, distributed_session, rank_seed
from umeta.learners import ProtoNet
from umeta.learners.maml import MAML
from umeta.metrics import mean_ci95
from umeta.models import Conv4
from umeta.results import device_name, result_row, write_results
from umeta.tasks import EpisodeSampler
from umeta.build import resolve_device

# the benchmarked cases and their shapes are B3's (run as a script, benchmarks/ is on sys.path)
from b3_throughput import CASES, IMAGE_SHAPE, INNER_LR, INNER_STEPS, REPO, Case  # noqa: E402
from entry import run_main


def build_learner(case: Case, device: torch.device) -> torch.nn.Module:
    if case.method == "protonet":
        return ProtoNet(Conv4(1, 64, 28)).to(device)
    return MAML(Conv4(1, 64, 28, running_stats=False), case.n_way, inner_steps=INNER_STEPS,
                inner_lr=INNER_LR, first_order=case.first_order).to(device)


def synchronize(world: World) -> None:
    """Wait for this rank's GPU work, then for every rank."""
    if world.device.type == "cuda":
        torch.cuda.synchronize(world.device)
    world.barrier()


def slowest(world: World, seconds: float) -> float:
    """The largest of every rank's ``seconds``."""
    if not world.enabled:
        return seconds
    t = torch.tensor([seconds], dtype=torch.float64, device=world.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def measure(case: Case, args: argparse.Namespace, data: ImageSet,
            world: World) -> tuple[list[float], float]:
    """Global tasks/s of each repeat, and rank 0's peak CUDA memory in MiB (nan on CPU)."""
    torch.manual_seed(args.seed)
    model = build_learner(case, world.device)
    world.broadcast_module(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3, fused=world.device.type == "cuda")
    sampler = EpisodeSampler(data, case.n_way, case.k_shot, case.q_query,
                             seed=rank_seed(args.seed, world.rank))

    def step() -> None:
        loss = model.meta_loss(sampler.sample(args.per_rank_batch)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        world.average_gradients(params)
        optimizer.step()

    if world.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(world.device)
    for _ in range(args.warmup):
        step()
    rates = []
    for _ in range(args.repeats):
        synchronize(world)
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        if world.device.type == "cuda":
            torch.cuda.synchronize(world.device)
        elapsed = slowest(world, time.perf_counter() - start)
        rates.append(args.steps * args.per_rank_batch * world.size / elapsed)
    peak = (torch.cuda.max_memory_allocated(world.device) / 2**20
            if world.device.type == "cuda" else float("nan"))
    return rates, peak


def one_process_rates(path: Path, device: str) -> dict[str, tuple[float, float]]:
    """{method: (tasks/s, ci95)} of a one-process results file of the same device, or {}."""
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    if doc.get("device", "").split(" (")[0] != device.split(" (")[0]:
        return {}
    return {r["method"]: (r["mean"], r["ci95"]) for r in doc["results"]
            if r["metric"] == "tasks_per_s"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cuda or cpu (gloo)")
    p.add_argument("--cases", default="protonet,maml",
                   help="comma-separated subset of: " + ", ".join(CASES))
    p.add_argument("--per-rank-batch", type=int, default=32, help="tasks per step on each rank")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    p.add_argument("--quick", action="store_true",
                   help="tiny run for CPU checks: 2 tasks per rank, 1 warmup step, 2 repeats of "
                        "2 steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default benchmarks/results/b5_scaling_<N>gpu.json, "
                        "<N>cpu on CPU)")
    args = p.parse_args(argv)
    if args.quick:
        args.per_rank_batch, args.warmup, args.repeats, args.steps = 2, 1, 2, 2
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        p.error(f"unknown case(s) {sorted(unknown)}; choose from {sorted(CASES)}")
    return args


def run(args: argparse.Namespace, world: World) -> None:
    if world.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    start = time.perf_counter()
    gen = torch.Generator(device=world.device).manual_seed(args.seed)
    classes, per_class = 200, 20
    data = ImageSet(
        torch.randint(0, 256, (classes * per_class, *IMAGE_SHAPE), generator=gen,
                      dtype=torch.uint8, device=world.device),
        torch.arange(classes, device=world.device).repeat_interleave(per_class),
        [f"c{i}" for i in range(classes)], name="random-omniglot-shaped")
    kind = "gpu" if world.device.type == "cuda" else "cpu"
    out = args.out or REPO / "benchmarks" / "results" / f"b5_scaling_{world.size}{kind}.json"
    device = device_name(world.device)
    single = (one_process_rates(out.with_name(f"b5_scaling_1{kind}.json"), device)
              if world.size > 1 else {})
    rows, lines = [], []
    for name in args.cases.split(","):
        case = CASES[name]
        rates, peak = measure(case, args, data, world)
        n = len(rates) * args.steps * args.per_rank_batch * world.size
        common = dict(processes=world.size, per_rank_batch=args.per_rank_batch,
                      meta_batch=args.per_rank_batch * world.size)
        mean, ci = mean_ci95(rates)
        rows.append(result_row(case.method, "supervised", case.setting, "tasks_per_s", mean, ci,
                               n, **common))
        line = f"{case.method:9} {world.size:>3} {mean:10.1f} ± {ci:7.1f}"
        if world.device.type == "cuda":
            rows.append(result_row(case.method, "supervised", case.setting, "peak_mem_mb", peak,
                                   0.0, n, **common))
        if case.method in single:
            one, one_ci = single[case.method]
            eff = mean / (world.size * one)
            eff_ci = eff * math.hypot(ci / mean, one_ci / one)  # first-order error propagation
            rows.append(result_row(case.method, "supervised", case.setting, "scaling_efficiency",
                                   eff, eff_ci, n, one_process_tasks_per_s=one, **common))
            line += f"   efficiency {eff:5.2f} ± {eff_ci:.2f}"
        lines.append(line)
    if world.is_main:
        write_results(out, "B5", rows, device=world.device, wall_s=time.perf_counter() - start,
                      seed=args.seed, dataset="random uint8 1x28x28 (Omniglot-shaped)",
                      backbone="conv4-64", processes=world.size,
                      backend=dist.get_backend() if world.enabled else "none",
                      scaling="weak (fixed tasks per rank)", quick=args.quick,
                      repeats=args.repeats, steps=args.steps, warmup=args.warmup)
        print(f"B5 scaling on {world.size} x {device}; results in {out}")
        print(f"{'case':9} {'N':>3} {'tasks/s (95% CI)':>20}")
        print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with distributed_session(resolve_device(args.device)) as world:
        run(args, world)


if __name__ == "__main__":
    run_main(main)
