"""Loss terms as pure functions returning tensors; each cites the equation it implements.

Shapes are batch-major: ``(B, T)`` or ``(B, H)`` for per-step terms.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def kl_balanced(
    post_to_prior: Tensor,
    post_to_prior_sg_post: Tensor,
    *,
    free_bits: float = 1.0,
    dyn_scale: float = 0.5,
    rep_scale: float = 0.1,
) -> tuple[Tensor, Tensor, Tensor]:
    """KL balancing with free bits (DreamerV3, eqs. 5 and 6; balancing introduced in DreamerV2).

    The same divergence ``KL(posterior || prior)`` is used twice with different stop-gradients:

    - the *dynamics* term ``KL(sg(post) || prior)`` trains the prior to predict the posterior,
    - the *representation* term ``KL(post || sg(prior))`` makes the posterior predictable,

    and each is clipped below ``free_bits`` nats so that a near-perfect fit stops pulling the representation
    towards a trivial one.

    Args:
        post_to_prior: ``KL(sg(post) || prior)`` per step, e.g. ``(B, T)``.
        post_to_prior_sg_post: ``KL(post || sg(prior))`` per step, same shape.
        free_bits: the clip, in nats (DreamerV3: 1).
        dyn_scale: weight of the dynamics term (DreamerV3: 0.5).
        rep_scale: weight of the representation term (DreamerV3: 0.1).

    Returns:
        ``(loss, dyn, rep)``: the weighted sum per step and the two clipped terms.
    """
    dyn = torch.clamp(post_to_prior, min=free_bits)
    rep = torch.clamp(post_to_prior_sg_post, min=free_bits)
    return dyn_scale * dyn + rep_scale * rep, dyn, rep


def lambda_returns(rewards: Tensor, continues: Tensor, values: Tensor, gamma: float, lam: float) -> Tensor:
    """TD(lambda) returns along an imagined trajectory (Dreamer, eq. 6; DreamerV3, eq. 7).

    ``R_t = r_t + gamma * c_t * ((1 - lam) * v_{t+1} + lam * R_{t+1})`` with ``R_H = v_H``.

    Here ``r_t`` and ``c_t`` follow the action taken in state ``s_t`` (the notebook's and SB3's alignment):
    ``c_t`` is the probability that the episode goes on after step ``t``.

    Args:
        rewards: ``(B, H)`` rewards ``r_0 .. r_{H-1}``.
        continues: ``(B, H)`` continue probabilities ``c_0 .. c_{H-1}``.
        values: ``(B, H + 1)`` state values ``v_0 .. v_H``.
        gamma: discount.
        lam: the lambda of TD(lambda): 0 gives one-step TD targets, 1 Monte-Carlo returns bootstrapped at ``H``.

    Returns:
        ``(B, H)`` returns ``R_0 .. R_{H-1}``.
    """
    if rewards.shape != continues.shape or values.shape[:-1] != rewards.shape[:-1]:
        raise ValueError(
            f"lambda_returns: rewards {tuple(rewards.shape)} and continues {tuple(continues.shape)} must be (B, H) "
            f"and values {tuple(values.shape)} must be (B, H + 1)"
        )
    if values.shape[-1] != rewards.shape[-1] + 1:
        raise ValueError(f"lambda_returns: values need H + 1 = {rewards.shape[-1] + 1} steps, got {values.shape[-1]}")
    horizon = rewards.shape[-1]
    discounts = gamma * continues
    # The (1 - lam) bootstrap part of every step does not depend on the recursion: compute it in one op.
    inputs = rewards + discounts * (1.0 - lam) * values[:, 1:]
    returns = [values[:, -1]]
    for t in reversed(range(horizon)):
        returns.append(inputs[:, t] + discounts[:, t] * lam * returns[-1])
    return torch.stack(returns[:0:-1], dim=1)


def replay_lambda_returns(
    rewards: Tensor, terminated: Tensor, is_first: Tensor, values: Tensor, gamma: float, lam: float
) -> Tensor:
    """TD(lambda) returns along real replayed windows, for DreamerV3's replay value loss.

    The same recursion as :func:`lambda_returns` on the stored rewards, with ``c_t = 1 - terminated_t``, cut where a
    new episode starts inside the window (``is_first_{t+1}``): after a termination the return ends, after a
    truncation (a time limit) the unseen next state is valued as ``v_t``, the value of the last state seen.

    Args:
        rewards: ``(B, T)`` stored rewards.
        terminated: ``(B, T)`` 1 where the step ended its episode by termination.
        is_first: ``(B, T)`` 1 where a step is the first of an episode.
        values: ``(B, T)`` values of the posterior states.
        gamma: discount.
        lam: the lambda of TD(lambda).

    Returns:
        ``(B, T - 1)`` returns of steps ``0 .. T - 2`` (the last step only bootstraps).
    """
    if not rewards.shape == terminated.shape == is_first.shape == values.shape or rewards.dim() != 2:
        raise ValueError(
            f"replay_lambda_returns: rewards, terminated, is_first and values must all be (B, T), got "
            f"{tuple(rewards.shape)}, {tuple(terminated.shape)}, {tuple(is_first.shape)}, {tuple(values.shape)}"
        )
    ends = is_first[:, 1:]  # step t is the last of its episode in this window
    done = terminated[:, :-1]
    truncated = ends * (1.0 - done)
    continues = (1.0 - done) * (1.0 - ends)
    return lambda_returns(rewards[:, :-1] + gamma * truncated * values[:, :-1], continues, values, gamma, lam)


def check_termination_weight(owner: str, weight: float) -> float:
    """``weight`` as a float if it is a finite positive weight of terminal steps, else a ``ValueError`` naming
    ``owner``."""
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"{owner}: termination_weight must be > 0, got {weight}")
    return float(weight)


def termination_weights(terminated: Tensor, weight: float) -> Tensor | None:
    """Per-step weights of a continue loss: ``weight`` on the steps that terminated, 1 on the others; ``None``
    (no weighting) when ``weight`` is 1. Terminations are rare, so a weight above 1 makes a continue model predict
    ends more readily where it has seen few."""
    return None if weight == 1.0 else 1.0 + (weight - 1.0) * terminated
