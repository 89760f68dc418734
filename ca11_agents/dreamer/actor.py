"""The latent actor: a policy over normalised continuous actions that reads RSSM features."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

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
    """

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        hidden_dims: Sequence[int] = (256, 256),
        min_std: float = 0.1,
        max_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.action_dim, self.min_std, self.max_std = action_dim, min_std, max_std
        self.net = mlp(latent_dim, 2 * action_dim, hidden_dims)

    def _params(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mean, std = self.net(features).chunk(2, -1)
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

    def act(self, features: Tensor, deterministic: bool = False) -> Tensor:
        """Actions only, for acting and for the notebook's imagination demo."""
        return self.forward(features, deterministic)[0]
