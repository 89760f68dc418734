"""The latent actors: policies over normalised continuous actions or one-hot discrete actions that read RSSM
features."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ca11_agents.common.distributions import unimix_probs
from ca11_agents.common.nets import mlp


class LatentActor(nn.Module):
    """A tanh-squashed Gaussian policy ``pi(a | s)`` on latent features, with actions in ``[-1, 1]``.

    Dreamer trains it in one of two ways (the agent's ``actor_grad``): with score-function (REINFORCE) gradients of
    normalised advantages, as DreamerV3 does for every action space (:meth:`sample`, :meth:`log_prob`,
    :meth:`entropy`), or by backpropagating imagined returns through the learned dynamics through the
    reparameterised sample of :meth:`forward` (Dreamer v1).

    Args:
        latent_dim: size of the input features (the RSSM's ``feature_dim``).
        action_dim: size of the action.
        hidden_dims: widths of the hidden layers.
        min_std: lower bound of the pre-squash standard deviation (keeps exploring).
        max_std: upper bound of the pre-squash standard deviation.
        saturation_bound: how far the pre-squash mean may go before :meth:`saturation` counts it (``tanh(2)`` is
            0.96: nearly the full action, where tanh's slope has fallen to 7 %).
    """

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        hidden_dims: Sequence[int] = (256, 256),
        min_std: float = 0.1,
        max_std: float = 1.0,
        saturation_bound: float = 2.0,
    ) -> None:
        super().__init__()
        self.action_dim, self.min_std, self.max_std = action_dim, min_std, max_std
        self.saturation_bound = saturation_bound
        self.net = mlp(latent_dim, 2 * action_dim, hidden_dims)

    def _params(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mean, std = self.net(features).float().chunk(2, -1)  # float32 maths under bf16 autocast
        std = self.min_std + (self.max_std - self.min_std) * torch.sigmoid(std + 2.0)
        return mean, std

    @staticmethod
    def _normal_log_density(pre: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        """Per-dimension ``log N(pre; mean, std)`` ``(..., A)``."""
        return -0.5 * ((pre - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2.0 * math.pi)

    def forward(self, features: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        """Sample actions ``(..., A)`` (differentiable) and their log-probabilities ``(...)``.

        With ``deterministic=True`` the action is ``tanh(mean)`` (the policy's mode before squashing) and the
        log-probability is that of the mean.
        """
        mean, std = self._params(features)
        pre = mean if deterministic else mean + std * torch.randn_like(std)
        action = torch.tanh(pre)
        # log N(pre; mean, std) minus the log-Jacobian of tanh, written stably: log(1 - tanh(x)^2) =
        # 2 * (log 2 - x - softplus(-2x)).
        log_prob = (
            self._normal_log_density(pre, mean, std) - 2.0 * (math.log(2.0) - pre - nn.functional.softplus(-2.0 * pre))
        ).sum(-1)
        return action, log_prob

    @torch.no_grad()
    def sample(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Actions ``(..., A)`` and their pre-squash values (no gradients), for score-function training."""
        mean, std = self._params(features)
        pre = mean + std * torch.randn_like(std)
        return torch.tanh(pre), pre

    def log_prob(self, features: Tensor, pre: Tensor) -> Tensor:
        """Log-density ``(...)`` of the Gaussian before the squash at given pre-squash values ``(..., A)``.

        Differs from ``log pi(tanh(pre))`` by the log-Jacobian of tanh, which does not depend on the parameters, so
        both have the same score-function (REINFORCE) gradient.
        """
        return self._normal_log_density(pre, *self._params(features)).sum(-1)

    def entropy(self, features: Tensor) -> Tensor:
        """Entropy ``(...)`` of the Gaussian before the squash (the bonus DreamerV3 adds to the actor loss)."""
        _, std = self._params(features)
        return (torch.log(std) + 0.5 * math.log(2.0 * math.pi * math.e)).sum(-1)

    def saturation(self, features: Tensor) -> Tensor:
        """How deep the pre-squash means lie in tanh's flat tails: ``sum_a relu(|mean_a| - saturation_bound)^2``
        per state ``(...)``, 0 inside the bound. A penalty on it keeps the actor where gradients still reach it: a
        mean at 3 passes 1 % of a gradient through tanh, at 5 a 5,000th (the agent's ``saturation_coef``)."""
        mean, _ = self._params(features)
        return torch.relu(mean.abs() - self.saturation_bound).pow(2).sum(-1)

    def act(self, features: Tensor, deterministic: bool = False) -> Tensor:
        """Actions only, for acting and for the notebook's imagination demo."""
        return self.forward(features, deterministic)[0]


class CategoricalLatentActor(nn.Module):
    """A policy over one-hot actions for ``Discrete`` (one block) and ``MultiDiscrete`` (one block per part) spaces,
    with the same interface as :class:`LatentActor`.

    Each block is a categorical mixed with 1 % uniform (DreamerV3's unimix, which keeps every action possible and
    log-probabilities finite). :meth:`forward` returns straight-through samples (Bengio et al., 2013; DreamerV2's
    discrete actions): one-hot in the forward pass, the probabilities' gradient in the backward pass, which is what
    lets imagined returns be backpropagated into the actor (``actor_grad="dynamics"``); :meth:`sample`,
    :meth:`log_prob` and :meth:`entropy` serve REINFORCE (``actor_grad="reinforce"``, DreamerV3).

    Args:
        latent_dim: size of the input features (the RSSM's ``feature_dim``).
        nvec: choices per part (``(n,)`` for ``Discrete(n)``).
        hidden_dims: widths of the hidden layers.
        unimix: the uniform share of each block's probabilities.
    """

    def __init__(
        self, latent_dim: int, nvec: Sequence[int], hidden_dims: Sequence[int] = (256, 256), unimix: float = 0.01
    ) -> None:
        super().__init__()
        self.nvec, self.unimix = tuple(int(n) for n in nvec), unimix
        self.action_dim = sum(self.nvec)
        self.net = mlp(latent_dim, self.action_dim, hidden_dims)

    def _probs(self, features: Tensor) -> list[Tensor]:
        """Per block, the probabilities ``(..., n)`` (softmax mixed with the uniform)."""
        return [unimix_probs(block, self.unimix) for block in self.net(features).split(self.nvec, -1)]

    @staticmethod
    def _one_hot(probs: Tensor, deterministic: bool) -> Tensor:
        index = probs.argmax(-1) if deterministic else torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1)
        return nn.functional.one_hot(index.reshape(probs.shape[:-1]), probs.shape[-1]).to(probs.dtype)

    def forward(self, features: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        """Straight-through one-hot actions ``(..., sum(nvec))`` and their log-probabilities ``(...)``
        (``deterministic``: the most probable action of each block)."""
        actions, log_prob = [], 0.0
        for probs in self._probs(features):
            one_hot = self._one_hot(probs.detach(), deterministic)
            actions.append(one_hot + probs - probs.detach())
            log_prob = log_prob + (one_hot * torch.log(probs)).sum(-1)
        return torch.cat(actions, -1), log_prob  # type: ignore[return-value]

    @torch.no_grad()
    def sample(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """One-hot actions (no gradients), twice: as actions and as what :meth:`log_prob` reads."""
        action = torch.cat([self._one_hot(p, False) for p in self._probs(features)], -1)
        return action, action

    def log_prob(self, features: Tensor, pre: Tensor) -> Tensor:
        """Log-probability ``(...)`` of one-hot actions ``pre`` ``(..., sum(nvec))``."""
        chosen = pre.split(self.nvec, -1)
        terms = [(c * torch.log(p)).sum(-1) for c, p in zip(chosen, self._probs(features))]
        return torch.stack(terms, 0).sum(0)

    def entropy(self, features: Tensor) -> Tensor:
        """Entropy ``(...)`` of the action distribution (summed over blocks)."""
        return torch.stack([-(p * torch.log(p)).sum(-1) for p in self._probs(features)], 0).sum(0)

    def act(self, features: Tensor, deterministic: bool = False) -> Tensor:
        """One-hot actions only, for acting and for the imagination demo."""
        return self.forward(features, deterministic)[0]
