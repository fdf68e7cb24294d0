import json
import os
import stat

import numpy as np
import pytest
import torch

import umeta.train
from umeta.build import load_learner
from umeta.checkpoint import read_checkpoint, save_checkpoint
from umeta.config import TrainConfig, load_config
from umeta.data import ImageSet
from umeta.errors import UmetaError
from umeta.train import train


@pytest.fixture
def noisy_classes() -> ImageSet:
    """30 classes x 10 noisy copies of a random 1x16x16 prototype: easy but not trivial."""
    gen = torch.Generator().manual_seed(0)
    protos = torch.randint(0, 256, (30, 1, 16, 16), generator=gen)
    images = protos.repeat_interleave(10, 0) + torch.randint(-60, 60, (300, 1, 16, 16), generator=gen)
    return ImageSet(images.clamp(0, 255).to(torch.uint8), torch.arange(30).repeat_interleave(10),
                    [f"c{i}" for i in range(30)], None, "noisy")


def small_config(run_dir, steps=20) -> TrainConfig:
    cfg = TrainConfig()
    cfg.model.hidden = 8
    cfg.tasks.q_query = 4
    cfg.optim.steps, cfg.optim.meta_batch = steps, 4
    cfg.run.run_dir, cfg.run.device = str(run_dir), "cpu"
    cfg.run.val_every, cfg.run.val_tasks, cfg.run.log_every, cfg.run.checkpoint_every = 10, 20, 5, 10
    return cfg


def test_protonet_training_learns_and_writes_a_run_dir(tmp_path, noisy_classes):
    result = train(small_config(tmp_path / "run", steps=40), train_data=noisy_classes,
                   val_data=noisy_classes, progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in records if "loss" in r)
    last = [r for r in records if "loss" in r][-1]
    assert last["loss"] < first["loss"]
    assert result.best_val_accuracy > 60.0  # chance is 20%
    assert json.loads((tmp_path / "run" / "config.json").read_text())["optim"]["steps"] == 40
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").is_file()


def test_killed_run_resumes_exactly(tmp_path, noisy_classes, monkeypatch):
    straight = train(small_config(tmp_path / "a", steps=20), train_data=noisy_classes,
                     val_data=noisy_classes, progress=False)
    real_save = umeta.train.save_checkpoint

    def save_then_die(path, **kwargs):
        real_save(path, **kwargs)
        if path.name == "last.safetensors" and kwargs["progress"]["step"] == 10:
            raise KeyboardInterrupt  # the run is killed right after its step-10 checkpoint

    monkeypatch.setattr(umeta.train, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(small_config(tmp_path / "b", steps=20), train_data=noisy_classes,
              val_data=noisy_classes, progress=False)
    monkeypatch.setattr(umeta.train, "save_checkpoint", real_save)
    resumed = train(small_config(tmp_path / "b", steps=20), train_data=noisy_classes,
                    val_data=noisy_classes, progress=False, resume=True)
    last_a = read_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors")[0]
    last_b = read_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")[0]
    assert resumed.steps == straight.steps == 20
    for key, value in last_a.items():
        if key.startswith(("model.", "optim.")):
            torch.testing.assert_close(last_b[key], value, rtol=0, atol=0, msg=key)


def seconds_per_step(monkeypatch, seconds: float = 1.0) -> None:
    """A fake clock that advances ``seconds`` with every training step (and never otherwise)."""
    now = [0.0]
    real_step = umeta.train.Training.train_step

    def timed_step(self, batch):
        now[0] += seconds
        return real_step(self, batch)

    monkeypatch.setattr(umeta.train.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(umeta.train.Training, "train_step", timed_step)


def test_time_limited_calls_resume_to_the_straight_run(tmp_path, noisy_classes, monkeypatch):
    straight = train(small_config(tmp_path / "a", steps=20), train_data=noisy_classes,
                     val_data=noisy_classes, progress=False)
    seconds_per_step(monkeypatch)
    cfg = small_config(tmp_path / "b", steps=20)
    cfg.run.time_limit_s = 6.5  # passed after 7 steps of each call, between log windows
    calls = [train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False,
                   resume=bool(i)) for i in range(3)]
    assert [c.steps for c in calls] == [7, 14, 20]
    assert [c.finished for c in calls] == [False, False, True]
    assert calls[-1].total_train_s > calls[-1].wall_s
    last_a = read_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors")[0]
    last_b, meta = read_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")
    assert meta["progress"]["step"] == 20
    for key, value in last_a.items():
        if key.startswith(("model.", "optim.")):
            torch.testing.assert_close(last_b[key], value, rtol=0, atol=0, msg=key)
    assert calls[-1].best_val_accuracy == straight.best_val_accuracy


def test_time_limit_stops_at_the_first_step_past_it_whatever_log_every(tmp_path, noisy_classes,
                                                                       monkeypatch):
    seconds_per_step(monkeypatch)
    cfg = small_config(tmp_path / "run", steps=20)
    cfg.run.time_limit_s, cfg.run.log_every, cfg.run.val_every = 3.0, 1000, 0
    result = train(cfg, train_data=noisy_classes, progress=False)
    assert result.steps == 3 and not result.finished
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in records] == [3]  # the unfinished log window is logged


class _Ranks:
    """The parts of `World` that `TimeLimit` uses, for several ranks whose clocks agree."""

    enabled, comm_device = True, torch.device("cpu")

    def mean(self, x):
        self.syncs += 1
        return x


def test_several_ranks_check_the_time_limit_rarely_and_stop_just_past_it():
    from types import SimpleNamespace

    from umeta.train import TimeLimit

    now = [0.0]
    world = _Ranks()
    world.syncs = 0
    run = SimpleNamespace(step=0, world=world, elapsed=lambda: now[0],
                          cfg=SimpleNamespace(run=SimpleNamespace(time_limit_s=100.0)))
    limit = TimeLimit(run)
    while True:
        run.step += 1
        now[0] += 0.01  # 100 steps per second: the limit passes after step 10,000
        if limit.passed():
            break
    assert 10_000 <= run.step <= 10_001
    assert world.syncs < 40  # not one per step


def test_a_second_train_in_a_run_dir_in_use_is_refused(tmp_path, noisy_classes):
    from umeta.train import RunDir

    cfg = small_config(tmp_path / "run", steps=2)
    with RunDir(cfg.run.run_dir).locked():  # another `umeta train` holds the directory
        with pytest.raises(UmetaError, match="is in use by another umeta train"):
            train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False)
        assert not (tmp_path / "run" / "metrics.jsonl").exists()
    train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False)  # released


def test_run_dir_that_is_a_file_is_an_error(tmp_path, noisy_classes):
    (tmp_path / "taken").write_text("a user's file")
    with pytest.raises(UmetaError, match="is a file, not a folder"):
        train(small_config(tmp_path / "taken", steps=2), train_data=noisy_classes,
              progress=False)
    assert (tmp_path / "taken").read_text() == "a user's file"


def test_resume_refuses_changed_settings_and_reports_what_it_trained(tmp_path, noisy_classes):
    from umeta.params import ParamError

    cfg = small_config(tmp_path / "run", steps=10)
    train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False)
    changed = small_config(tmp_path / "run", steps=15)
    changed.optim.lr = 0.01
    with pytest.raises(ParamError, match=r"this call sets optim.lr=0.01 where the run has 0.001"):
        train(changed, train_data=noisy_classes, val_data=noisy_classes, progress=False,
              resume=True)
    longer = small_config(tmp_path / "run", steps=15)  # a longer run may be resumed
    result = train(longer, train_data=noisy_classes, val_data=noisy_classes, progress=False,
                   resume=True)
    assert (result.start_step, result.steps, result.steps_this_call) == (10, 15, 5)


def test_resume_after_a_kill_logs_no_step_twice(tmp_path, noisy_classes, monkeypatch):
    from umeta.train import RunDir

    real_log = RunDir.log

    def log_then_die(self, record):
        real_log(self, record)
        if record.get("step") == 15 and "loss" in record:
            self.metrics.open("a").write('{"step": 16, "lo')  # a line cut short by kill -9
            raise KeyboardInterrupt  # killed after logging step 15, before its checkpoint at 20

    monkeypatch.setattr(RunDir, "log", log_then_die)
    cfg = small_config(tmp_path / "run", steps=20)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False)
    monkeypatch.setattr(RunDir, "log", real_log)
    train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False, resume=True)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    losses = [r["step"] for r in records if "loss" in r]
    assert losses == [5, 10, 15, 20]
    assert [r["step"] for r in records if "val_accuracy" in r] == [10, 20]


def test_a_meta_batch_that_cannot_fit_in_memory_is_refused_before_training(tmp_path,
                                                                        noisy_classes):
    cfg = small_config(tmp_path / "run", steps=2)
    cfg.optim.meta_batch = 10**7  # terabytes for one step
    with pytest.raises(UmetaError, match=r"optim.meta_batch=10000000 needs about .* TB for one "
                                         r"training step .* set optim.meta_batch to \d+ or less"):
        train(cfg, train_data=noisy_classes, progress=False)


def test_the_memory_check_leaves_training_unchanged(tmp_path, noisy_classes, monkeypatch):
    checked = train(small_config(tmp_path / "a", steps=6), train_data=noisy_classes,
                    val_data=noisy_classes, progress=False)
    monkeypatch.setattr(umeta.train, "available_bytes", lambda device: None)  # no check
    unchecked = train(small_config(tmp_path / "b", steps=6), train_data=noisy_classes,
                      val_data=noisy_classes, progress=False)
    for (name, a), b in zip(checked.learner.state_dict().items(),
                            unchecked.learner.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_negative_time_limit_is_an_error(tmp_path, noisy_classes):
    cfg = small_config(tmp_path / "run")
    cfg.run.time_limit_s = -5
    with pytest.raises(UmetaError, match="run.time_limit_s must be 0"):
        train(cfg, train_data=noisy_classes, progress=False)


def test_existing_run_dir_needs_resume(tmp_path, noisy_classes):
    cfg = small_config(tmp_path / "run", steps=5)
    train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False)
    with pytest.raises(UmetaError, match="already holds a run; pass --resume"):
        train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False)


def test_resume_without_checkpoint_is_an_error(tmp_path, noisy_classes):
    with pytest.raises(UmetaError, match="no checkpoint"):
        train(small_config(tmp_path / "none"), train_data=noisy_classes, resume=True, progress=False)


def test_checkpoint_roundtrip_and_corruption(tmp_path, noisy_classes):
    train(small_config(tmp_path / "run", steps=5), train_data=noisy_classes,
          val_data=noisy_classes, progress=False)
    path = tmp_path / "run" / "checkpoints" / "last.safetensors"
    learner = load_learner(path)
    x = noisy_classes.float_images(torch.arange(6))
    assert learner.embed(x).shape == (6, 8)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UmetaError, match="corrupt"):
        load_learner(corrupt)
    with pytest.raises(UmetaError, match="not found"):
        load_learner(tmp_path / "missing.safetensors")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model=model, config={})
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("umeta.checkpoint.save_file", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, model=torch.nn.Linear(2, 2), config={})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]


def test_a_checkpoint_with_scrambled_weights_is_refused(tmp_path):
    model = torch.nn.Linear(40, 40)
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model=model, config={})
    raw = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(raw[:8], "little")  # safetensors: length, JSON header, data
    floats = np.frombuffer(raw, dtype=np.float32, count=100, offset=header).copy()
    raw[header : header + 400] = np.random.default_rng(0).permutation(floats).tobytes()
    path.write_bytes(bytes(raw))  # 100 weights scrambled; the file is still a valid safetensors
    with pytest.raises(UmetaError, match="is damaged: its tensors do not match the checksum"):
        read_checkpoint(path)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoints_are_created_with_the_umask_like_any_new_file(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "ck.safetensors", model=torch.nn.Linear(2, 2), config={})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ck.safetensors").stat().st_mode) == mode


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[tasks]\nn_way = 20\n[optim]\nlr = 0.01\n[learner]\nname = "protonet"\n')
    cfg = load_config(path)
    assert cfg.tasks.n_way == 20 and cfg.optim.lr == 0.01
    cfg.override("tasks.k_shot", "5")
    cfg.override("learner.options.inner_steps", "3")
    assert cfg.tasks.k_shot == 5 and cfg.learner.options == {"inner_steps": 3}
    with pytest.raises(UmetaError, match="unknown key tasks.n_ways; valid keys"):
        cfg.override("tasks.n_ways", "5")
    with pytest.raises(UmetaError, match="tasks.n_way must be a int"):
        cfg.override("tasks.n_way", "five")
    bad = tmp_path / "bad.toml"
    bad.write_text("[nope]\nx = 1\n")
    with pytest.raises(UmetaError, match="unknown config section 'nope'"):
        load_config(bad)


def test_bad_settings_are_clear_errors(tmp_path, noisy_classes):
    cfg = small_config(tmp_path / "r")
    cfg.learner.name = "protonett"
    with pytest.raises(UmetaError, match="unknown learner 'protonett'; choose one of: .*protonet"):
        train(cfg, train_data=noisy_classes, progress=False)
    cfg = small_config(tmp_path / "r2")
    cfg.tasks.n_way = 50
    with pytest.raises(UmetaError, match="n_way=50 is larger than the 30 classes"):
        train(cfg, train_data=noisy_classes, progress=False)


def test_label_free_pipeline_psco_then_cactus(tmp_path, noisy_classes):
    """PsCo trains without labels; its checkpoint is CACTUs' encoder; labels never matter."""
    cfg = small_config(tmp_path / "psco", steps=4)
    cfg.tasks.builder, cfg.learner.name = "psco", "psco"
    cfg.tasks.n_way, cfg.tasks.k_shot, cfg.tasks.q_query = 16, 1, 1
    cfg.optim.meta_batch = 1
    cfg.learner.options = {"queue_size": 64, "hidden_dim": 32, "proj_dim": 16}
    psco = train(cfg, train_data=noisy_classes, progress=False)
    assert psco.best_val_accuracy is None  # label-free runs never validate with labels
    cactus = small_config(tmp_path / "cactus", steps=3)
    cactus.tasks.builder, cactus.tasks.q_query = "cactus", 1
    cactus.tasks.options = {"encoder": str(tmp_path / "psco" / "checkpoints" / "last.safetensors"),
                            "num_partitions": 2, "num_clusters": 20}
    assert train(cactus, train_data=noisy_classes, progress=False).steps == 3
    cactus.tasks.options = {}
    cactus.run.run_dir = str(tmp_path / "cactus2")
    with pytest.raises(UmetaError, match="train one label-free first"):
        train(cactus, train_data=noisy_classes, progress=False)


def test_psco_tasks_need_the_psco_learner(tmp_path, noisy_classes):
    cfg = small_config(tmp_path / "r")
    cfg.tasks.builder = "psco"
    with pytest.raises(UmetaError, match="do not go together"):
        train(cfg, train_data=noisy_classes, progress=False)


def test_trainval_part_trains_on_train_and_val_classes_and_skips_validation(tmp_path,
                                                                             noisy_classes,
                                                                             monkeypatch):
    asked = []

    def fake_load_part(cfg, part, **kwargs):
        asked.append(part)
        return noisy_classes

    monkeypatch.setattr(umeta.train, "load_part", fake_load_part)
    cfg = small_config(tmp_path / "run", steps=10)
    cfg.data.train_part = "trainval"
    result = train(cfg, progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert asked == ["trainval"]  # and no "val" part: its classes are trained on
    assert not any("val_accuracy" in r for r in records) and result.best_val_accuracy is None
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").is_file()


def test_unknown_train_part_is_a_clear_error(tmp_path, noisy_classes):
    cfg = small_config(tmp_path / "run")
    cfg.data.train_part = "test"
    with pytest.raises(UmetaError, match="unknown data.train_part 'test'"):
        train(cfg, train_data=noisy_classes, progress=False)


@pytest.mark.parametrize("section, name, key", [
    ("learner", "maml", "inner_stpes"), ("learner", "protonet", "transductive_stpes"),
    ("learner", "psco", "queue_sise"), ("model", "conv4", "ceil_mod"), ("model", "mlp", "dpeth"),
])
def test_misspelled_learner_and_backbone_options_are_one_line_errors(tmp_path, section, name, key):
    cfg = small_config(tmp_path / "run")
    if section == "learner":
        cfg.learner.name = name
        if name == "psco":
            cfg.tasks.builder = "psco"
        cfg.learner.options = {key: 5}
    else:
        cfg.model.backbone, cfg.model.options = name, {key: True}
    kind = "learner" if section == "learner" else "backbone"
    with pytest.raises(UmetaError, match=f"{kind} '{name}' has no option '{key}'; its options are: "):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything is loaded or written


def test_option_values_of_the_wrong_type_and_run_owned_options_are_errors(tmp_path):
    cfg = small_config(tmp_path / "run")
    cfg.learner.name, cfg.learner.options = "maml", {"inner_steps": "five"}
    with pytest.raises(UmetaError, match="option inner_steps='five' must be an integer"):
        train(cfg, progress=False)
    cfg.learner.options = {"n_way": 5}
    with pytest.raises(UmetaError, match="'n_way' of 'maml' is set by the run itself"):
        train(cfg, progress=False)
    cfg.learner.options = {"inner_steps": 2, "first_order": True}
    cfg.model.options = {"running_stats": True}
    with pytest.raises(UmetaError, match="'running_stats' of 'conv4' is set by the run itself"):
        train(cfg, progress=False)


def test_spelled_options_reach_the_learner(tmp_path, noisy_classes):
    cfg = small_config(tmp_path / "run", steps=2)
    cfg.learner.name, cfg.learner.options = "maml", {"inner_steps": 3, "eval_inner_steps": 4}
    cfg.tasks.q_query, cfg.run.val_every = 2, 0
    learner = train(cfg, train_data=noisy_classes, progress=False).learner
    assert (learner.inner_steps, learner.eval_inner_steps) == (3, 4)


def test_background_evaluation_split_trains_on_background_without_validation(
        tmp_path, noisy_classes, monkeypatch):
    asked = []

    def fake_load_part(cfg, part, **kwargs):
        asked.append(part)
        return noisy_classes

    monkeypatch.setattr(umeta.train, "load_part", fake_load_part)
    for train_part in ("train", "background"):
        cfg = small_config(tmp_path / train_part, steps=4)
        cfg.data.dataset, cfg.data.split, cfg.data.train_part = (
            "omniglot", "background-evaluation", train_part)
        result = train(cfg, progress=False)
        assert result.best_val_accuracy is None  # the split has no validation classes
    assert asked == ["train", "background"]  # never "val"
    cfg.data.train_part = "evaluation"
    with pytest.raises(UmetaError, match="unknown data.train_part 'evaluation'; choose train or "
                                         "trainval or background"):
        train(cfg, progress=False)


def test_labelled_episodes_take_an_augmentation_and_no_other_option(tmp_path, noisy_classes):
    cfg = small_config(tmp_path / "a", steps=10)
    cfg.tasks.options = {"augment": {"shift": 1}}
    train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False)
    cfg = small_config(tmp_path / "b", steps=10)
    cfg.tasks.options = {"encoder": "x"}
    with pytest.raises(UmetaError, match="task builder 'labelled' has no option 'encoder'"):
        train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False)


def test_an_exported_psco_model_is_small_and_embeds_as_the_checkpoint_does(tmp_path,
                                                                           noisy_classes):
    from umeta.build import export_learner

    cfg = small_config(tmp_path / "run", steps=3)
    cfg.tasks.builder, cfg.learner.name = "psco", "psco"
    cfg.tasks.n_way, cfg.tasks.k_shot, cfg.tasks.q_query = 16, 1, 1
    cfg.optim.meta_batch = 1
    cfg.learner.options = {"queue_size": 64, "hidden_dim": 32, "proj_dim": 16}
    train(cfg, train_data=noisy_classes, progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    meta = export_learner(last, tmp_path / "model.safetensors")
    assert meta["exported"] and meta["dtype"] == "float16"
    assert (tmp_path / "model.safetensors").stat().st_size < last.stat().st_size / 3
    full, slim = load_learner(last), load_learner(tmp_path / "model.safetensors")
    x = noisy_classes.float_images()[:20]
    torch.testing.assert_close(slim.embed(x), full.embed(x), atol=2e-2, rtol=2e-2)
    assert torch.equal(slim.momentum_projector[0].weight, slim.projector[0].weight)
    tensors, _ = read_checkpoint(tmp_path / "model.safetensors")
    assert not any(k.startswith(("model.queue", "model.momentum")) for k in tensors)


def test_a_run_resumes_on_another_kind_of_device(tmp_path, noisy_classes):
    """A checkpoint whose task-source generator state came from another device (a CUDA
    generator's is 16 bytes, the CPU's 5,056) resumes, reproducibly, seeded from that state."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from umeta.checkpoint import tensors_sha256

    train(small_config(tmp_path / "run", steps=10), train_data=noisy_classes,
          val_data=noisy_classes, progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    tensors = load_file(str(last))
    source = [k for k in tensors if k.startswith("rng.source.")]
    assert source
    for key in source:
        tensors[key] = torch.arange(16, dtype=torch.uint8)  # as a CUDA generator saves it
    with safe_open(str(last), "pt") as f:
        meta = json.loads(f.metadata()["umeta"])
    meta["sha256"] = tensors_sha256(tensors)
    save_file(tensors, str(last), metadata={"umeta": json.dumps(meta)})
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    weights = []
    for run_dir in (tmp_path / "run", tmp_path / "copy"):
        assert train(small_config(run_dir, steps=14), train_data=noisy_classes,
                     val_data=noisy_classes, progress=False, resume=True).steps == 14
        weights.append(read_checkpoint(run_dir / "checkpoints" / "last.safetensors")[0])
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=0)


def test_an_extended_cosine_run_learns_again_on_resume(tmp_path, noisy_classes):
    """A finished cosine run (its rate at 0) resumed with more --steps follows the stretched
    cosine (the scheduler alone, updating by ratios, would keep the rate at 0)."""
    import math

    cfg = small_config(tmp_path / "run", steps=10)
    assert cfg.optim.schedule == "cosine"
    train(cfg, train_data=noisy_classes, val_data=noisy_classes, progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    before = read_checkpoint(last)[0]
    train(small_config(tmp_path / "run", steps=20), train_data=noisy_classes,
          val_data=noisy_classes, progress=False, resume=True)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
               .splitlines()]
    rates = {r["step"]: r["lr"] for r in records if "lr" in r}
    assert rates[10] == 0.0
    stretched = cfg.optim.lr * (1 + math.cos(math.pi * 15 / 20)) / 2
    assert rates[15] == pytest.approx(stretched, rel=1e-6)
    after = read_checkpoint(last)[0]
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("model."))
