"""The latent critic: state values on RSSM features, predicted as two-hot symlog distributions (DreamerV3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ca11_agents.common.distributions import TwoHotSymlog
from ca11_agents.common.nets import mlp


class LatentCritic(nn.Module):
    """``v(s)`` as a categorical over symlog-spaced buckets, robust to returns of any scale.

    Args:
        latent_dim: size of the input features (the RSSM's ``feature_dim``).
        hidden_dims: widths of the hidden layers.
        bins: two-hot buckets.
    """

    def __init__(self, latent_dim: int, hidden_dims: Sequence[int] = (256, 256), bins: int = 255) -> None:
        super().__init__()
        self.twohot = TwoHotSymlog(bins)
        # A zero output layer: initial values are exactly 0, so early returns are not bootstrapped from noise.
        self.net = mlp(latent_dim, bins, hidden_dims, out_scale=0.0)

    def forward(self, features: Tensor) -> Tensor:
        """Values ``(...)`` of features ``(..., latent_dim)``."""
        return self.twohot.mean(self.net(features))

    def loss(self, features: Tensor, targets: Tensor, slow_targets: Tensor | None = None) -> Tensor:
        """Two-hot cross-entropy ``(...)`` of the predicted value distribution against ``targets`` ``(...)``, plus,
        if given, against the slow critic's values (DreamerV3's regulariser towards the slow critic)."""
        logits = self.net(features)
        loss = self.twohot.loss(logits, targets)
        return loss if slow_targets is None else loss + self.twohot.loss(logits, slow_targets)

    def monte_carlo_loss(self, features: Tensor, returns: Tensor) -> Tensor | None:
        """The mean :meth:`loss` against the stored Monte-Carlo ``returns`` ``(B, T)`` of the windows' features
        ``(B, T, F)``, where they are known (NaN: the episode is still running); ``None`` where none is."""
        known = torch.isfinite(returns)
        return self.loss(features[known], returns[known]).mean() if bool(known.any()) else None


@torch.no_grad()
def update_slow(slow: nn.Module, critic: nn.Module, tau: float) -> None:
    """``slow <- (1 - tau) * slow + tau * critic``: the slow critic that supplies bootstrap values (DreamerV2/V3;
    a target network)."""
    torch._foreach_lerp_(list(slow.parameters()), list(critic.parameters()), tau)
