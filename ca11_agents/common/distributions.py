"""Distributions and transforms of DreamerV3 (Hafner et al., 2023, "Mastering Diverse Domains through World Models").

- :func:`symlog` / :func:`symexp`: the squashing that lets one set of hyperparameters fit observations and rewards
  of any scale (paper, eq. 1).
- :class:`TwoHotSymlog`: reward and value predictions as a categorical over exponentially spaced bins, trained with
  two-hot targets (paper, eqs. 8-10), robust to rewards of any size.
- Categorical latents with *unimix* (1% uniform mixed into every categorical, paper sec. "Robustness") and
  straight-through gradients, and their KL divergence.
- Diagonal Gaussian latents, for the ``latent="gaussian"`` option of the RSSM.

What turns a network's output into probabilities, samples, values, KL terms or losses runs in float32 whatever the
caller's precision (:func:`float32_math`): under ``precision="bf16"`` only the networks' matrix products run in
bfloat16, as mixed precision intends, while those keep float32's resolution (bfloat16 has 8 bits of mantissa: a value
of -295 decoded in it is off by up to 8).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_F = TypeVar("_F", bound=Callable)
_LOW_PRECISION = (torch.bfloat16, torch.float16)


def float32_math(fn: _F) -> _F:
    """Decorate ``fn`` to run in float32 under ``torch.autocast``: its low-precision tensor arguments are cast up and
    autocast is switched off inside. Outside autocast, with float32 arguments, ``fn`` runs as it is. The first tensor
    argument (usually the first or, after ``self``, the second) tells the device."""

    def up(value: object) -> object:
        return value.float() if isinstance(value, Tensor) and value.dtype in _LOW_PRECISION else value

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # noqa: ANN202
        # The common case (float32 training) costs two type checks and one autocast query: a few calls per RSSM step.
        if args and isinstance(args[0], Tensor):
            first = args[0]
        elif len(args) > 1 and isinstance(args[1], Tensor):
            first = args[1]
        else:
            first = next((v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)), None)
            if first is None:
                return fn(*args, **kwargs)
        device = first.device.type
        if first.dtype not in _LOW_PRECISION and not torch.is_autocast_enabled(device):
            return fn(*args, **kwargs)
        with torch.autocast(device, enabled=False):
            return fn(*map(up, args), **{k: up(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]


def symlog(x: Tensor) -> Tensor:
    """``sign(x) * log(1 + |x|)``: compresses large magnitudes, identity-like near zero."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


class TwoHotSymlog(nn.Module):
    """A scalar predicted as a categorical over ``bins`` buckets evenly spaced in symlog space.

    The head outputs ``bins`` logits; :meth:`mean` decodes them to a scalar (the expected bucket in symlog space,
    then :func:`symexp`), :meth:`loss` is the cross-entropy against the two-hot encoding of the target.
    """

    def __init__(self, bins: int = 255, low: float = -20.0, high: float = 20.0) -> None:
        super().__init__()
        if bins < 2:
            raise ValueError(f"TwoHotSymlog needs at least 2 bins, got {bins}")
        self.register_buffer("buckets", torch.linspace(low, high, bins), persistent=False)

    @property
    def bins(self) -> int:
        """Number of buckets (the size of the head's output)."""
        return self.buckets.numel()

    def _neighbours(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The buckets either side of ``symlog(x)`` ``(...)`` (indices) and the weight of the upper one."""
        y = symlog(x).clamp(self.buckets[0], self.buckets[-1])
        upper = torch.searchsorted(self.buckets, y.detach().contiguous(), right=True).clamp(1, self.bins - 1)
        lower = upper - 1
        lo, hi = self.buckets[lower], self.buckets[upper]
        return lower, upper, ((y - lo) / (hi - lo)).clamp(0.0, 1.0)

    def encode(self, x: Tensor) -> Tensor:
        """Two-hot target ``(..., bins)`` for values ``x`` of shape ``(...)``: the weight of ``symlog(x)`` is split
        between its two neighbouring buckets in proportion to closeness, so that the encoding's mean is exact."""
        lower, upper, w_hi = self._neighbours(x)
        target = torch.zeros(*x.shape, self.bins, device=x.device, dtype=w_hi.dtype)
        target.scatter_(-1, lower.unsqueeze(-1), (1.0 - w_hi).unsqueeze(-1))
        target.scatter_add_(-1, upper.unsqueeze(-1), w_hi.unsqueeze(-1))
        return target

    @float32_math
    def mean(self, logits: Tensor) -> Tensor:
        """Decode logits ``(..., bins)`` into values ``(...)``."""
        probs = F.softmax(logits, dim=-1)
        return symexp(probs @ self.buckets.to(probs.dtype))  # one matmul: 4x faster than multiply-and-sum

    @float32_math
    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy ``(...)`` between the prediction and the two-hot encoding of ``target``.

        Only the two neighbouring buckets of a target have weight, so the sum over ``bins`` is two gathered terms
        (the same value as ``-(encode(target) * log_softmax(logits)).sum(-1)``, without the ``(..., bins)``
        target).
        """
        lower, upper, w_hi = self._neighbours(target.broadcast_to(logits.shape[:-1]))
        picked = F.log_softmax(logits, dim=-1).gather(-1, torch.stack([lower, upper], -1))  # (..., 2)
        return -((1.0 - w_hi) * picked[..., 0] + w_hi * picked[..., 1])


def softmax(logits: Tensor) -> Tensor:
    """``softmax`` over the last axis, fast for the few classes of latents and actions.

    torch's CPU kernel vectorises along the softmax axis: over 8 classes it costs ~17 ns an element, 4x the four
    elementwise ops below (2x with the backward pass); from a few dozen classes on, torch's kernel is the faster.
    The maximum is subtracted without a gradient: the softmax does not depend on it.
    """
    if logits.shape[-1] > 32:
        return F.softmax(logits, dim=-1)
    exp = (logits - logits.amax(-1, keepdim=True).detach()).exp()
    return exp / exp.sum(-1, keepdim=True)


@float32_math
def unimix_probs(logits: Tensor, unimix: float) -> Tensor:
    """Softmax over the last axis, mixed with ``unimix`` of the uniform distribution (keeps every class possible, so
    KL terms and log-probabilities stay finite)."""
    probs = softmax(logits)
    if unimix > 0.0:
        probs = (1.0 - unimix) * probs + unimix / probs.shape[-1]
    return probs


@float32_math
def sample_one_hot(probs: Tensor, deterministic: bool = False) -> Tensor:
    """A one-hot sample ``(..., C)`` from ``probs`` with straight-through gradients (Bengio et al., 2013)."""
    if deterministic:
        index = probs.argmax(-1)
    else:  # Gumbel-max: one vectorised op, no per-row multinomial
        gumbel = -torch.log(-torch.log(torch.rand_like(probs).clamp_(1e-20, 1.0)))
        index = (torch.log(probs) + gumbel).argmax(-1)
    one_hot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
    return one_hot + probs - probs.detach()


@float32_math
def categorical_kl(p_probs: Tensor, q_probs: Tensor) -> Tensor:
    """``KL(p || q)`` between categoricals over the last axis, summed over the second-to-last (latent groups)."""
    return (p_probs * (torch.log(p_probs) - torch.log(q_probs))).sum((-1, -2))


@float32_math
def gaussian_params(raw: Tensor, min_std: float = 0.1) -> tuple[Tensor, Tensor]:
    """Split a head's output ``(..., 2D)`` into a mean and a positive standard deviation ``(..., D)``."""
    mean, std = raw.chunk(2, dim=-1)
    return mean, 2.0 * torch.sigmoid(std / 2.0) + min_std


@float32_math
def gaussian_kl(p_raw: Tensor, q_raw: Tensor) -> Tensor:
    """``KL(p || q)`` between diagonal Gaussians given as raw head outputs, summed over the last axis."""
    pm, ps = gaussian_params(p_raw)
    qm, qs = gaussian_params(q_raw)
    return (torch.log(qs / ps) + (ps**2 + (pm - qm) ** 2) / (2.0 * qs**2) - 0.5).sum(-1)


@float32_math
def bernoulli_nll(logits: Tensor, target: Tensor) -> Tensor:
    """Negative log-likelihood of binary ``target`` under Bernoulli ``logits`` (elementwise)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none")


