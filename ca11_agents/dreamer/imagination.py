"""Behaviour learning's building blocks: the actor rolled out in the RSSM, and the targets of imagined rollouts.

:class:`~ca11_agents.dreamer.dreamer.DreamerAgent` trains its actor and critic on these rollouts; they are plain
functions of the networks, so other latent-imagination learners can reuse them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

from ca11_agents.common.losses import lambda_returns
from ca11_agents.dreamer.actor import LatentActor
from ca11_agents.world_models.rssm import RecurrentStateSpaceModel as RSSM
from ca11_agents.world_models.rssm import RSSMState


class ReturnNormalizer(nn.Module):
    """DreamerV3's return scale: an EMA of the 5th-to-95th percentile range of returns, floored at 1, so that
    the actor's objective has the same size for dense and sparse rewards without shrinking small returns."""

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95) -> None:
        super().__init__()
        self.decay, self.low, self.high = decay, low, high
        self.register_buffer("range", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: Tensor) -> Tensor:
        """Fold a batch of returns into the statistic and return the scale ``max(1, range)``.

        Non-finite returns are left out (``nanquantile``), and a batch without finite ones leaves the statistic
        as it was: one bad batch, skipped by the learner (``on_nonfinite="skip"``), must not poison every later
        scale.
        """
        levels = torch.tensor([self.low, self.high], device=returns.device)
        returns = returns.detach().flatten().float()
        quantiles = torch.nanquantile(torch.where(torch.isfinite(returns), returns, torch.nan), levels)
        spread = quantiles[1] - quantiles[0]
        if bool(self.initialised):
            updated = self.range * self.decay + (1.0 - self.decay) * spread
            self.range.copy_(torch.where(torch.isfinite(spread), updated, self.range))
        elif bool(torch.isfinite(spread)):
            self.range.copy_(spread)
            self.initialised.fill_(True)
        return torch.clamp(self.range, min=1.0)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Gradients flow through ``module`` to its inputs but are not computed for its own parameters: imagination
    backpropagates through the RSSM into the actor, and the world model learns only from its own loss."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def imagine(rssm: RSSM, actor: LatentActor, start: RSSMState, horizon: int) -> tuple[Tensor, Tensor, Tensor]:
    """Roll the actor out in the world model from ``start`` ``(N, ...)``, differentiably (reparameterised actions:
    gradients flow from the features back into the actor).

    Returns:
        ``(features (N, H + 1, F), actions (N, H, A), log_probs (N, H))``.
    """
    feats, actions, log_probs = [rssm.features(start)], [], []
    state = start
    for _ in range(horizon):
        action, log_prob = actor(feats[-1])
        state = rssm.img_step(state, action)
        feats.append(rssm.features(state))
        actions.append(action)
        log_probs.append(log_prob)
    return torch.stack(feats, 1), torch.stack(actions, 1), torch.stack(log_probs, 1)


@torch.no_grad()
def imagine_sampled(rssm: RSSM, actor: LatentActor, start: RSSMState, horizon: int) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`imagine` without any graph, for score-function training: ``(features, actions, pre-squash samples)``."""
    pres = []

    def sample(features: Tensor) -> Tensor:
        action, pre = actor.sample(features)
        pres.append(pre)
        return action

    states, actions = rssm.rollout_policy(start, sample, horizon)
    return rssm.features(states), actions, torch.stack(pres, 1)


def imagined_returns(
    rssm: RSSM, feats: Tensor, actions: Tensor, values: Tensor, gamma: float, lam: float, continue_mode: bool
) -> tuple[Tensor, Tensor]:
    """Lambda-returns ``(N, H)`` of an imagined trajectory (features ``(N, H + 1, F)``, actions ``(N, H, A)``,
    values ``(N, H + 1)``) and the weight ``(N, H)`` of each step: the probability that the imagined episode is
    still running there. ``continue_mode`` ends imagined episodes where the continue head's mode says so
    (DreamerV3: a sharp end, not a small hazard everywhere)."""
    rewards = rssm.reward(feats[:, :-1], actions)
    continues = rssm.cont(feats[:, :-1], actions)
    if continue_mode:
        continues = (continues > 0.5).to(continues.dtype)
    returns = lambda_returns(rewards, continues, values, gamma, lam)
    alive = torch.cumprod(torch.cat([torch.ones_like(continues[:, :1]), continues[:, :-1]], 1), 1).detach()
    return returns, alive
