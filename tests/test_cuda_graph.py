"""The CUDA-graph training step (`umeta.cuda_graph`) against the eager step, and its errors.

The equivalence tests need a CUDA GPU and are skipped without one; the error tests run anywhere.
"""

import pytest
import torch

from umeta.config import TrainConfig
from umeta.data import ImageSet
from umeta.errors import UmetaError
from umeta.cuda_graph import CapturedStep, WARMUP_STEPS, capturable_adam
from umeta.tasks import EpisodeSampler
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


def build(learner, options, seed=0):
    from umeta.learners import LEARNERS
    from umeta.models import Conv4

    torch.manual_seed(seed)
    backbone = Conv4(1, 16, 28, running_stats=learner != "maml")
    return LEARNERS.get(learner)(backbone=backbone, n_way=5, **options).cuda()


@cuda
@pytest.mark.parametrize("learner, options", [
    ("protonet", {}),
    ("maml", {"inner_steps": 2, "inner_lr": 0.4}),
    ("maml", {"inner_steps": 2, "inner_lr": 0.4, "first_order": True}),
    ("maml", {"inner_steps": 1, "learn_inner_lr": True}),
])
def test_replayed_steps_equal_eager_steps(classes, learner, options):
    """The same step function, optimizer and schedule, eager and replayed: same losses, weights."""
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    device = torch.device("cuda")
    runs = []
    for graphed in (False, True):
        model = build(learner, options)
        optimizer = capturable_adam(model.parameters(), 1e-3, 0.0, device)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=12)

        def step(batch):
            out = model.meta_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            return out

        run = CapturedStep(step, device) if graphed else step
        sampler = EpisodeSampler(classes.to(device), 5, 1, 3, seed=1)
        losses = []
        for _ in range(12):
            losses.append(run(sampler.sample(4)).loss.item())
            schedule.step()
        runs.append((losses, weights(model)))
    (eager_losses, eager_w), (graph_losses, graph_w) = runs
    assert graph_losses == pytest.approx(eager_losses, rel=1e-5, abs=1e-6)
    assert eager_losses[-1] < eager_losses[0]  # it trained: the replays did update the weights
    for name in eager_w:
        torch.testing.assert_close(graph_w[name], eager_w[name], rtol=1e-5, atol=1e-6, msg=name)


@cuda
def test_graphed_training_runs_the_schedule_and_learns(tmp_path, classes):
    result = train(config(tmp_path / "graph", graph=True, steps=30), train_data=classes,
                   progress=False)
    records = [r for r in result.history if "loss" in r]
    assert len(records) == 30 > WARMUP_STEPS
    assert records[-1]["lr"] < records[0]["lr"]  # the cosine schedule reached the optimizer
    assert sum(r["loss"] for r in records[-5:]) < sum(r["loss"] for r in records[:5])


@cuda
@pytest.mark.parametrize("graph", [False, True])
def test_run_on_the_gpu_resumes_exactly(tmp_path, classes, graph):
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    straight = train(config(tmp_path / "a", graph=graph), train_data=classes, progress=False)
    train(config(tmp_path / "b", graph=graph, steps=6), train_data=classes, progress=False)
    resumed = train(config(tmp_path / "b", graph=graph), train_data=classes, progress=False,
                    resume=True)
    a, b = weights(straight.learner), weights(resumed.learner)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)


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


def test_cuda_graph_with_an_unsupported_learner_or_compile_is_refused(tmp_path, classes):
    cfg = config(tmp_path / "run", graph=True, device="cpu")
    cfg.learner.name, cfg.tasks.builder = "psco", "psco"
    with pytest.raises(UmetaError, match="run.cuda_graph works with the protonet and maml"):
        train(cfg, train_data=classes, progress=False)
    cfg = config(tmp_path / "run", graph=True, device="cpu")
    cfg.run.compile = True
    with pytest.raises(UmetaError, match="do not go together"):
        train(cfg, train_data=classes, progress=False)
