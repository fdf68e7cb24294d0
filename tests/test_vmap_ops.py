"""The ops MAML runs under vmap (umeta.learners.vmap_ops) against PyTorch's own."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from umeta.learners import vmap_ops
from umeta.learners.vmap_ops import VmapOps


def test_norms_match_pytorch():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 5, 5, generator=gen) * 3 + 1
    w, b = torch.randn(4, generator=gen), torch.randn(4, generator=gen)
    mean, var = torch.randn(4, generator=gen), torch.rand(4, generator=gen) + 0.5
    want = [F.batch_norm(x, None, None, w, b, training=True), F.instance_norm(x, weight=w, bias=b),
            F.layer_norm(x, (5, 5)), F.batch_norm(x, mean, var, w, b, training=False)]
    with VmapOps():
        got = [F.batch_norm(x, None, None, w, b, training=True),
               F.instance_norm(x, weight=w, bias=b), F.layer_norm(x, (5, 5)),
               F.batch_norm(x, mean, var, w, b, training=False)]  # running stats: PyTorch's
        low = F.batch_norm(x.bfloat16(), None, None, w, b, training=True)  # stats in float32
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(low.float(), want[0], rtol=0.02, atol=0.05)


CONV_CASES = [
    pytest.param(dict(), (1, 3, 3), id="3x3"),
    pytest.param(dict(padding=1), (1, 3, 3), id="3x3-pad1"),
    pytest.param(dict(padding=(2, 1), stride=2), (1, 3, 3), id="3x3-stride2"),
    pytest.param(dict(padding=2, dilation=2), (1, 3, 3), id="3x3-dilation2"),
    pytest.param(dict(stride=(1, 2)), (2, 2, 2), id="2ch-2x2"),
    pytest.param(dict(padding=1), (1, 1, 5), id="1x5"),
]


@pytest.mark.parametrize("kwargs,kernel", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_small_conv_as_matmul_matches_conv2d(kwargs, kernel, bias):
    gen = torch.Generator().manual_seed(0)
    c, kh, kw = kernel
    x = torch.randn(3, c, 9, 8, generator=gen, dtype=torch.float64)
    w = torch.randn(4, c, kh, kw, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64) if bias else None
    got = vmap_ops._conv2d(x, w, b, **kwargs)
    torch.testing.assert_close(got, F.conv2d(x, w, b, **kwargs), rtol=1e-12, atol=1e-12)


def test_small_conv_first_and_second_derivatives_under_vmap():
    """Per-task weights under vmap: the gradient and the gradient of a gradient (MAML's
    second-order term) equal those of PyTorch's convolution."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, 1, 7, 7, generator=gen, dtype=torch.float64)  # (T, B, C, H, W)
    w = torch.randn(4, 3, 1, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)

    def inner_then_outer(conv):
        def task(w, x):
            def loss(w):
                return conv(x, w, None, padding=1).tanh().pow(2).sum()
            fast = w - 0.1 * grad(loss)(w)
            return loss(fast)
        return vmap(task)(w, x).sum()

    got = torch.autograd.grad(inner_then_outer(vmap_ops._conv2d), w)[0]
    want = torch.autograd.grad(inner_then_outer(F.conv2d), w)[0]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_mode_rewrites_only_small_convolutions():
    calls = []
    real = vmap_ops._conv2d

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out is not None)
        return out

    gen = torch.Generator().manual_seed(2)
    small, big = torch.randn(2, 1, 6, 6, generator=gen), torch.randn(2, 4, 6, 6, generator=gen)
    w_small, w_big = torch.randn(3, 1, 3, 3, generator=gen), torch.randn(3, 4, 3, 3, generator=gen)
    w_grouped = torch.randn(4, 1, 3, 3, generator=gen)
    vmap_ops.VmapOps._REWRITES[F.conv2d] = spy
    try:
        with VmapOps():
            outs = [F.conv2d(small, w_small, padding=1), F.conv2d(big, w_big, padding=1),
                    F.conv2d(big, w_grouped, groups=4), F.conv2d(small, w_small, padding="same")]
    finally:
        vmap_ops.VmapOps._REWRITES[F.conv2d] = real
    assert calls == [True, False, False, False]
    assert vmap_ops.MATMUL_CONV_MAX_K == 9
    want = [F.conv2d(small, w_small, padding=1), F.conv2d(big, w_big, padding=1),
            F.conv2d(big, w_grouped, groups=4), F.conv2d(small, w_small, padding="same")]
    for g, r in zip(outs, want):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)
