"""Reward prediction in latent space: ``r_t = R(z_t, a_t)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ca11_agents.common.nets import mlp


class RewardModel(nn.Module):
    """Predicts the reward ``r_t`` of taking action ``a_t`` in latent state ``z_t`` (the reward follows the action,
    as in Gymnasium's ``step`` and SB3's buffers).

    The output layer starts at zero (DreamerV3 does the same for its reward head) so that an untrained model predicts
    the mean reward once its target is standardised, instead of an arbitrary offset.

    Args:
        latent_dim: size of ``z``.
        action_dim: size of ``a``.
        hidden_dims: hidden widths of the MLP.
    """

    def __init__(self, latent_dim: int, action_dim: int, hidden_dims: Sequence[int] = (64, 32)) -> None:
        super().__init__()
        if latent_dim < 1 or action_dim < 1:
            raise ValueError(f"RewardModel: latent_dim and action_dim must be >= 1, got {latent_dim}, {action_dim}")
        self.latent_dim = latent_dim
        self.action_dim = action_dim
        # norm=False: see VariationalAutoencoder (LayerNorm after mlp's bias-free first layer discards input scale).
        self.net = mlp(latent_dim + action_dim, 1, hidden_dims, norm=False, out_scale=0.0)

    def forward(self, z: Tensor, action: Tensor) -> Tensor:
        """Rewards ``(...)`` for latents ``(..., latent_dim)`` and actions ``(..., action_dim)``."""
        if z.shape[-1] != self.latent_dim or action.shape[-1] != self.action_dim or z.shape[:-1] != action.shape[:-1]:
            raise ValueError(
                f"RewardModel: expected z (..., {self.latent_dim}) and action (..., {self.action_dim}) with the same "
                f"leading shape, got {tuple(z.shape)} and {tuple(action.shape)}"
            )
        return self.net(torch.cat([z, action], dim=-1)).squeeze(-1)
