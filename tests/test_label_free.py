import copy
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score

from umeta.data import ImageSet
from umeta.errors import UmetaError
from umeta.learners import ProtoNet
from umeta.learners.maml import MAML
from umeta.learners.psco import PsCo, sinkhorn
from umeta.models import build_backbone
from umeta.tasks import EpisodeSampler
from umeta.tasks.augment import Augment
from umeta.tasks.builders import TASK_BUILDERS, build_task_source
from umeta.tasks.umtra import ViewBatch, sample_distinct

PSCO_TINY = dict(proj_dim=16, hidden_dim=32, queue_size=64, momentum=0.9)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def pixel_embeddings(images: torch.Tensor, dim: int = 8) -> torch.Tensor:
    """A label-free embedding: a fixed random projection of the pixels."""
    proj = torch.randn(images[0].numel(), dim, generator=gen(42))
    return images.float().flatten(1) @ proj


def source(name, images, n_way=4, k_shot=1, q_query=2, seed=0, **options):
    if name == "cactus":
        options = dict(embeddings=pixel_embeddings(images), num_partitions=3, num_clusters=6,
                       **options)
    if name == "psco":
        options.setdefault("augment", Augment(shift=1))
    return build_task_source(name, images, n_way, k_shot, q_query, seed, **options)


def learner(name, image_shape):
    torch.manual_seed(0)
    backbone = build_backbone("conv4", image_shape, hidden=8)
    return PsCo(backbone, **PSCO_TINY) if name == "psco" else ProtoNet(backbone)


def train(name, images, steps, num_tasks=2, lr=3e-3, **source_options):
    """Losses and final weights of a few Adam steps on tasks built from ``images`` only."""
    src = source(name, images, n_way=8 if name == "psco" else 4, **source_options)
    model = learner(name, tuple(images.shape[1:]))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr)
    losses = []
    for _ in range(steps):
        out = model.meta_loss(src.sample(num_tasks))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.detach())
    return torch.stack(losses), model.state_dict()


# --- label-free means label-free -----------------------------------------------------------

@pytest.mark.parametrize("name", ["umtra", "cactus", "psco"])
def test_permuting_or_removing_labels_leaves_training_bit_for_bit_identical(tiny_images, name):
    perm = torch.randperm(len(tiny_images), generator=gen(1))
    permuted = ImageSet(tiny_images.images, tiny_images.labels[perm], tiny_images.class_names)
    removed = ImageSet(tiny_images.images, torch.full_like(tiny_images.labels, -1), [])
    runs = [train(name, ds.unlabeled(), steps=3) for ds in (tiny_images, permuted, removed)]
    for losses, weights in runs[1:]:
        assert torch.equal(losses, runs[0][0])
        assert weights.keys() == runs[0][1].keys()
        assert all(torch.equal(weights[k], runs[0][1][k]) for k in weights)


def test_the_same_check_catches_a_labelled_sampler(tiny_images):
    """Control: the comparison above does detect a task source that reads labels."""
    perm = torch.randperm(len(tiny_images), generator=gen(1))
    permuted = ImageSet(tiny_images.images, tiny_images.labels[perm], tiny_images.class_names)
    a = EpisodeSampler(tiny_images, 4, 1, 2, seed=0).sample(2)
    b = EpisodeSampler(permuted, 4, 1, 2, seed=0).sample(2)
    torch.manual_seed(0)
    model = ProtoNet(build_backbone("conv4", (1, 16, 16), hidden=8))
    assert not torch.equal(model.meta_loss(a).loss, model.meta_loss(b).loss)


def test_builders_never_take_labels():
    label_free = [n for n in TASK_BUILDERS.names() if TASK_BUILDERS.get(n).label_free]
    assert label_free == ["cactus", "mosaic", "psco", "umtra"]
    assert not TASK_BUILDERS.get("labelled").label_free
    for name in label_free:
        params = set(inspect.signature(TASK_BUILDERS.get(name)).parameters)
        assert "images" in params and not {"labels", "data", "imageset"} & params, name


# --- training runs ------------------------------------------------------------------------

def test_protonet_on_umtra_episodes_learns(tiny_images):
    losses, _ = train("umtra", tiny_images.unlabeled(), steps=30, num_tasks=4, lr=1e-2,
                      query_augment=Augment(shift=1, dropout=0.1))
    assert torch.isfinite(losses).all()
    assert losses[-8:].mean() < min(0.8 * losses[:8].mean(), math.log(4) - 0.3)  # below chance


def test_protonet_on_cactus_episodes_runs(tiny_images):
    losses, _ = train("cactus", tiny_images.unlabeled(), steps=5)
    assert torch.isfinite(losses).all()


@pytest.mark.parametrize("name", ["umtra", "cactus"])
def test_maml_meta_trains_on_label_free_episodes(tiny_images, name):
    images = tiny_images.unlabeled()
    options = {"query_augment" if name == "umtra" else "augment": Augment(shift=1, dropout=0.1)}
    src = source(name, images, n_way=4, **options)
    torch.manual_seed(0)
    model = MAML(build_backbone("conv4", tuple(images.shape[1:]), hidden=8, running_stats=False),
                 n_way=4, inner_steps=2, inner_lr=0.4)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(30):
        out = model.meta_loss(src.sample(4))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.detach())
    losses = torch.stack(losses)
    assert torch.isfinite(losses).all()
    if name == "umtra":  # CACTUs' random-projection clusters of noise images are slower to learn
        assert losses[-8:].mean() < losses[:8].mean() - 0.1


def test_psco_learns_its_pseudo_tasks(tiny_images):
    losses, _ = train("psco", tiny_images.unlabeled(), steps=30, num_tasks=2, lr=1e-2)
    assert torch.isfinite(losses).all()
    assert losses[-8:].mean() < losses[:8].mean() - 0.3


# --- UMTRA and the two-view source ----------------------------------------------------------

def test_sample_distinct_is_distinct_in_range_and_uniform():
    counts = torch.tensor([5, 9, 30]).repeat(4000)
    draws = sample_distinct(counts, 5, gen(0))
    assert draws.shape == (12000, 5)
    assert (draws >= 0).all() and (draws < counts[:, None]).all()
    assert (draws.sort(-1).values.diff(dim=-1) > 0).all()
    full = draws[counts == 5].sort(-1).values  # m == count: a permutation
    assert (full == torch.arange(5)).all()
    for c in (9, 30):  # every value equally often, in every position
        hist = torch.bincount(draws[counts == c].flatten(), minlength=c).float()
        expected = 4000 * 5 / c
        assert ((hist - expected).abs() / expected).max() < 0.1
        first = torch.bincount(draws[counts == c][:, 0], minlength=c).float()
        assert ((first - 4000 / c).abs() / (4000 / c)).max() < 0.3


def test_umtra_episodes_are_copies_of_distinct_images(tiny_images):
    images = tiny_images.unlabeled()
    src = source("umtra", images, n_way=5, k_shot=2, q_query=3, query_augment=Augment())
    ep = src.sample(6)
    assert ep.support_x.shape == (6, 10, 1, 16, 16) and ep.query_x.shape == (6, 15, 1, 16, 16)
    assert ep.support_y[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert ep.query_y[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    flat = images.float().div(255).flatten(1)
    for t in range(6):
        s = ep.support_x[t].view(5, 2, -1)
        assert torch.equal(s[:, 0], s[:, 1])
        assert torch.equal(ep.query_x[t].view(5, 3, -1), s[:, :1].expand(5, 3, -1))
        which = (s[:, 0, None] == flat[None]).all(-1).float().argmax(1)  # image of each way
        assert torch.equal(flat[which], s[:, 0]) and len(set(which.tolist())) == 5


def test_umtra_default_queries_are_shifted_and_dropped_copies(tiny_images):
    ep = source("umtra", tiny_images.unlabeled(), n_way=3, q_query=4).sample(2)
    support = ep.support_x.repeat_interleave(4, 1)
    assert not torch.equal(ep.query_x, support)
    assert ep.query_x.sum() < support.sum()  # shifts and pixel zeroing only remove ink


def test_view_sampler_gives_two_views_of_distinct_images(tiny_images):
    src = source("psco", tiny_images.unlabeled(), n_way=8, k_shot=2, q_query=2,
                 augment=Augment(), key_augment=Augment(shift=2))
    batch = src.sample(3)
    assert isinstance(batch, ViewBatch) and (batch.n_way, batch.k_shot) == (8, 2)
    assert batch.query_x.shape == (3, 16, 1, 16, 16) and batch.key_x.shape == (3, 8, 1, 16, 16)
    firsts = batch.query_x.view(24, 2, -1)[:, 0]
    assert torch.equal(batch.query_x.view(24, 2, -1)[:, 1], firsts)
    assert len(torch.unique(firsts, dim=0)) == 24  # distinct across the whole batch
    assert not torch.equal(batch.key_x.reshape(24, -1), firsts)


@pytest.mark.parametrize("name", ["umtra", "cactus", "psco"])
def test_generator_state_resumes_the_same_tasks(tiny_images, name):
    images = tiny_images.unlabeled()
    a = source(name, images, n_way=4)
    a.sample(3)
    state = a.state_dict()
    expected = a.sample(3)
    b = source(name, images, n_way=4)
    b.load_state_dict(state)
    got = b.sample(3)
    for field in ("support_x", "query_x", "key_x"):
        if hasattr(got, field):
            assert torch.equal(getattr(got, field), getattr(expected, field))
    c = source(name, images, n_way=4, seed=1).sample(3)
    assert not torch.equal(c.query_x, expected.query_x)


# --- CACTUs -----------------------------------------------------------------------------------

def blobs(n_per=30, centres=6, dim=5, seed=0):
    g = gen(seed)
    means = torch.randn(centres, dim, generator=g) * 10
    x = means.repeat_interleave(n_per, 0) + torch.randn(centres * n_per, dim, generator=g) * 0.3
    return x, torch.arange(centres).repeat_interleave(n_per)


def test_cactus_partitions_are_kmeans_of_randomly_rescaled_embeddings():
    x, truth = blobs()
    images = torch.zeros(len(x), 1, 4, 4, dtype=torch.uint8)
    src = build_task_source("cactus", images, 3, 2, 3, seed=0, embeddings=x, num_partitions=4,
                            num_clusters=6)
    assert src.assignments.shape == (4, len(x))
    for p in range(4):  # well separated blobs stay separated under any rescaling
        assert adjusted_rand_score(truth, src.assignments[p]) == 1.0
    # on unstructured data the rescaling makes the partitions differ
    noise = torch.randn(120, 6, generator=gen(3))
    parts = build_task_source("cactus", images[:120], 3, 1, 1, seed=0, embeddings=noise,
                              num_partitions=3, num_clusters=8).assignments
    assert adjusted_rand_score(parts[0], parts[1]) < 0.9
    scales = torch.rand(3, 6, generator=gen(0))  # the builder's first draw from its seed
    for p in range(3):  # Lloyd's fixed point on the rescaled embeddings
        y = noise * scales[p]
        centres = torch.stack([y[parts[p] == c].mean(0) for c in range(8)])
        assert torch.equal(torch.cdist(y, centres).argmin(1), parts[p])
    again = build_task_source("cactus", images[:120], 3, 1, 1, seed=0, embeddings=noise,
                              num_partitions=3, num_clusters=8).assignments
    assert torch.equal(again, parts)


def test_cactus_ways_are_distinct_clusters_of_one_partition():
    x, _ = blobs(n_per=12, centres=8, dim=6)
    images = torch.randint(0, 256, (len(x), 1, 4, 4), dtype=torch.uint8, generator=gen(0))
    images[:, 0, 0, :2] = torch.stack([torch.arange(len(x)) // 256, torch.arange(len(x)) % 256], 1)
    src = build_task_source("cactus", images, 3, 2, 3, seed=0, embeddings=x, num_partitions=4,
                            num_clusters=8)
    ep = src.sample(20)

    def ident(v):  # the image index written into its first two pixels
        return (v[..., 0, 0, 0] * 255 * 256 + v[..., 0, 0, 1] * 255).round().long()

    sup = ident(ep.support_x).view(20, 3, 2)
    qry = ident(ep.query_x).view(20, 3, 3)
    both = torch.cat([sup, qry], 2)  # (T, N, K + Q) image indices
    for t in range(20):
        assert len(set(both[t].flatten().tolist())) == 15
        ok = False
        for p in range(4):
            cl = src.assignments[p][both[t]]
            if (cl == cl[:, :1]).all() and len(set(cl[:, 0].tolist())) == 3:
                ok = True
        assert ok, "each way must be one cluster of one partition, ways distinct clusters"


def test_cactus_skips_small_clusters_and_names_the_numbers_when_nothing_fits():
    x, _ = blobs(n_per=5, centres=6, dim=4)
    images = torch.zeros(len(x), 1, 4, 4, dtype=torch.uint8)
    src = build_task_source("cactus", images, 2, 2, 2, embeddings=x, num_partitions=2,
                            num_clusters=6)
    assert (src.counts[src.eligible.flatten()] >= 4).all()
    with pytest.raises(UmetaError, match=r"no partition has n_way=2 clusters with at least "
                                         r"k_shot \+ q_query = 3 \+ 3 = 6 images \(the best of "
                                         r"the 2 partitions has 0 of its 6 clusters\)"):
        build_task_source("cactus", images, 2, 3, 3, embeddings=x, num_partitions=2,
                          num_clusters=6)


def test_cactus_bad_embeddings_are_clear_errors(tiny_images):
    images = tiny_images.unlabeled()
    with pytest.raises(UmetaError, match="cactus needs embeddings"):
        build_task_source("cactus", images, 4, 1, 1)
    with pytest.raises(UmetaError, match="one row per image"):
        build_task_source("cactus", images, 4, 1, 1, embeddings=torch.zeros(5, 3))
    with pytest.raises(UmetaError, match="num_clusters must be between n_way=4"):
        build_task_source("cactus", images, 4, 1, 1, embeddings=torch.zeros(96, 3),
                          num_clusters=200)


# --- PsCo -------------------------------------------------------------------------------------

def test_sinkhorn_matches_a_plain_numpy_loop_and_balances_columns():
    scores = torch.randn(6, 10, generator=gen(0), dtype=torch.float64).tanh()
    q = np.exp(scores.numpy() / 0.5)
    for _ in range(3):
        q = q / q.sum(0, keepdims=True)
        q = q / q.sum(1, keepdims=True)
    torch.testing.assert_close(sinkhorn(scores, 0.5, 3), torch.from_numpy(q))
    balanced = sinkhorn(scores, 0.5, 200)
    torch.testing.assert_close(balanced.sum(1), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(balanced.sum(0), torch.full((10,), 0.6, dtype=torch.float64))
    assert torch.isfinite(sinkhorn(scores.float() * 100, 0.01, 3)).all()  # no overflow


def tiny_psco(queue_size=64, **options):
    torch.manual_seed(0)
    return PsCo(build_backbone("conv4", (1, 16, 16), hidden=8),
                **{**PSCO_TINY, "queue_size": queue_size, **options})


def test_psco_updates_momentum_network_and_queue_inside_the_step(tiny_images):
    model = tiny_psco()
    batch = source("psco", tiny_images.unlabeled(), n_way=8).sample(2)
    online = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    with torch.no_grad():
        model.backbone.features[0].weight.add_(1.0)  # online moved since the last step
    old = model.momentum_backbone.features[0].weight.clone()
    model.meta_loss(batch)
    expected = 0.9 * old + 0.1 * (online["features.0.weight"] + 1.0)
    torch.testing.assert_close(model.momentum_backbone.features[0].weight, expected)
    assert int(model.queue_ptr) == 16
    with torch.no_grad():
        keys = model.momentum_projector(model.momentum_backbone(batch.key_x.flatten(0, 1)))
    # BatchNorm in train mode: the same batch gives the same keys
    torch.testing.assert_close(model.queue[:16], torch.nn.functional.normalize(keys, dim=1))
    for _ in range(4):  # 16 more per step: the pointer wraps round the 64 slots
        model.meta_loss(batch)
    assert int(model.queue_ptr) == 16
    assert {"queue", "queue_ptr", "momentum_backbone.features.0.weight",
            "momentum_projector.0.weight"} <= set(model.state_dict())
    assert not any(p.requires_grad for p in model.momentum_backbone.parameters())


def test_psco_eval_mode_leaves_its_state_alone(tiny_images):
    model = tiny_psco()
    batch = source("psco", tiny_images.unlabeled(), n_way=8).sample(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    out = model.meta_loss(batch)
    assert torch.isfinite(out.loss) and 0 <= out.accuracy <= 1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_psco_resumes_exactly_from_a_state_dict(tiny_images):
    images = tiny_images.unlabeled()

    def steps(model, src, opt, n):
        out = []
        for _ in range(n):
            loss = model.meta_loss(src.sample(2)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.detach())
        return torch.stack(out)

    model, src = tiny_psco(), source("psco", images, n_way=8)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-3)
    steps(model, src, opt, 3)
    saved = copy.deepcopy((model.state_dict(), src.state_dict(), opt.state_dict()))
    straight = steps(model, src, opt, 2)
    model2, src2 = tiny_psco(), source("psco", images, n_way=8, seed=5)
    opt2 = torch.optim.Adam([p for p in model2.parameters() if p.requires_grad], 1e-3)
    model2.load_state_dict(saved[0])
    src2.load_state_dict(saved[1])
    opt2.load_state_dict(saved[2])
    assert torch.equal(steps(model2, src2, opt2, 2), straight)


def test_psco_is_a_few_shot_learner_on_episodes(tiny_images):
    model = tiny_psco().eval()
    ep = source("umtra", tiny_images.unlabeled(), n_way=5, q_query=3).sample(2)
    logits = model(ep)
    assert logits.shape == (2, 15, 5)
    torch.testing.assert_close(logits, model.predict(model.adapt(ep.support_x, ep.support_y, 5),
                                                     ep.query_x))
    assert logits.abs().max() <= 1.0 + 1e-5  # cosine similarities at shot_temperature 1
    assert model.embed(ep.query_x[0]).shape == (15, PSCO_TINY["proj_dim"])
    backbone_head = PsCo(model.backbone, **PSCO_TINY, eval_head="backbone").eval()
    feats = torch.nn.functional.normalize(model.backbone(ep.support_x[0]), dim=1)
    torch.testing.assert_close(backbone_head.adapt(ep.support_x, ep.support_y, 5).prototypes[0],
                               torch.nn.functional.normalize(feats, dim=1))
    assert torch.isfinite(model.train().meta_loss(ep).loss)


def test_psco_momentum_eval_head_embeds_the_support_set_with_the_momentum_network(tiny_images):
    model = tiny_psco(eval_head="momentum").eval()
    with torch.no_grad():  # make the momentum network differ from the online one
        for p in model.momentum_backbone.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ep = source("umtra", tiny_images.unlabeled(), n_way=5, q_query=3).sample(2)
    with torch.no_grad():
        shots = F.normalize(model.momentum_projector(model.momentum_backbone(
            ep.support_x.flatten(0, 1))), dim=1).view(2, 5, -1)  # 1 shot: support order = class
        order = ep.support_y.argsort(1)
        want = torch.stack([shots[t, order[t]] for t in range(2)])
        queries = F.normalize(model.predictor(model.projector(model.backbone(
            ep.query_x.flatten(0, 1)))), dim=1).view(2, 15, -1)
        state = model.adapt(ep.support_x, ep.support_y, 5)
        torch.testing.assert_close(state.prototypes, want)
        torch.testing.assert_close(model(ep), queries @ want.transpose(1, 2))
        model.eval_head = "projector"
        assert not torch.allclose(model.adapt(ep.support_x, ep.support_y, 5).prototypes, want)


def test_psco_embeds_in_the_space_embed_head_names(tiny_images):
    model = tiny_psco().eval()
    x = tiny_images.unlabeled()[:10].float() / 255
    with torch.no_grad():
        feats = model.backbone(x)
        z = model.projector(feats)
        expected = {"projector": F.normalize(z, dim=1),
                    "predictor": F.normalize(model.predictor(z), dim=1), "backbone": feats}
    for head, want in expected.items():
        model.embed_head = head
        torch.testing.assert_close(model.embed(x, batch_size=4), want)
    with pytest.raises(UmetaError, match="embed_head must be one of predictor, projector"):
        PsCo(model.backbone, embed_head="proj")


def test_psco_queue_smaller_than_the_batch_is_a_clear_error(tiny_images):
    model = tiny_psco(queue_size=12)
    batch = source("psco", tiny_images.unlabeled(), n_way=8).sample(2)
    with pytest.raises(UmetaError, match="queue holds 12 embeddings, fewer than the batch of 16"):
        model.meta_loss(batch)
    with pytest.raises(UmetaError, match="eval_head must be one of projector, momentum"):
        PsCo(model.backbone, eval_head="proj")


# --- the factory ------------------------------------------------------------------------------

def test_factory_errors_name_the_problem(tiny_images):
    images = tiny_images.unlabeled()
    assert TASK_BUILDERS.names() == ["cactus", "labelled", "mosaic", "psco", "tables", "umtra"]
    with pytest.raises(UmetaError, match="unknown task builder 'umtr'; choose one of: cactus, "
                                         "labelled, mosaic, psco, tables, umtra"):
        build_task_source("umtr", images, 5, 1, 1)
    with pytest.raises(UmetaError, match="task builder 'umtra' has no option 'augment'"):
        build_task_source("umtra", images, 5, 1, 1, augment=Augment())
    with pytest.raises(UmetaError, match="n_way=97 is larger than the 96 images"):
        build_task_source("umtra", images, 97, 1, 1)
    with pytest.raises(UmetaError, match="batch of 4 x n_way=32 = 128 images is larger than"):
        build_task_source("psco", images, 32, 1, 1).sample(4)
    with pytest.raises(UmetaError, match="uint8 images"):
        build_task_source("umtra", images.float(), 5, 1, 1)
    with pytest.raises(UmetaError, match="k_shot must be a whole number >= 1"):
        build_task_source("psco", images, 5, 0, 1)
