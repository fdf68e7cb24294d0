"""MAML (Finn, Abbeel and Levine 2017): second-order, first-order, ANIL and learned inner rates.

The inner loop is one pure per-task function of ``params: dict[str, Tensor]`` (gradients by
``torch.func.grad``, forward passes by ``torch.func.functional_call``), mapped over the task
axis with ``torch.func.vmap``. The outer ``loss.backward()`` then differentiates through the
inner gradients (second-order) or treats them as constants (first-order). Norms and small
convolutions inside the vmapped calls are rewritten (`umeta.learners.vmap_ops`).
"""

from __future__ import annotations

from typing import Iterator, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from umeta.errors import UmetaError
from umeta.learners.base import LEARNERS, Learner
from umeta.learners.vmap_ops import VmapOps
from umeta.models.backbones import has_running_stats

Params = dict[str, Tensor]
StepSizes = dict[str, Union[Tensor, float]]

_BACKBONE = "backbone."


def _descend(weight: Tensor, grad: Tensor, lr: Tensor | float) -> Tensor:
    """``weight - lr * grad`` in one kernel (a float or a 0-d tensor ``lr``)."""
    if isinstance(lr, Tensor):
        return torch.addcmul(weight, grad, lr, value=-1)
    return torch.add(weight, grad, alpha=-lr)


@LEARNERS.register("maml")
class MAML(Learner):
    """Model-agnostic meta-learning over ``backbone`` and a linear ``n_way`` head.

    Parameters
    ----------
    backbone : nn.Module
        Feature extractor (B, C, H, W) -> (B, D) with ``out_dim == D``. Its normalisation layers
        must not keep running statistics (build Conv4 with ``running_stats=False``): they cannot
        be updated per task under ``vmap``. BatchNorm then normalises every forward pass with the
        statistics of its own batch (the support set, or the query set), as in Finn et al.
    n_way : int
        Classes per task; the head is ``Linear(backbone.out_dim, n_way)``.
    inner_steps : int
        Gradient steps on the support set during meta-training.
    inner_lr : float
        Inner-loop step size, or the initial value of the learned ones.
    learn_inner_lr : bool
        Meta-learn one step size per adapted parameter tensor (per layer weight / bias, shared
        by all inner steps), initialised to ``inner_lr``: Meta-SGD's idea with per-tensor rather
        than per-element rates, which costs a handful of parameters instead of doubling them.
    first_order : bool
        Treat the inner gradients as constants in the meta-gradient (FOMAML).
    anil : bool
        Adapt the head only (ANIL, Raghu et al. 2020); backbone features of the support and
        query sets are computed once per task, with the meta-parameters.
    eval_inner_steps : int or None
        Inner steps in eval mode (``learner.eval()``); default ``inner_steps``.
    chunk_size : int or None
        Tasks per ``vmap`` chunk; smaller values lower peak memory. None maps all tasks at once.

    Attributes
    ----------
    head : nn.Linear
    inner_lrs : nn.Parameter of shape (len(adapted_names),) or None
        The learned step sizes, in the order of :attr:`adapted_names`.
    adapted_names : list of str
        Names (as in ``named_parameters()``) of the parameters the inner loop adapts.

    Notes
    -----
    Every vmapped call runs under :class:`~umeta.learners.vmap_ops.VmapOps`: batch / instance /
    layer norm from elementary ops (PyTorch's fused kernels give wrong meta-gradients under
    ``vmap``) and single-channel convolutions as matrix products (faster than grouped ones).
    :meth:`embed` runs the backbone in chunks; without running statistics, BatchNorm
    normalises each chunk by its own statistics, so features depend on the batch they come in.
    """

    needs_batch_stats = True
    # measured with torch 2.13: the compiled vmapped inner loop gives other losses and
    # meta-gradients than the eager one (which the tests check against a hand unroll)
    compile_refusal = ("run.compile computes wrong MAML meta-gradients (torch.compile of the "
                       "vmapped inner loop); set run.compile=false, or run.cuda_graph=true on a "
                       "GPU for speed")

    def __init__(self, backbone: nn.Module, n_way: int, inner_steps: int = 1,
                 inner_lr: float = 0.4, learn_inner_lr: bool = False, first_order: bool = False,
                 anil: bool = False, eval_inner_steps: int | None = None,
                 chunk_size: int | None = None) -> None:
        super().__init__()
        if has_running_stats(backbone):
            raise UmetaError(
                "MAML cannot use a backbone whose BatchNorm keeps running statistics (they cannot "
                "be updated per task under vmap); build it with running_stats=False"
            )
        eval_inner_steps = inner_steps if eval_inner_steps is None else eval_inner_steps
        for name, value, low in (("n_way", n_way, 2), ("inner_steps", inner_steps, 1),
                                 ("eval_inner_steps", eval_inner_steps, 1)):
            if int(value) < low:
                raise UmetaError(f"MAML {name} must be at least {low}; got {value}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise UmetaError(f"MAML chunk_size must be None or at least 1; got {chunk_size}")
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, int(n_way))
        self.n_way = int(n_way)
        self.inner_steps, self.eval_inner_steps = int(inner_steps), int(eval_inner_steps)
        self.inner_lr = float(inner_lr)
        self.first_order, self.anil = bool(first_order), bool(anil)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.adapted_names = [n for n, _ in self._named_meta_params()
                              if not (self.anil and n.startswith(_BACKBONE))]
        self.inner_lrs = (nn.Parameter(torch.full((len(self.adapted_names),), self.inner_lr))
                          if learn_inner_lr else None)

    # ---- parameters -------------------------------------------------------------------------

    def _named_meta_params(self) -> Iterator[tuple[str, nn.Parameter]]:
        yield from ((_BACKBONE + n, p) for n, p in self.backbone.named_parameters())
        yield from (("head." + n, p) for n, p in self.head.named_parameters())

    def meta_params(self) -> Params:
        """The backbone and head parameters, named as in ``named_parameters()``."""
        return dict(self._named_meta_params())

    def step_sizes(self) -> StepSizes:
        """Inner-loop step size of each adapted parameter (a float, or a learned 0-d tensor)."""
        if self.inner_lrs is None:
            return {n: self.inner_lr for n in self.adapted_names}
        return {n: self.inner_lrs[i] for i, n in enumerate(self.adapted_names)}

    @property
    def steps(self) -> int:
        """Inner steps used now: ``inner_steps`` in training mode, ``eval_inner_steps`` in eval."""
        return self.inner_steps if self.training else self.eval_inner_steps

    # ---- the pure per-task functions (no task axis) ------------------------------------------

    def encode(self, params: Params, x: Tensor) -> Tensor:
        """Backbone features (B, D) of ``x`` (B, C, H, W) under the ``backbone.*`` ``params``."""
        sub = {n[len(_BACKBONE):]: p for n, p in params.items() if n.startswith(_BACKBONE)}
        return functional_call(self.backbone, sub, (x,))

    @staticmethod
    def head_logits(params: Params, features: Tensor) -> Tensor:
        """Logits (B, n_way) of ``features`` (B, D) under ``params["head.weight"/"head.bias"]``."""
        return F.linear(features, params["head.weight"], params["head.bias"])

    def adapt_task(self, params: Params, lrs: StepSizes, support_x: Tensor, support_y: Tensor,
                   steps: int) -> Params:
        """Fast weights of one task after ``steps`` gradient steps on its support set.

        Parameters
        ----------
        params : dict of str to Tensor
            Meta-parameters (:meth:`meta_params`).
        lrs : dict of str to Tensor or float
            Step size of each adapted parameter (:meth:`step_sizes`).
        support_x : Tensor of shape (S, C, H, W)
        support_y : Tensor of shape (S,)
        steps : int

        Returns
        -------
        dict of str to Tensor
            The adapted parameters only (:attr:`adapted_names`; the head alone for ANIL).
        """
        fast = {n: params[n] for n in self.adapted_names}
        if self.anil:
            feats = self.encode(params, support_x)  # once: the backbone is not adapted

            def support_loss(fast: Params) -> Tensor:
                return F.cross_entropy(self.head_logits(fast, feats), support_y)
        else:
            def support_loss(fast: Params) -> Tensor:
                return F.cross_entropy(self.head_logits(fast, self.encode(fast, support_x)),
                                       support_y)

        for _ in range(steps):
            grads = grad(support_loss)(fast)
            if self.first_order:
                grads = {n: g.detach() for n, g in grads.items()}
            fast = {n: _descend(fast[n], grads[n], lrs[n]) for n in fast}
        return fast

    def predict_task(self, params: Params, fast: Params, query_x: Tensor) -> Tensor:
        """Query logits (Q, n_way) of one task, ``query_x`` (Q, C, H, W); ``fast`` overrides."""
        full = {**params, **fast}
        return self.head_logits(full, self.encode(full, query_x))

    # ---- the Learner interface (leading task axis T) -----------------------------------------

    def _check_n_way(self, n_way: int) -> None:
        if int(n_way) != self.n_way:
            raise UmetaError(
                f"episode n_way={n_way} does not match the MAML head's n_way={self.n_way}; "
                f"sample {self.n_way}-way episodes or build MAML with n_way={n_way}"
            )

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int,
              query_x: Tensor | None = None) -> Params:
        """Fast weights per task: dict of tensors with a leading axis T (head only for ANIL).

        Works under ``torch.no_grad()`` too (``torch.func.grad`` ignores it), for evaluation.

        Parameters
        ----------
        support_x : Tensor of shape (T, S, C, H, W)
        support_y : Tensor of shape (T, S)
        n_way : int
        query_x : ignored (MAML's rule is inductive)
        """
        self._check_n_way(n_way)
        steps = self.steps

        def one(params: Params, lrs: StepSizes, sx: Tensor, sy: Tensor) -> Params:
            return self.adapt_task(params, lrs, sx, sy, steps)

        with VmapOps():
            return vmap(one, in_dims=(None, None, 0, 0), chunk_size=self.chunk_size)(
                self.meta_params(), self.step_sizes(), support_x, support_y)

    def predict(self, state: Params, query_x: Tensor) -> Tensor:
        """Query logits (T, Q, n_way) from the fast weights ``state`` of :meth:`adapt`."""
        with VmapOps():
            return vmap(self.predict_task, in_dims=(None, 0, 0), chunk_size=self.chunk_size)(
                self.meta_params(), state, query_x)
