"""Multi-process meta-training: two gloo processes step like one process over the union of their
tasks (gradients, weights, PsCo's queue), resume exactly, and ``torchrun -m umeta train`` writes
one run directory from rank 0."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import umeta.learners.maml  # noqa: F401  registers "maml"
import umeta.learners.psco as psco_module
import umeta.train
from umeta.checkpoint import model_state, read_checkpoint, rng_states
from umeta.config import TrainConfig
from umeta.data import ImageSet
from umeta.distributed import (World, _buckets, _rank_device, distributed_session, rank_seed,
                               seed_task_source)
from umeta.errors import UmetaError
from umeta.tasks import Episode, ViewBatch
from umeta.train import train

CASES = ("protonet", "maml", "fomaml", "umtra", "cactus", "psco")
WORLD = 2


# ---- one process: the pieces ------------------------------------------------------------------

def test_rank_seeds_are_the_run_seed_for_rank_0_and_distinct_otherwise():
    assert rank_seed(7, 0) == 7
    seeds = {rank_seed(s, r) for s in (0, 1, 7) for r in (1, 2, 3)}
    assert len(seeds) == 9 and not seeds & {0, 1, 7, 8}
    assert rank_seed(7, 1) == rank_seed(7, 1) < 2**63
    gen = torch.Generator().manual_seed(rank_seed(7, 1))  # a valid torch seed
    assert gen.initial_seed() == rank_seed(7, 1)


def test_meta_batch_must_split_evenly_over_processes():
    assert World(0, 4).local_batch(32) == 8
    with pytest.raises(UmetaError, match=r"optim.meta_batch=6 .* over 4 processes; use a multiple"):
        World(1, 4).local_batch(6)


def test_one_process_session_changes_nothing(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with distributed_session(torch.device("cpu")) as world:
        assert world == World() and world.is_main and not world.enabled
        p = nn.Parameter(torch.ones(3))
        p.grad = torch.arange(3.0)
        world.average_gradients([p])
        torch.testing.assert_close(p.grad, torch.arange(3.0), rtol=0, atol=0)
        states = {"torch": torch.get_rng_state()}
        assert world.gather_rng_states(states).keys() == {"torch"}
        assert world.mean(p.grad) is p.grad
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UmetaError, match="LOCAL_RANK, WORLD_SIZE missing beside RANK"):
        with distributed_session(torch.device("cpu")):
            pass


def test_each_rank_restores_its_own_generator_states():
    a, b, c, d = (torch.full((4,), i, dtype=torch.uint8) for i in range(4))
    stored = {"torch": a, "source.generator": b, "rank1.torch": c, "rank1.source.generator": d}
    assert World(0, 2).own_rng_states(stored, {"world_size": 2}) == {"torch": a,
                                                                      "source.generator": b}
    assert World(1, 2).own_rng_states(stored, {"world_size": 2}) == {"torch": c,
                                                                      "source.generator": d}
    with pytest.raises(UmetaError, match=r"written by a run of 2 process\(es\) but this run has "
                                         r"1; .*--nproc_per_node 2"):
        World().own_rng_states(stored, {"world_size": 2})
    assert World().own_rng_states({"torch": a}, {}) == {"torch": a}  # single-process checkpoint


def test_gradient_buckets_respect_dtype_and_size():
    ts = [torch.zeros(3), torch.zeros(3), torch.zeros(2, dtype=torch.float64),
          torch.zeros(5, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)]
    groups = [[id(t) for t in b] for b in _buckets(ts, 32)]
    assert groups == [[id(ts[0]), id(ts[1])], [id(ts[2])], [id(ts[3])], [id(ts[4])]]
    assert [len(b) for b in _buckets(ts, 2**20)] == [2, 3]


def test_bad_device_and_source_are_clear_errors():
    with pytest.raises(UmetaError, match="pins one GPU.*pass --device cuda"):
        _rank_device(torch.device("cuda", 1), 0, 2)
    with pytest.raises(UmetaError, match="has no torch.Generator attribute 'generator'"):
        seed_task_source(object(), 3)


# ---- two processes against one ----------------------------------------------------------------

def tiny_data() -> ImageSet:
    """12 classes x 8 random 1x16x16 images (the same in every process)."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 1, 16, 16), generator=gen, dtype=torch.uint8)
    return ImageSet(images, torch.arange(12).repeat_interleave(8), [f"c{i}" for i in range(12)],
                    None, "tiny")


def case_config(case: str, run_dir: Path, encoder: str | None = None,
                steps: int = 3) -> TrainConfig:
    """3 steps of a global meta-batch of 4 tasks (2 per rank), float64-friendly sizes."""
    cfg = TrainConfig()
    cfg.model.backbone, cfg.model.hidden = "mlp", 16
    cfg.tasks.n_way, cfg.tasks.k_shot, cfg.tasks.q_query = 3, 1, 2
    cfg.optim.steps, cfg.optim.meta_batch, cfg.optim.lr = steps, 4, 0.01
    cfg.optim.schedule = "constant"
    cfg.run.run_dir, cfg.run.device = str(run_dir), "cpu"
    cfg.run.val_every, cfg.run.val_tasks, cfg.run.log_every, cfg.run.checkpoint_every = 2, 6, 1, 2
    if case in ("maml", "fomaml"):
        cfg.learner.name = "maml"
        cfg.model.backbone, cfg.model.hidden = "conv4", 4  # BatchNorm per task (no running stats)
        cfg.learner.options = {"inner_steps": 1, "inner_lr": 0.3, "first_order": case == "fomaml"}
    elif case == "umtra":
        cfg.tasks.builder = "umtra"
    elif case == "cactus":
        cfg.tasks.builder = "cactus"
        cfg.tasks.options = {"encoder": encoder, "num_partitions": 2, "num_clusters": 6}
    elif case == "psco":
        cfg.tasks.builder = cfg.learner.name = "psco"
        cfg.tasks.n_way, cfg.tasks.q_query, cfg.optim.meta_batch = 4, 1, 2
        cfg.learner.options = {"queue_size": 16, "hidden_dim": 16, "proj_dim": 8, "momentum": 0.9}
    return cfg


def mlp_head_without_norm(in_dim: int, hidden: int, out_dim: int, last_norm: bool) -> nn.Sequential:
    """PsCo's heads without BatchNorm, whose batch statistics are per rank by design."""
    return nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.ReLU(),
                         nn.Linear(hidden, out_dim, bias=False))


def float64_images(self: ImageSet, index: torch.Tensor | None = None) -> torch.Tensor:
    return (self.images if index is None else self.images[index]).double() / 255


class Float64Tasks:
    """A task source whose meta-batches are converted to float64."""

    def __init__(self, source) -> None:
        self.source = source

    @property
    def generator(self) -> torch.Generator:
        return self.source.generator

    def sample(self, num_tasks: int):
        batch = self.source.sample(num_tasks)
        if isinstance(batch, Episode):
            return Episode(batch.support_x.double(), batch.support_y, batch.query_x.double(),
                           batch.query_y, batch.n_way)
        return ViewBatch(batch.query_x.double(), batch.key_x.double(), batch.n_way, batch.k_shot)

    def state_dict(self) -> dict:
        return self.source.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.source.load_state_dict(state)


@contextmanager
def float64_run(case: str, record: dict, union: bool = False):
    """Train in float64 and record every step's gradients (before and after averaging); with
    ``union``, one process draws the tasks of rank 0 and then those of rank 1 each step."""
    build, real_average = umeta.train.build_task_source, World.average_gradients

    def build_float64(cfg, data, device, progress=False):  # no bars in these tests
        return Float64Tasks(UnionSource(cfg, data, device, build) if union
                            else build(cfg, data, device))

    def average_and_record(self, params, *args, **kwargs):
        record["local"].append([p.grad.clone() for p in params if p.grad is not None])
        real_average(self, params, *args, **kwargs)
        record["grads"].append([p.grad.clone() for p in params if p.grad is not None])

    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(ImageSet, "float_images", float64_images))
        stack.enter_context(mock.patch.object(umeta.train, "build_task_source", build_float64))
        stack.enter_context(mock.patch.object(World, "average_gradients", average_and_record))
        # no memory probe: it draws a task or two, which UnionSource cannot split over ranks
        stack.enter_context(mock.patch.object(umeta.train, "available_bytes", lambda device: None))
        if case == "psco":
            stack.enter_context(mock.patch.object(psco_module, "mlp_head", mlp_head_without_norm))
        try:
            yield
        finally:
            torch.set_default_dtype(old_dtype)


def run_case(case: str, run_dir: Path, encoder: str | None, union: bool = False) -> dict:
    record = {"local": [], "grads": []}
    with float64_run(case, record, union):
        data = tiny_data()
        result = train(case_config(case, run_dir, encoder), train_data=data, val_data=data,
                       progress=False)
    last = run_dir / "checkpoints" / "last.safetensors"  # written by rank 0 alone
    return {**record, "returned": result.learner.state_dict(), "best": result.best_val_accuracy,
            "last": model_state(read_checkpoint(last)[0]) if last.is_file() else None,
            "losses": [r["loss"] for r in result.history if "loss" in r]}


class UnionSource:
    """One process's task source that draws rank 0's tasks, then rank 1's, from their seeds."""

    def __init__(self, cfg: TrainConfig, data: ImageSet, device: torch.device, build) -> None:
        self.parts = [build(cfg, data, device) for _ in range(WORLD)]
        for rank, part in enumerate(self.parts[1:], 1):
            seed_task_source(part, rank_seed(cfg.run.seed, rank))

    def sample(self, num_tasks: int):
        batches = [part.sample(num_tasks // WORLD) for part in self.parts]

        def cat(name: str) -> torch.Tensor:
            return torch.cat([getattr(b, name) for b in batches])

        first = batches[0]
        if isinstance(first, Episode):
            return Episode(cat("support_x"), cat("support_y"), cat("query_x"), cat("query_y"),
                           first.n_way)
        assert isinstance(first, ViewBatch)
        return ViewBatch(cat("query_x"), cat("key_x"), first.n_way, first.k_shot)

    def state_dict(self) -> dict:
        return {f"{i}.{k}": v for i, part in enumerate(self.parts)
                for k, v in part.state_dict().items()}


def _worker(rank: int, port: int, out: Path, encoder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # train() joins this group; the timeout turns a hang into an error
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    world = World(rank, WORLD)
    grads = [torch.arange(5.0) * (rank + 1), torch.arange(3, dtype=torch.float64) - rank]
    params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g
    world.average_gradients(params, bucket_bytes=16)  # several buckets, two dtypes
    torch.save([p.grad for p in params], out / f"buckets.rank{rank}.pt")
    for case in CASES:
        torch.save(run_case(case, out / case, encoder), out / f"{case}.rank{rank}.pt")
    # resume: 2 steps, then on to 4, against 4 straight
    data = tiny_data()
    train(case_config("protonet", out / "straight", steps=4), train_data=data, val_data=data,
          progress=False)
    train(case_config("protonet", out / "resumed", steps=2), train_data=data, val_data=data,
          progress=False)
    train(case_config("protonet", out / "resumed", steps=4), train_data=data, val_data=data,
          progress=False, resume=True)
    dist.barrier()
    dist.destroy_process_group()
    (out / f"done.rank{rank}").touch()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A label-free encoder for CACTUs, then every case trained by two gloo processes."""
    out = tmp_path_factory.mktemp("dist")
    data = tiny_data()
    psco = case_config("psco", out / "encoder")
    psco.optim.steps = 2
    train(psco, train_data=data, progress=False)
    encoder = str(out / "encoder" / "checkpoints" / "last.safetensors")
    for attempt in range(2):  # a second try, on a fresh port, if the first never got going
        work = out / f"try{attempt}"
        work.mkdir()
        try:
            mp.spawn(_worker, args=(_free_port(), work, encoder), nprocs=WORLD, join=True)
            return work
        except mp.ProcessExitedException:
            # gloo can abort a process at interpreter exit, after all its work (seen rarely
            # on CPU); a rank that did not finish its work is an error
            if all((work / f"done.rank{r}").exists() for r in range(WORLD)):
                return work
            if attempt == 1 or any(work.glob("*.rank*.pt")):
                raise  # it failed after it started: a real error, not a lost rendezvous
    raise AssertionError("unreachable")


def test_gradient_average_over_buckets(runs):
    for rank in range(WORLD):
        five, three = torch.load(runs / f"buckets.rank{rank}.pt")
        torch.testing.assert_close(five, torch.arange(5.0) * 1.5, rtol=0, atol=0)
        torch.testing.assert_close(three, torch.arange(3, dtype=torch.float64) - 0.5, rtol=0,
                                   atol=0)


@pytest.mark.parametrize("case", CASES)
def test_two_processes_equal_one_process_over_their_union(case, runs, tmp_path):
    ranks = [torch.load(runs / f"{case}.rank{r}.pt") for r in range(WORLD)]
    encoder = str(runs.parent / "encoder" / "checkpoints" / "last.safetensors")
    one = run_case(case, tmp_path / "one", encoder, union=True)

    assert len(one["grads"]) == len(ranks[0]["grads"]) == 3
    # the ranks drew different tasks, so their own gradients differ ...
    assert not torch.allclose(ranks[0]["local"][0][0], ranks[1]["local"][0][0])
    for step, reference in enumerate(one["grads"]):
        for r0, r1, ref in zip(ranks[0]["grads"][step], ranks[1]["grads"][step], reference):
            # ... but both hold the same average: the gradient of one process over the union
            torch.testing.assert_close(r1, r0, rtol=0, atol=0)
            torch.testing.assert_close(r0, ref, rtol=1e-9, atol=1e-12)
    # final weights (with PsCo's momentum network and queue): rank 1 returns its last weights,
    # which rank 0 checkpointed; rank 0 returns the best ones, as one process does
    assert one["last"].keys() == ranks[0]["last"].keys() == ranks[1]["returned"].keys()
    for key, ref in one["last"].items():
        torch.testing.assert_close(ranks[1]["returned"][key], ranks[0]["last"][key], rtol=0, atol=0,
                                   msg=lambda m: f"{key}: {m}")
        # Adam turns rounding noise in gradients that are exactly zero in exact arithmetic (conv
        # biases before BatchNorm: |g| ~ 1e-17 << eps) into updates of up to lr * 1e-7
        torch.testing.assert_close(ranks[0]["last"][key].double(), ref.double(), rtol=1e-7,
                                   atol=1e-8, msg=lambda m: f"{key}: {m}")
        torch.testing.assert_close(ranks[0]["returned"][key], one["returned"][key], rtol=1e-7,
                                   atol=1e-8, msg=lambda m: f"{key}: {m}")
    # logged losses: the mean over ranks of float32 losses against one float32 loss
    torch.testing.assert_close(torch.tensor(ranks[0]["losses"], dtype=torch.float64),
                               torch.tensor(one["losses"], dtype=torch.float64), rtol=1e-6, atol=0)
    assert ranks[0]["best"] == (None if one["best"] is None else pytest.approx(one["best"]))
    assert ranks[1]["best"] is None  # only rank 0 validates


def test_two_process_run_resumes_exactly(runs):
    straight, _ = read_checkpoint(runs / "straight" / "checkpoints" / "last.safetensors")
    resumed, meta = read_checkpoint(runs / "resumed" / "checkpoints" / "last.safetensors")
    assert meta["progress"]["step"] == 4 and meta["progress"]["world_size"] == WORLD
    assert straight.keys() == resumed.keys()
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=lambda m: f"{key}: {m}")
    rngs = rng_states(resumed)
    assert {"torch", "source.generator", "rank1.torch", "rank1.source.generator"} <= rngs.keys()
    assert not torch.equal(rngs["source.generator"], rngs["rank1.source.generator"])


# ---- the command line under torchrun ----------------------------------------------------------

def torchrun_train(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={WORLD}", "-m", "umeta", "train", "--dataset", "glyphs",
           "--meta-batch", "4", "--device", "cpu", "--set", "data.image_size=16",
           "--run-dir", str(run_dir), "--no-progress",
           "--set", "model.hidden=8", "--set", "tasks.q_query=4", "--set", "run.val_every=2",
           "--set", "run.val_tasks=10", "--set", "run.log_every=1",
           "--set", "optim.schedule=constant", *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)


@pytest.mark.slow  # two torchrun launches: 15-30 s on 2 CPU cores
def test_torchrun_cli_writes_one_run_dir_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    first = torchrun_train(run_dir, "--steps", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    second = torchrun_train(run_dir, "--steps", "4", "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    assert files == [".lock", "checkpoints/best.safetensors", "checkpoints/last.safetensors",
                     "config.json", "metrics.jsonl"]  # .lock: rank 0 locks the run directory
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]  # rank 0 alone logs
    assert [r["step"] for r in records if "val_accuracy" in r] == [2, 4]
    assert json.loads((run_dir / "config.json").read_text())["optim"]["meta_batch"] == 4
    tensors, meta = read_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    assert meta["progress"]["step"] == 4 and meta["progress"]["world_size"] == WORLD
    assert "rank1.source.generator" in rng_states(tensors)
