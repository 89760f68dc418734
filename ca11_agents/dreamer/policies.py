"""Dreamer's policy object: the world model, actor and critics, and recurrent acting (SB3's ``predict``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from gymnasium import spaces

from ca11_agents.common.policies import RSSMLatentPolicy
from ca11_agents.dreamer.actor import CategoricalLatentActor, LatentActor
from ca11_agents.dreamer.critic import LatentCritic, update_slow
from ca11_agents.world_models.rssm import RSSMState


class DreamerPolicy(RSSMLatentPolicy):
    """The networks of a Dreamer agent, built from the spaces (sizes are the ``policy_kwargs`` of the agent): the
    RSSM of :class:`RSSMLatentPolicy`, an actor built from the action space (a tanh-Gaussian for a ``Box``,
    categorical for ``Discrete``/``MultiDiscrete``), a critic and its slow copy.

    Args:
        observation_space: a vector or image ``Box``, or a ``Dict`` of them.
        action_space: a flat ``Box`` (the agent rescales it to ``[-1, 1]``), ``Discrete`` or ``MultiDiscrete``.
        actor_hidden_dims: widths of the actor's hidden layers.
        critic_hidden_dims: widths of the critic's hidden layers.
        bins: two-hot buckets of the reward and value heads.
        **world_model_kwargs: the RSSM's sizes, see :class:`RSSMLatentPolicy`.
    """

    #: Which observation spaces this alias takes (SB3's ``MlpPolicy`` / ``CnnPolicy`` / ``MultiInputPolicy``).
    alias_for = "vector"
    #: The agent's ``learning_rate``, ``batch_size`` and ``train_freq`` when left at ``None``.
    agent_defaults: ClassVar[dict[str, float]] = {"learning_rate": 1e-3, "batch_size": 16, "train_freq": 2}

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        actor_hidden_dims: Sequence[int] = (128, 128),
        critic_hidden_dims: Sequence[int] = (128, 128),
        bins: int = 255,
        **world_model_kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, bins=bins, **world_model_kwargs)
        if self.actions.discrete:
            self.actor: LatentActor | CategoricalLatentActor = CategoricalLatentActor(
                self.rssm.feature_dim, self.actions.nvec, actor_hidden_dims
            )
        else:
            self.actor = LatentActor(self.rssm.feature_dim, self.actions.dim, actor_hidden_dims)
        self.critic = LatentCritic(self.rssm.feature_dim, critic_hidden_dims, bins)
        # The slow critic: an exponential moving average of the critic that supplies the bootstrap values of the
        # lambda-returns (DreamerV2/V3); never trained by gradients.
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)

    @torch.no_grad()
    def update_slow_critic(self, tau: float) -> None:
        """``slow <- (1 - tau) * slow + tau * critic``."""
        update_slow(self.slow_critic, self.critic, tau)

    # --------------------------------------------------------------------------------------------------- acting
    @torch.no_grad()
    def act(
        self,
        obs: Any,
        state: RSSMState,
        prev_action: torch.Tensor,
        is_first: torch.Tensor,
        deterministic: bool,
    ) -> tuple[torch.Tensor, RSSMState]:
        """Filter one observation per env into the latent state and pick learner actions ``(n, A)``."""
        state = self.filter(obs, state, prev_action, is_first, deterministic)
        return self.actor.act(self.rssm.features(state), deterministic), state


class DreamerCnnPolicy(DreamerPolicy):
    """:class:`DreamerPolicy` for image observations (``"CnnPolicy"``): the same networks, a CNN encoder."""

    alias_for = "image"
    #: CPU-sized: a CNN update on 8 x 32 frames costs ~0.3 s on one core (depth 8), so one update every 4 steps
    #: keeps a 20,000-step run near half an hour. At the MLP's learning rate (1e-3) the world model stays on the
    #: mean image (KL at the free bits, the pendulum's rod not encoded) for thousands of updates; at 3e-4 it
    #: encodes the frames within ~400 updates (benchmarks/README.md).
    agent_defaults: ClassVar[dict[str, float]] = {"learning_rate": 3e-4, "batch_size": 8, "train_freq": 4}


class DreamerMultiInputPolicy(DreamerPolicy):
    """:class:`DreamerPolicy` for ``Dict`` observations (``"MultiInputPolicy"``): one encoder per key."""

    alias_for = "dict"
    agent_defaults: ClassVar[dict[str, float]] = DreamerCnnPolicy.agent_defaults
