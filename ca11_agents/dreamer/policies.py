"""Dreamer's policy object: the world model, actor and critics, and recurrent acting (SB3's ``predict``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from gymnasium import spaces

from ca11_agents.common.policies import RecurrentLatentPolicy
from ca11_agents.dreamer.actor import CategoricalLatentActor, LatentActor
from ca11_agents.dreamer.critic import LatentCritic
from ca11_agents.world_models.rssm import RecurrentStateSpaceModel, RSSMState


class DreamerPolicy(RecurrentLatentPolicy):
    """The networks of a Dreamer agent, built from the spaces (sizes are the ``policy_kwargs`` of the agent).

    The RSSM's encoder and decoder are built from the observation space (an MLP for vectors, a CNN for images, one
    per key for a ``Dict``); the actor from the action space (a tanh-Gaussian for a ``Box``, categorical for
    ``Discrete``/``MultiDiscrete``).

    Args:
        observation_space: a vector or image ``Box``, or a ``Dict`` of them.
        action_space: a flat ``Box`` (the agent rescales it to ``[-1, 1]``), ``Discrete`` or ``MultiDiscrete``.
        hidden_dim: the RSSM's deterministic state size.
        state_dim: the RSSM's stochastic state size (``groups * classes`` for categorical latents).
        classes: classes per categorical latent group.
        latent: ``"categorical"`` (DreamerV3) or ``"gaussian"``.
        units: width of the world model's MLPs.
        actor_hidden_dims: widths of the actor's hidden layers.
        critic_hidden_dims: widths of the critic's hidden layers.
        bins: two-hot buckets of the reward and value heads.
        unimix: uniform mixture of the categorical latents.
        free_bits: KL clip in nats.
        symlog_obs: encode and reconstruct symlog vector observations.
        cnn_depth: channels of the first convolution of image encoders (doubled at each of the stages down to
            4x4) and of the last one of their decoders.
        rssm_kwargs: further arguments of :class:`RecurrentStateSpaceModel` (``layers``, ``dyn_scale``,
            ``rep_scale``, ``core`` by name, ...), forwarded as they are.
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
        hidden_dim: int = 128,
        state_dim: int = 64,
        classes: int = 8,
        latent: str = "categorical",
        units: int = 128,
        actor_hidden_dims: Sequence[int] = (128, 128),
        critic_hidden_dims: Sequence[int] = (128, 128),
        bins: int = 255,
        unimix: float = 0.01,
        free_bits: float = 1.0,
        symlog_obs: bool = True,
        cnn_depth: int = 8,
        rssm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(observation_space, action_space)
        self.rssm = RecurrentStateSpaceModel(
            observation_space,
            self.actions.dim,
            state_dim,
            hidden_dim,
            latent=latent,
            classes=classes,
            units=units,
            reward_bins=bins,
            unimix=unimix,
            free_bits=free_bits,
            symlog_obs=symlog_obs,
            cnn_depth=cnn_depth,
            **(rssm_kwargs or {}),
        )
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
        torch._foreach_lerp_(list(self.slow_critic.parameters()), list(self.critic.parameters()), tau)

    # --------------------------------------------------------------------------------------------------- acting
    def initial_state(self, n_envs: int) -> RSSMState:
        """The state before any observation (as tensors)."""
        return self.rssm.initial_state(n_envs)

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
        state = self.rssm.obs_step(state, prev_action, self.rssm.embed(obs), is_first, deterministic)
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
