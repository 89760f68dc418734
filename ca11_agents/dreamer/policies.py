"""Dreamer's policy object: the world model, actor and critics, and recurrent acting (SB3's ``predict``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

from ca11_agents.dreamer.actor import LatentActor
from ca11_agents.dreamer.critic import LatentCritic
from ca11_agents.world_models.rssm import RecurrentStateSpaceModel, RSSMState

#: What ``predict`` carries between calls, per environment: ``(deter, stoch, prev_action)`` NumPy arrays.
RecurrentState = tuple[np.ndarray, np.ndarray, np.ndarray]


class DreamerPolicy(BasePolicy):
    """The networks of a Dreamer agent, built from the spaces (sizes are the ``policy_kwargs`` of the agent).

    Args:
        observation_space: a flat ``Box``.
        action_space: a flat ``Box`` (the agent rescales it to ``[-1, 1]``).
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
        symlog_obs: encode and reconstruct symlog observations.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Box,
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
    ) -> None:
        super().__init__(observation_space, action_space, squash_output=False)
        obs_dim, action_dim = int(observation_space.shape[0]), int(action_space.shape[0])
        self.rssm = RecurrentStateSpaceModel(
            obs_dim,
            action_dim,
            state_dim,
            hidden_dim,
            latent=latent,
            classes=classes,
            units=units,
            reward_bins=bins,
            unimix=unimix,
            free_bits=free_bits,
            symlog_obs=symlog_obs,
        )
        self.actor = LatentActor(self.rssm.feature_dim, action_dim, actor_hidden_dims)
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
        """The state before any observation, with a zero previous action (as tensors)."""
        return self.rssm.initial_state(n_envs)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        state: RSSMState,
        prev_action: torch.Tensor,
        is_first: torch.Tensor,
        deterministic: bool,
    ) -> tuple[torch.Tensor, RSSMState]:
        """Filter one observation per env ``(n, O)`` into the latent state and pick normalised actions ``(n, A)``."""
        state = self.rssm.obs_step(state, prev_action, self.rssm.embed(obs), is_first, deterministic)
        return self.actor.act(self.rssm.features(state), deterministic), state

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        raise NotImplementedError("DreamerPolicy is recurrent: use predict(observation, state, episode_start)")

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray,
        state: RecurrentState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, RecurrentState]:
        """Actions for one observation ``(O,)`` or a batch ``(n, O)``, in the env's action bounds.

        Follows SB3's recurrent convention (as RecurrentPPO): ``state`` is what the previous call returned (``None``
        at the start), and the state of every env whose ``episode_start`` is true is reset first.
        """
        observation = np.asarray(observation, dtype=np.float32)
        single = observation.shape == self.observation_space.shape
        if single:
            observation = observation[None]
        if observation.ndim != 2 or observation.shape[1:] != self.observation_space.shape:
            raise ValueError(
                f"DreamerPolicy.predict: expected observations of shape {self.observation_space.shape} or "
                f"(n, {self.observation_space.shape[0]}), got {observation.shape}"
            )
        n = observation.shape[0]
        device = self.device
        if state is None:
            latent, prev_action = self.initial_state(n), torch.zeros(n, self.action_space.shape[0], device=device)
            is_first = torch.ones(n, device=device)
        else:
            deter, stoch, prev = (torch.as_tensor(x, dtype=torch.float32, device=device) for x in state)
            if deter.shape[0] != n:
                raise ValueError(f"DreamerPolicy.predict: state is for {deter.shape[0]} envs, observations for {n}")
            # Filtering reads only h and z of the previous state; its distribution parameters are not carried.
            latent, prev_action = RSSMState(deter, stoch, stoch), prev
            starts = np.zeros(n) if episode_start is None else np.asarray(episode_start, dtype=np.float32)
            is_first = torch.as_tensor(starts.reshape(n), dtype=torch.float32, device=device)
        obs = torch.as_tensor(observation, device=device)
        action, latent = self.act(obs, latent, prev_action, is_first, deterministic)
        new_state = (latent.deter.cpu().numpy(), latent.stoch.cpu().numpy(), action.cpu().numpy())
        env_action = self.unscale_action(new_state[2]).astype(self.action_space.dtype)
        return (env_action[0] if single else env_action), new_state

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {"observation_space": self.observation_space, "action_space": self.action_space}
