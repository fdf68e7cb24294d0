"""PsCo: pseudo-supervised contrast (Jang, Lee and Shin, ICLR 2023).

An online network (backbone -> projector -> predictor) and a momentum copy (backbone ->
projector, an exponential moving average of the online weights) see two augmented views of a
batch of images (a `ViewBatch`). Each image is a pseudo-class. Its support shots are the
``k_shot`` entries of a queue of past momentum embeddings that a Sinkhorn-balanced assignment of
the batch's momentum embeddings to the queue gives it; its queries are its online views. The loss
is the supervised-contrastive loss of these N-way K-shot pseudo-tasks plus MoCo's InfoNCE (the
momentum view is the positive, the queue the negatives).

The momentum weights and the queue are a submodule and buffers, so they are in ``state_dict``;
:meth:`PsCo.meta_loss` updates them itself, in training mode only, with no host syncs. Under
``torchrun`` (training mode) the momentum keys of all ranks are gathered: Sinkhorn runs over the
global batch and every rank enqueues every key, so all ranks hold the same queue
(`umeta.distributed`).
For evaluation PsCo is a normal few-shot learner: cosine similarity to normalised class-mean
prototypes of projector features (support) and predictor features (queries), as in the paper.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umeta.distributed import all_gather_rows
from umeta.errors import UmetaError
from umeta.learners.base import LEARNERS, Learner, MetaLoss
from umeta.learners.protonet import TaskPrototypes, transductive_prototypes
from umeta.tasks.episode import Episode
from umeta.tasks.umtra import ViewBatch

EMBED_HEADS = ("predictor", "projector", "backbone")
EVAL_HEADS = ("projector", "momentum", "backbone")


def _cosine(x: Tensor, prototypes: Tensor) -> Tensor:
    """Cosine similarity of normalised x (T, Q, d) to prototypes (T, N, d) -> (T, Q, N)."""
    return x @ F.normalize(prototypes, dim=-1).transpose(1, 2)


def mlp_head(in_dim: int, hidden: int, out_dim: int, last_norm: bool) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU -> Linear (-> BatchNorm without affine), no biases.

    Shapes: (B, in_dim) -> (B, out_dim).
    """
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                               nn.ReLU(), nn.Linear(hidden, out_dim, bias=False)]
    if last_norm:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def sinkhorn(scores: Tensor, epsilon: float, iters: int) -> Tensor:
    """Balanced soft assignment of rows to columns by Sinkhorn-Knopp, in the log domain.

    Each iteration first gives every column the same total mass, then every row mass 1.

    Parameters
    ----------
    scores : Tensor of shape (B, M)
        Similarities of B items to M candidates.
    epsilon : float
        Entropic regularisation (smaller is closer to a hard assignment).
    iters : int
        At least 1.

    Returns
    -------
    Tensor of shape (B, M), non-negative, each row summing to 1.
    """
    log_q = scores / epsilon
    for _ in range(iters):
        log_q = log_q - log_q.logsumexp(0, keepdim=True)
        log_q = log_q - log_q.logsumexp(1, keepdim=True)
    return log_q.exp()


@LEARNERS.register("psco")
class PsCo(Learner):
    """Pseudo-supervised contrast with a momentum encoder and a queue of momentum embeddings.

    Trains on `ViewBatch` meta-batches (the ``psco`` task builder).

    Parameters
    ----------
    backbone : nn.Module
        The online encoder, (B, C, H, W) -> (B, backbone.out_dim).
    proj_dim, hidden_dim : int
        Output and hidden widths of the projector and predictor MLPs (256 and 4096 in the paper).
    queue_size : int
        ``M``, momentum embeddings kept (16384 in the paper); must be at least the batch size.
    momentum : float
        EMA rate of the momentum network (0.99 in the paper).
    temperature : float
        Of the InfoNCE (MoCo) term (0.2 in the paper).
    shot_temperature : float
        Of the pseudo-task term and of evaluation logits (1.0 in the paper).
    sinkhorn_iters : int
    sinkhorn_epsilon : float
    eval_head : {"projector", "momentum", "backbone"}
        Features for few-shot evaluation. Queries always go through the online network and its
        predictor, as in training (normalised backbone features with "backbone"); the support
        set through the online projector ("projector"), through the momentum network and its
        projector, as the shots are in training ("momentum"; the same accuracy as "projector"
        after a cosine schedule, whose last steps let the momentum network catch up), or as
        normalised backbone features ("backbone").
    embed_head : {"predictor", "projector", "backbone"}
        What :meth:`embed` returns for clustering, embedding and anomaly scoring (`umeta.adapt`,
        and the CACTUs builder's encoder): the normalised predictor output (the space of the
        online views; the measured comparison is in docs/adaptation.md), the normalised projector
        output (the space of the momentum keys), or the raw backbone features.
    seed : int
        Seeds the random unit vectors the queue starts with.
    transductive_steps, transductive_temperature : int, float
        At evaluation, refine the prototypes with the unlabeled queries by soft k-means
        (`umeta.learners.protonet.transductive_prototypes`); 0 steps is the inductive rule.
    """

    batch_type = ViewBatch
    training_only_state = ("momentum_backbone.", "momentum_projector.", "queue", "queue_ptr")

    def __init__(self, backbone: nn.Module, proj_dim: int = 256, hidden_dim: int = 4096,
                 queue_size: int = 16384, momentum: float = 0.99, temperature: float = 0.2,
                 shot_temperature: float = 1.0, sinkhorn_iters: int = 3,
                 sinkhorn_epsilon: float = 0.05, eval_head: str = "projector",
                 embed_head: str = "predictor", seed: int = 0, transductive_steps: int = 0,
                 transductive_temperature: float = 0.1) -> None:
        super().__init__()
        if queue_size < 1 or not 0.0 <= momentum <= 1.0 or sinkhorn_iters < 1:
            raise UmetaError(f"psco needs queue_size >= 1, 0 <= momentum <= 1 and "
                             f"sinkhorn_iters >= 1; got {queue_size}, {momentum}, {sinkhorn_iters}")
        if min(temperature, shot_temperature, sinkhorn_epsilon) <= 0:
            raise UmetaError(f"psco temperatures and sinkhorn_epsilon must be > 0; got "
                             f"{temperature}, {shot_temperature}, {sinkhorn_epsilon}")
        if eval_head not in EVAL_HEADS:
            raise UmetaError(f"psco eval_head must be one of {', '.join(EVAL_HEADS)}; "
                             f"got {eval_head!r}")
        if embed_head not in EMBED_HEADS:
            raise UmetaError(f"psco embed_head must be one of {', '.join(EMBED_HEADS)}; "
                             f"got {embed_head!r}")
        self.backbone = backbone
        self.projector = mlp_head(backbone.out_dim, hidden_dim, proj_dim, last_norm=True)
        self.predictor = mlp_head(proj_dim, hidden_dim, proj_dim, last_norm=False)
        self.momentum_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)
        gen = torch.Generator().manual_seed(int(seed))
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim, generator=gen),
                                                  dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.momentum = float(momentum)
        self.temperature = float(temperature)
        self.shot_temperature = float(shot_temperature)
        self.sinkhorn_iters = int(sinkhorn_iters)
        self.sinkhorn_epsilon = float(sinkhorn_epsilon)
        self.eval_head = eval_head
        self.embed_head = embed_head
        self.transductive_steps = int(transductive_steps)
        self.transductive_temperature = float(transductive_temperature)

    def meta_loss(self, batch: ViewBatch | Episode) -> MetaLoss:
        """Pseudo-task + InfoNCE loss and pseudo-task accuracy of a `ViewBatch`.

        In training mode this first moves the momentum network towards the online one and
        finally pushes the batch's momentum embeddings into the queue. An `Episode` gets the
        ordinary query cross-entropy of :meth:`forward`.
        """
        if isinstance(batch, Episode):
            return super().meta_loss(batch)
        t, n, k = batch.num_tasks, batch.n_way, batch.k_shot
        q = batch.query_x.shape[1] // n
        m = self.queue.shape[0]
        if batch.query_x.shape[1] != n * q or batch.key_x.shape[:2] != (t, n):
            raise UmetaError(f"a ViewBatch of {n} ways needs query_x (T, {n} * Q, ...) and "
                             f"key_x (T, {n}, ...); got {tuple(batch.query_x.shape)} and "
                             f"{tuple(batch.key_x.shape)}")
        if self.training:
            self._update_momentum_network()
        p = F.normalize(self.predictor(self.projector(self.backbone(batch.query_x.flatten(0, 1)))),
                        dim=-1)  # (T * N * Q, d), image-major
        with torch.no_grad():
            z = F.normalize(self.momentum_projector(self.momentum_backbone(batch.key_x.flatten(0, 1))),
                            dim=-1)  # (T * N, d)
            # every rank's keys when training under torchrun; ours are rows first .. first + T * N
            keys, first = all_gather_rows(z) if self.training else (z, 0)
            if len(keys) > m or k > m:
                raise UmetaError(f"the psco queue holds {m} embeddings, fewer than the batch of "
                                 f"{len(keys)} images (all processes) or k_shot={k}; use "
                                 f"queue_size >= {max(len(keys), k)}")
            queue = self.queue.clone()
            assignment = sinkhorn((keys @ queue.T).float(), self.sinkhorn_epsilon,
                                  self.sinkhorn_iters)[first : first + len(z)]
            shots = queue[assignment.topk(k, dim=1).indices]  # (T * N, K, d)
        # N-way K-shot pseudo-tasks: every query against every shot of its task
        queries = p.view(t, n * q, -1)
        logits = queries @ shots.view(t, n * k, -1).transpose(1, 2) / self.shot_temperature
        log_prob = logits.log_softmax(-1).view(t, n, q, n, k)
        task_loss = -log_prob.diagonal(dim1=1, dim2=3).mean()
        prototypes = F.normalize(shots.view(t, n, k, -1).mean(2), dim=-1)
        guess = (queries @ prototypes.transpose(1, 2)).argmax(-1)  # (T, N * Q)
        target = torch.arange(n, device=guess.device).repeat_interleave(q)
        accuracy = (guess == target).float().mean()
        # MoCo: the momentum view of the same image against the queue
        positive = (p * z.repeat_interleave(q, 0)).sum(-1, keepdim=True)
        contrast = torch.cat([positive, p @ queue.T], 1) / self.temperature
        moco_loss = F.cross_entropy(contrast, contrast.new_zeros(len(contrast), dtype=torch.long))
        if self.training:
            self._enqueue(keys)
        return MetaLoss(task_loss + moco_loss, accuracy.detach())

    @torch.no_grad()
    def restore_training_state(self) -> None:
        """The momentum network as a copy of the online one (as after a cosine schedule, whose
        last steps let it catch up); the queue keeps its initial random unit vectors."""
        for src, dst in ((self.backbone, self.momentum_backbone),
                         (self.projector, self.momentum_projector)):
            dst.load_state_dict(src.state_dict())

    @torch.no_grad()
    def _update_momentum_network(self) -> None:
        online = [*self.backbone.parameters(), *self.projector.parameters()]
        target = [*self.momentum_backbone.parameters(), *self.momentum_projector.parameters()]
        torch._foreach_lerp_(target, online, 1.0 - self.momentum)
        for src, dst in zip([*self.backbone.buffers(), *self.projector.buffers()],
                            [*self.momentum_backbone.buffers(), *self.momentum_projector.buffers()]):
            dst.copy_(src)

    @torch.no_grad()
    def _enqueue(self, z: Tensor) -> None:
        m = self.queue.shape[0]
        slots = (self.queue_ptr + torch.arange(len(z), device=z.device)) % m
        self.queue.index_copy_(0, slots, z.to(self.queue.dtype))
        self.queue_ptr.copy_((self.queue_ptr + len(z)) % m)

    def _projected(self, features: Tensor, predictor: bool) -> Tensor:
        """Normalised projector (or, with ``predictor``, predictor) output, (B, D) -> (B, d)."""
        z = self.projector(features)
        return F.normalize(self.predictor(z) if predictor else z, dim=-1)

    def _eval_embedding(self, x: Tensor, query: bool) -> Tensor:
        """Normalised evaluation embedding of support (or query) images (B, C, H, W) -> (B, d)."""
        if self.eval_head == "momentum" and not query:
            return F.normalize(self.momentum_projector(self.momentum_backbone(x)), dim=-1)
        if self.eval_head == "backbone":
            return F.normalize(self.backbone(x), dim=-1)
        return self._projected(self.backbone(x), predictor=query)

    def embedding(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> features (B, d) in the space ``embed_head`` names."""
        features = self.backbone(x)
        if self.embed_head == "backbone":
            return features
        return self._projected(features, predictor=self.embed_head == "predictor")

    def _encode(self, x: Tensor, query: bool) -> Tensor:
        """:meth:`_eval_embedding` of every task's images, (T, B, C, H, W) -> (T, B, d)."""
        t, b = x.shape[:2]
        return self._eval_embedding(x.flatten(0, 1), query).view(t, b, -1)

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int,
              query_x: Tensor | None = None) -> TaskPrototypes:
        """Normalised class-mean prototypes (T, n_way, d), refined with the queries in eval mode
        when ``transductive_steps > 0`` (cosine soft k-means)."""
        support = self._encode(support_x, query=False)
        query = None if query_x is None else self._encode(query_x, query=True)
        steps = 0 if self.training or query is None else self.transductive_steps
        prototypes = transductive_prototypes(support, support_y, query, n_way, _cosine, steps,
                                             self.transductive_temperature)
        return TaskPrototypes(F.normalize(prototypes, dim=-1), query, query_x)

    def predict(self, state: TaskPrototypes, query_x: Tensor) -> Tensor:
        """Cosine similarity to each prototype over ``shot_temperature``, (T, Q, n_way)."""
        query = state.encoded_queries(query_x, lambda x: self._encode(x, query=True))
        return query @ state.prototypes.transpose(1, 2) / self.shot_temperature
