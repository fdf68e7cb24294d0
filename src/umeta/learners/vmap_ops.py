"""Normalisation and first-layer convolution rewritten for MAML's ``vmap`` over tasks.

MAML maps its per-task inner loop over the task axis with ``torch.func.vmap`` and differentiates
through it. Two kinds of PyTorch op go wrong or slow there, and :class:`VmapOps` (a
``TorchFunctionMode``) replaces them while it is active:

* Batch, instance and layer norm with batch statistics. Under ``vmap`` the fused kernels give
  wrong meta-gradients (their backward batching rules do not differentiate correctly with respect
  to the input; functorch issue 534, still open in torch 2.13; measured wrong for first- and
  second-order MAML), and the cuDNN ones fail under bf16 autocast and channels-last inputs. They
  are computed here from ``var_mean`` and one ``addcmul`` over the activations:
  ``x * scale + shift`` with per-channel ``scale = weight / sqrt(var + eps)`` and
  ``shift = bias - mean * scale``. Norms with running statistics are left to PyTorch.
* Convolutions with few input values per output (``in_channels * kh * kw <= MATMUL_CONV_MAX_K``,
  a Conv4's first layer on grey images). With per-task weights ``vmap`` turns them into grouped
  convolutions with one input channel per group, which PyTorch runs with its slow depthwise
  kernels. Here they are a matrix product of the weights with the shifted copies of the input.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

#: Largest ``in_channels * kh * kw`` of a convolution computed as a matrix product.
MATMUL_CONV_MAX_K = 9


def _normalise_affine(x: Tensor, dims: list[int], eps: float, weight: Tensor | None,
                      bias: Tensor | None, shape: list[int]) -> Tensor:
    """``(x - mean) / sqrt(var + eps) * weight + bias``, statistics over ``dims`` (float32 at
    least); ``weight`` and ``bias`` are reshaped to ``shape`` to broadcast against ``x``."""
    y = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    var, mean = torch.var_mean(y, dims, correction=0, keepdim=True)
    scale = torch.rsqrt(var + eps)
    if weight is not None:
        scale = scale * weight.reshape(shape)
    shift = (torch.addcmul(bias.reshape(shape), mean, scale, value=-1) if bias is not None
             else -mean * scale)
    return torch.addcmul(shift, y, scale).to(x.dtype)


def _batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
                momentum: float = 0.1, eps: float = 1e-5) -> Tensor | None:
    if running_mean is not None or running_var is not None:
        return None
    shape = [1, -1] + [1] * (input.dim() - 2)
    return _normalise_affine(input, [0, *range(2, input.dim())], eps, weight, bias, shape)


def _instance_norm(input: Tensor, running_mean: Tensor | None = None,
                   running_var: Tensor | None = None, weight: Tensor | None = None,
                   bias: Tensor | None = None, use_input_stats: bool = True,
                   momentum: float = 0.1, eps: float = 1e-5) -> Tensor | None:
    if running_mean is not None or running_var is not None or not use_input_stats:
        return None
    shape = [1, -1] + [1] * (input.dim() - 2)
    return _normalise_affine(input, list(range(2, input.dim())), eps, weight, bias, shape)


def _layer_norm(input: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
                bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    dims = list(range(input.dim() - len(normalized_shape), input.dim()))
    return _normalise_affine(input, dims, eps, weight, bias, list(normalized_shape))


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
            stride: int | Sequence[int] = 1, padding: int | Sequence[int] | str = 0,
            dilation: int | Sequence[int] = 1, groups: int = 1) -> Tensor | None:
    """``F.conv2d`` as ``weight (O, C*kh*kw) @ shifted copies of input (C*kh*kw, H'*W')`` for
    small ``C*kh*kw``; None (PyTorch's convolution) otherwise. ``input`` (B, C, H, W)."""
    out_c, in_c, kh, kw = weight.shape
    if (groups != 1 or isinstance(padding, str) or input.dim() != 4
            or in_c * kh * kw > MATMUL_CONV_MAX_K):
        return None
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    x = F.pad(input, (pw, pw, ph, ph))
    out_h = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    shifted = [x[:, :, i * dh: i * dh + (out_h - 1) * sh + 1: sh,
                 j * dw: j * dw + (out_w - 1) * sw + 1: sw]
               for i in range(kh) for j in range(kw)]
    cols = torch.stack(shifted, 2).reshape(x.shape[0], in_c * kh * kw, out_h * out_w)
    out = torch.matmul(weight.reshape(out_c, -1), cols)  # (B, O, H'*W')
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(x.shape[0], out_c, out_h, out_w)


class VmapOps(TorchFunctionMode):
    """While active, norms with batch statistics and small convolutions run as above; every
    other call (and these, where the rewrite does not apply) is PyTorch's own."""

    _REWRITES: dict[Callable, Callable[..., Tensor | None]] = {
        F.batch_norm: _batch_norm, F.instance_norm: _instance_norm, F.layer_norm: _layer_norm,
        F.conv2d: _conv2d,
    }

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        rewrite = self._REWRITES.get(func)
        out = None if rewrite is None else rewrite(*args, **kwargs)
        return func(*args, **kwargs) if out is None else out


__all__ = ["MATMUL_CONV_MAX_K", "VmapOps"]
