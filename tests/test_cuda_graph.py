"""The CUDA-graph training step (`umeta.cuda_graph`) against the eager step, and its errors.

The equivalence tests need a CUDA GPU and are skipped without one; the error tests run anywhere.
"""

import pytest
import torch

import umeta.train

from umeta.config import TrainConfig
from umeta.data import ImageSet
from umeta.errors import UmetaError
from umeta.cuda_graph import CapturedStep, WARMUP_STEPS, capturable_adam
from umeta.tasks import EpisodeSampler
from umeta.tasks.augment import Augment
from umeta.tasks.builders import build_task_source
from umeta.train import train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def classes() -> ImageSet:
    """20 classes x 12 noisy copies of a random 1x28x28 prototype."""
    gen = torch.Generator().manual_seed(0)
    protos = torch.randint(0, 256, (20, 1, 28, 28), generator=gen)
    noise = torch.randint(-60, 60, (240, 1, 28, 28), generator=gen)
    images = (protos.repeat_interleave(12, 0) + noise).clamp(0, 255).to(torch.uint8)
    return ImageSet(images, torch.arange(20).repeat_interleave(12),
                    [f"c{i}" for i in range(20)], None, "noisy28")


def config(run_dir, learner="protonet", graph=False, device="cuda", steps=12, **options):
    cfg = TrainConfig()
    cfg.model.hidden = 16
    cfg.learner.name, cfg.learner.options = learner, options
    cfg.tasks.n_way, cfg.tasks.k_shot, cfg.tasks.q_query = 5, 1, 3
    cfg.optim.steps, cfg.optim.meta_batch, cfg.optim.grad_clip = steps, 4, 1.0
    cfg.run.run_dir, cfg.run.device, cfg.run.cuda_graph = str(run_dir), device, graph
    cfg.run.val_every, cfg.run.log_every, cfg.run.checkpoint_every = 0, 1, 6
    return cfg


def weights(learner) -> dict[str, torch.Tensor]:
    return {k: v.detach().double().cpu() for k, v in learner.state_dict().items()}


def cancelled_biases(model: torch.nn.Module) -> set[str]:
    """Names of conv biases that the next layer, a BatchNorm on batch statistics, cancels.

    Their true gradient is zero, so what reaches them is rounding noise, which Adam scales to
    steps of about ``lr``: two runs that agree to rounding elsewhere differ there by ~lr.
    """
    names = set()
    for prefix, module in model.named_modules():
        layers = list(module.children()) if isinstance(module, torch.nn.Sequential) else []
        for i, (layer, after) in enumerate(zip(layers, layers[1:])):
            if isinstance(layer, torch.nn.Conv2d) and isinstance(after, torch.nn.BatchNorm2d):
                names.add(f"{prefix}.{i}.bias")
    return names


def assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor],
                        skip: set[str] = frozenset()) -> None:
    for name in set(want) - skip:
        diff = float((got[name] - want[name]).abs().max())
        assert torch.allclose(got[name], want[name], rtol=1e-5, atol=1e-6), (name, diff)


@pytest.fixture(autouse=True)
def exact_float32():
    """Deterministic cuDNN and no TF32: the comparisons below are to float32 rounding, and TF32
    convolutions (cuDNN's default) may pick other algorithms under capture than eagerly."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
     torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) = saved


def build(learner, options, seed=0):
    from umeta.learners import LEARNERS
    from umeta.models import Conv4

    torch.manual_seed(seed)
    backbone = Conv4(1, 16, 28, running_stats=learner != "maml")
    return LEARNERS.build(learner, options, backbone=backbone, n_way=5).cuda()


@cuda
@pytest.mark.parametrize("learner, options", [
    ("protonet", {}),
    ("maml", {"inner_steps": 1, "inner_lr": 0.4}),
    ("maml", {"inner_steps": 2, "inner_lr": 0.4, "first_order": True}),
    ("maml", {"inner_steps": 1, "learn_inner_lr": True}),
    ("maml", {"inner_steps": 1, "anil": True}),
    ("maml", {"inner_steps": 2, "inner_lr": 0.4}),
    ("psco", {"proj_dim": 16, "hidden_dim": 32, "queue_size": 64, "momentum": 0.9}),
])
def test_replayed_steps_equal_eager_steps(classes, learner, options):
    """The same step function, optimizer and schedule, eager and replayed: same losses, weights."""
    device = torch.device("cuda")
    runs = []
    for graphed in (False, True):
        model = build(learner, options)
        trainable = [p for p in model.parameters() if p.requires_grad]  # not PsCo's momentum copy
        optimizer = capturable_adam(trainable, 1e-3, 0.0, device)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=12)

        def step(batch):
            out = model.meta_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            return out

        run = CapturedStep(step, device) if graphed else step
        if learner == "psco":  # two augmented views of 4 x 8 distinct images per step
            sampler = build_task_source("psco", classes.to(device).unlabeled(), 8, 1, 1, seed=1,
                                        augment=Augment(shift=1))
        else:
            sampler = EpisodeSampler(classes.to(device), 5, 1, 3, seed=1)
        losses = []
        for _ in range(12):
            losses.append(run(sampler.sample(4)).loss.item())
            schedule.step()
        runs.append((losses, weights(model)))
    (eager_losses, eager_w), (graph_losses, graph_w) = runs
    assert graph_losses == pytest.approx(eager_losses, rel=1e-5, abs=1e-6)
    skip = cancelled_biases(model)
    assert skip  # Conv4 has four such biases
    assert_same_weights(graph_w, eager_w, skip)
    start = weights(build(learner, options))  # and the replays did move the weights
    assert max(float((graph_w[n] - start[n]).abs().max()) for n in start) > 1e-4


@cuda
@pytest.mark.parametrize("learner", ["protonet", "psco"])
def test_graphed_training_runs_the_schedule_and_learns(tmp_path, classes, learner):
    cfg = config(tmp_path / "graph", graph=True, steps=30)
    if learner == "psco":
        cfg.learner.name, cfg.tasks.builder = "psco", "psco"
        cfg.learner.options = {"proj_dim": 16, "hidden_dim": 32, "queue_size": 64}
        cfg.tasks.n_way, cfg.tasks.q_query = 8, 1
    result = train(cfg, train_data=classes, progress=False)
    records = [r for r in result.history if "loss" in r]
    assert len(records) == 30 > WARMUP_STEPS
    assert records[-1]["lr"] < records[0]["lr"]  # the cosine schedule reached the optimizer
    assert sum(r["loss"] for r in records[-5:]) < sum(r["loss"] for r in records[:5])


@cuda
@pytest.mark.parametrize("graph", [False, True])
def test_killed_run_on_the_gpu_resumes_exactly(tmp_path, classes, monkeypatch, graph):
    straight = train(config(tmp_path / "a", graph=graph), train_data=classes, progress=False)
    real_save = umeta.train.save_checkpoint

    def save_then_die(path, **kwargs):
        real_save(path, **kwargs)
        if path.name == "last.safetensors" and kwargs["progress"]["step"] == 6:
            raise KeyboardInterrupt  # killed right after its step-6 checkpoint (of 12 steps)

    monkeypatch.setattr(umeta.train, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b", graph=graph), train_data=classes, progress=False)
    monkeypatch.setattr(umeta.train, "save_checkpoint", real_save)
    resumed = train(config(tmp_path / "b", graph=graph), train_data=classes, progress=False,
                    resume=True)
    assert_same_weights(weights(resumed.learner), weights(straight.learner))


@cuda
def test_a_batch_of_another_shape_is_refused(classes):
    model = torch.nn.Linear(4, 1).cuda()
    step = CapturedStep(lambda ep: model(ep.support_x.flatten(1)[:, :4]).sum(), torch.device("cuda"))
    sampler = EpisodeSampler(classes.to("cuda"), 5, 1, 3)
    for _ in range(WARMUP_STEPS + 2):
        step(sampler.sample(2))
    with pytest.raises(UmetaError, match="batches of one shape"):
        step(sampler.sample(3))


def test_cuda_graph_on_cpu_is_a_clear_error(tmp_path, classes):
    with pytest.raises(UmetaError, match="needs a CUDA device"):
        train(config(tmp_path / "run", graph=True, device="cpu"), train_data=classes,
              progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@cuda
def test_a_step_that_cannot_be_recorded_is_one_clear_error(classes):
    model = torch.nn.Linear(4, 1).cuda()

    def step(ep):
        loss = model(ep.support_x.flatten(1)[:, :4]).sum()
        return loss * float(loss)  # a host read: not allowed in a CUDA graph

    step = CapturedStep(step, torch.device("cuda"))
    sampler = EpisodeSampler(classes.to("cuda"), 5, 1, 3)
    for _ in range(WARMUP_STEPS):
        step(sampler.sample(2))
    with pytest.raises(UmetaError, match="cannot be recorded as a CUDA graph"):
        step(sampler.sample(2))


def test_cuda_graph_with_compile_is_refused(tmp_path, classes):
    cfg = config(tmp_path / "run", graph=True, device="cpu")
    cfg.run.compile = True
    with pytest.raises(UmetaError, match="do not go together"):
        train(cfg, train_data=classes, progress=False)

