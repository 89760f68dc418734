"""The policies of the planning learners: a world model, a :class:`~ca11_agents.planning.planner.Planner`, and
acting by model-predictive control (replanned every step, warm-started from the previous plan).

* :class:`WorldModelPolicy` (``WorldModelAgent``): the notebook's feed-forward :class:`WorldModel` (VAE, ensemble
  latent dynamics, reward and continue models); the carried state is the plan alone (the model has no memory).
* :class:`RSSMPlannerPolicy` (``RSSMAgent``): an RSSM (PlaNet); the carried state is the RSSM's belief and the plan.

The objective a candidate sequence is scored by is the return the model predicts over the horizon, each reward
weighted by the predicted probability that the episode is still running (which is what makes "+1 per step until the
pole falls" a signal): ``sum_t gamma^t * prod_{k<t} c_k * r_t``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from ca11_agents.common.policies import RecurrentLatentPolicy, RSSMLatentPolicy
from ca11_agents.common.spaces import is_image
from ca11_agents.planning.planner import Planner
from ca11_agents.world_models.dynamics import LatentDynamicsModel
from ca11_agents.world_models.reward_model import RewardModel
from ca11_agents.world_models.rssm import RSSMState
from ca11_agents.world_models.vae import VariationalAutoencoder
from ca11_agents.world_models.world_model import WorldModel


class PlanningMixin:
    """What both planning policies share: the planner, the discount, the plan in the carried state, timing."""

    actions: Any
    device: torch.device
    #: Discount of the predicted rewards within the horizon (the agent sets it to its ``gamma``).
    gamma: float = 0.99

    def _init_planning(self) -> None:
        self.planner = Planner(self.actions.dim, self.actions.nvec)
        self._plan_seconds, self._planned = 0.0, 0

    def _check_plan(self, plan: Tensor, n: int) -> Tensor:
        shape = (n, self.planner.horizon, self.planner.action_dim)
        if tuple(plan.shape) != shape:
            raise ValueError(f"{type(self).__name__}: the carried plan must be {shape}, got {tuple(plan.shape)}")
        return plan

    def _plan(
        self, score: Any, plan: Tensor, is_first: Tensor, deterministic: bool
    ) -> tuple[Tensor, Tensor]:
        start = time.perf_counter()
        action, plan, _ = self.planner.plan(score, self.planner.reset(plan, is_first), deterministic)
        self._plan_seconds += time.perf_counter() - start
        self._planned += action.shape[0]
        return action, plan

    def stats(self) -> dict[str, float]:
        """Planned actions per second since the previous call (logged as ``time/planned_actions_per_s``)."""
        if not self._planned:
            return {}
        out = {"time/planned_actions_per_s": self._planned / max(self._plan_seconds, 1e-9)}
        self._plan_seconds, self._planned = 0.0, 0
        return out

    def discounts(self, horizon: int, device: torch.device) -> Tensor:
        return self.gamma ** torch.arange(horizon, device=device, dtype=torch.float32)


class WorldModelPolicy(PlanningMixin, RecurrentLatentPolicy):
    """A feed-forward world model (PETS-style: an ensemble of probabilistic latent dynamics) and a planner.

    The default sizes are small on purpose: a planner runs the dynamics, reward and continue models
    ``iterations * horizon`` times per action on ``ensemble_size * candidates`` rows, so acting costs far more than
    training. Networks of 64 units act 1.6x faster than 128 on a CPU core and learned the CA11 cart-pole as fast
    (benchmarks/README.md).

    Args:
        observation_space: a flat vector ``Box`` (the VAE is an MLP; for images use ``RSSMAgent("CnnPolicy")``).
        action_space: a flat ``Box``, ``Discrete`` or ``MultiDiscrete``.
        latent_dim: size of the VAE's latent.
        vae_hidden_dims: the VAE encoder's hidden widths (the decoder mirrors them).
        dynamics_hidden_dims: hidden widths of each ensemble member.
        reward_hidden_dims: hidden widths of the reward and continue models.
        ensemble_size: dynamics members (PETS: 5); their disagreement is the epistemic uncertainty.
        stochastic: Gaussian members trained by likelihood, planned through by sampling (PETS's "PE" model and
            "TSinf" propagation), or deterministic members trained by squared error and planned through by their
            means ("DE").
        beta: the VAE's KL weight.
    """

    alias_for = "vector"
    agent_defaults: ClassVar[dict[str, float]] = {"learning_rate": 1e-3, "batch_size": 32, "train_freq": 1}

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        latent_dim: int = 8,
        vae_hidden_dims: tuple[int, ...] = (64, 64),
        dynamics_hidden_dims: tuple[int, ...] = (64, 64),
        reward_hidden_dims: tuple[int, ...] = (32, 32),
        ensemble_size: int = 5,
        stochastic: bool = True,
        beta: float = 1e-3,
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            hint = ' (images: RSSMAgent("CnnPolicy"))' if is_image(observation_space) else ""
            raise ValueError(
                f"{type(self).__name__}: the feed-forward world model needs flat vector observations, got "
                f"{observation_space}{hint}"
            )
        super().__init__(observation_space, action_space)
        obs_dim, action_dim = int(observation_space.shape[0]), self.actions.dim
        self.world_model = WorldModel(
            VariationalAutoencoder(obs_dim, latent_dim, vae_hidden_dims, beta=beta),
            LatentDynamicsModel(latent_dim, action_dim, dynamics_hidden_dims, stochastic, ensemble_size),
            RewardModel(latent_dim, action_dim, reward_hidden_dims),
            continue_model=RewardModel(latent_dim, action_dim, reward_hidden_dims),
        )
        self._init_planning()
        #: Weight of the spread of the members' returns in a candidate's score: > 0 seeks what the model does not
        #: know (optimism), < 0 avoids it (pessimism), 0 plans on the mean return (PETS).
        self.uncertainty_weight = 0.0

    def initial_state(self, n_envs: int) -> Tensor:
        return self.planner.initial_plan(n_envs, self.device)

    def pack_state(self, state: Tensor) -> tuple[np.ndarray, ...]:
        return (state.cpu().numpy(),)

    def unpack_state(self, arrays: tuple[np.ndarray, ...]) -> Tensor:
        if len(arrays) != 1:
            raise ValueError(f"{type(self).__name__}: state must be (plan, previous action), got {len(arrays) + 1}")
        plan = torch.as_tensor(arrays[0], dtype=torch.float32, device=self.device)
        return self._check_plan(plan, plan.shape[0])

    def members_rollout(self, z: Tensor, actions: Tensor, sample: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Every member rolls the latents ``z`` ``(B, L)`` out under ``actions`` ``(B, H, A)`` on its own.

        Returns:
            ``(returns (E, B), latents (E, B, H + 1, L), alive (E, B, H))``: each member's predicted discounted
            return (rewards weighted by the probability that the episode still runs), its latents, and that
            probability before each step.
        """
        wm, horizon = self.world_model, actions.shape[1]
        z = z.expand(wm.dynamics.ensemble_size, *z.shape)  # (B, L) -> (E, B, L)
        discounts = self.discounts(horizon, z.device)
        returns = z.new_zeros(z.shape[:2])
        alive = z.new_ones(z.shape[:2])
        latents, alives = [z], []
        for t in range(horizon):
            action = actions[:, t].expand(z.shape[0], *actions[:, t].shape)  # (B, A) -> (E, B, A)
            alives.append(alive)
            returns = returns + discounts[t] * alive * wm.predict_reward(z, action)
            alive = alive * wm.predict_continue(z, action)
            z = wm.dynamics.propagate(z, action, sample)
            latents.append(z)
        return returns, torch.stack(latents, 2), torch.stack(alives, 2)

    def score(self, z: Tensor, candidates: Tensor, sample: bool = True) -> Tensor:
        """Scores ``(n, N)`` of candidate sequences ``(n, N, H, A)`` from latents ``z`` ``(n, L)``: the members'
        mean return plus ``uncertainty_weight`` times their spread. Stochastic members are sampled if ``sample``
        (PETS's TSinf), else followed by their means."""
        n, count = candidates.shape[:2]
        flat = candidates.reshape(n * count, *candidates.shape[2:])  # (n, N, H, A) -> (n*N, H, A)
        sample = sample and self.world_model.dynamics.stochastic
        returns, _, _ = self.members_rollout(z.repeat_interleave(count, 0), flat, sample)
        score = returns.mean(0)
        if self.uncertainty_weight and returns.shape[0] > 1:
            score = score + self.uncertainty_weight * returns.std(0)
        return score.reshape(n, count)

    @torch.no_grad()
    def act(
        self, obs: Any, state: Tensor, prev_action: Tensor, is_first: Tensor, deterministic: bool
    ) -> tuple[Tensor, Tensor]:
        z = self.world_model.encode_observations(obs.float())
        # Acting deterministically follows the members' means: the same observation and plan give the same action.
        score = lambda candidates: self.score(z, candidates, sample=not deterministic)  # noqa: E731
        return self._plan(score, state, is_first, deterministic)


class RSSMPlannerPolicy(PlanningMixin, RSSMLatentPolicy):
    """An RSSM world model (sizes as :class:`~ca11_agents.common.policies.RSSMLatentPolicy`) and a planner over
    its prior (PlaNet): the belief filtered from every observation so far is where each plan starts, so the planner
    remembers what the RSSM's state remembers.

    Imagined steps follow the prior's mode (the most likely next latent): one deterministic rollout per candidate
    gives CEM scores without sampling noise.
    """

    alias_for = "vector"
    agent_defaults: ClassVar[dict[str, float]] = {"learning_rate": 1e-3, "batch_size": 16, "train_freq": 2}

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, **world_model_kwargs: Any) -> None:
        super().__init__(observation_space, action_space, **world_model_kwargs)
        self._init_planning()

    def initial_state(self, n_envs: int) -> tuple[RSSMState, Tensor]:
        return self.rssm.initial_state(n_envs), self.planner.initial_plan(n_envs, self.device)

    def pack_state(self, state: tuple[RSSMState, Tensor]) -> tuple[np.ndarray, ...]:
        latent, plan = state
        return (*super().pack_state(latent), plan.cpu().numpy())

    def unpack_state(self, arrays: tuple[np.ndarray, ...]) -> tuple[RSSMState, Tensor]:
        if len(arrays) != 3:
            raise ValueError(
                f"{type(self).__name__}: state must be (deter, stoch, plan, previous action), got {len(arrays) + 1}"
            )
        plan = torch.as_tensor(arrays[2], dtype=torch.float32, device=self.device)
        return super().unpack_state(arrays[:2]), self._check_plan(plan, plan.shape[0])

    def rollout_returns(self, state: RSSMState, actions: Tensor) -> Tensor:
        """Predicted discounted returns ``(B,)`` of ``actions`` ``(B, H, A)`` from ``state`` ``(B, ...)``."""
        rssm, horizon = self.rssm, actions.shape[1]
        discounts = self.discounts(horizon, actions.device)
        returns = actions.new_zeros(actions.shape[0])
        alive = torch.ones_like(returns)
        for t in range(horizon):
            feats = rssm.features(state)
            returns = returns + discounts[t] * alive * rssm.reward(feats, actions[:, t])
            alive = alive * rssm.cont(feats, actions[:, t])
            state = rssm.img_step(state, actions[:, t], deterministic=True)
        return returns

    def score(self, state: RSSMState, candidates: Tensor) -> Tensor:
        """Scores ``(n, N)`` of candidate sequences ``(n, N, H, A)`` from beliefs ``state`` ``(n, ...)``."""
        n, count = candidates.shape[:2]
        start = state.map(lambda x: x.repeat_interleave(count, 0))
        return self.rollout_returns(start, candidates.reshape(n * count, *candidates.shape[2:])).reshape(n, count)

    @torch.no_grad()
    def act(
        self, obs: Any, state: tuple[RSSMState, Tensor], prev_action: Tensor, is_first: Tensor, deterministic: bool
    ) -> tuple[Tensor, tuple[RSSMState, Tensor]]:
        latent, plan = state
        latent = self.filter(obs, latent, prev_action, is_first, deterministic)
        action, plan = self._plan(lambda candidates: self.score(latent, candidates), plan, is_first, deterministic)
        return action, (latent, plan)


class RSSMPlannerCnnPolicy(RSSMPlannerPolicy):
    """:class:`RSSMPlannerPolicy` for image observations (``"CnnPolicy"``): a CNN encoder and decoder."""

    alias_for = "image"
    #: As Dreamer's CnnPolicy (dreamer/policies.py): a CNN world model needs the smaller learning rate.
    agent_defaults: ClassVar[dict[str, float]] = {"learning_rate": 3e-4, "batch_size": 8, "train_freq": 4}


class RSSMPlannerMultiInputPolicy(RSSMPlannerPolicy):
    """:class:`RSSMPlannerPolicy` for ``Dict`` observations (``"MultiInputPolicy"``): one encoder per key."""

    alias_for = "dict"
    agent_defaults: ClassVar[dict[str, float]] = RSSMPlannerCnnPolicy.agent_defaults
