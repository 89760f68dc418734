"""The policies of the planning learners: a world model, a :class:`~ca11_agents.planning.planner.Planner`, and
acting by model-predictive control (replanned every step, warm-started from the previous plan).

* :class:`WorldModelPolicy` (``WorldModelAgent``): the notebook's feed-forward :class:`WorldModel` (VAE, ensemble
  latent dynamics, reward and continue models); the carried state is the plan alone (the model has no memory).
* :class:`RSSMPlannerPolicy` (``RSSMAgent``): an RSSM (PlaNet); the carried state is the RSSM's belief and the plan.

The objective a candidate sequence is scored by is the return the model predicts over the horizon, each reward
weighted by the predicted probability that the episode is still running (which is what makes "+1 per step until the
pole falls" a signal): ``sum_t gamma^t * prod_{k<t} c_k * r_t``. Where the agent asks for a critic, the score is the
lambda-return of the imagined trajectory (``plan_lambda``): ``G_H = v(s_H)``,
``G_t = r_t + gamma * c_t * ((1 - lambda) * v(s_{t+1}) + lambda * G_{t+1})``, which counts the values of the states
the plan passes through as well as of the state it ends in; at ``lambda = 1`` it is the rewards plus
``gamma^H * prod_{k<H} c_k * v(s_H)`` (TD-MPC's terminal value).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from ca11_agents.common.policies import RecurrentLatentPolicy, RSSMLatentPolicy
from ca11_agents.common.spaces import is_image
from ca11_agents.dreamer.critic import LatentCritic, update_slow
from ca11_agents.planning.planner import Planner
from ca11_agents.world_models.dynamics import LatentDynamicsModel
from ca11_agents.world_models.reward_model import RewardModel
from ca11_agents.world_models.rssm import RSSMState
from ca11_agents.world_models.vae import VariationalAutoencoder
from ca11_agents.world_models.world_model import WorldModel


#: One step of a model for the planning objective: ``(state, action) -> (reward, continue probability, next state)``.
Step = Callable[[Any, Tensor], tuple[Tensor, Tensor, Any]]


class PlanningMixin:
    """What both planning policies share: the planner, the discount, the plan in the carried state, timing."""

    actions: Any
    device: torch.device
    #: Discount of the predicted rewards within the horizon (the agent sets it to its ``gamma``).
    gamma: float = 0.99

    def _init_planning(self, critic_hidden_dims: Sequence[int]) -> None:
        self.planner = Planner(self.actions.dim, self.actions.nvec)
        self._plan_seconds, self._planned = 0.0, 0
        self.critic_hidden_dims = tuple(int(d) for d in critic_hidden_dims)
        self.critic: LatentCritic | None = None
        self.slow_critic: LatentCritic | None = None
        #: Weight of the critic's values in a candidate's score (the agent's ``terminal_value``).
        self.terminal_value = 0.0
        #: Lambda of the score's lambda-return over the plan (the agent's ``plan_lambda``; 1: the last state's value).
        self.plan_lambda = 1.0

    # ------------------------------------------------------------------------------------- the terminal value
    #: Size of what the critic reads (the model's latent features), and its two-hot buckets.
    value_input_dim: int
    value_bins: int = 255

    def value_features(self, state: Any) -> Tensor:
        """What the critic reads of a model state ``(..., value_input_dim)``."""
        raise NotImplementedError

    def final_value_features(self, obs: Any, state: Any, action: Tensor, cut: Sequence[int]) -> Tensor:
        """What the critic reads ``(len(cut), value_input_dim)`` of the final observations ``obs`` of the episodes of
        envs ``cut`` that a time limit ended, given the carried ``state`` and the last ``action`` of every env (the
        bootstrap of their stored Monte-Carlo returns); no draw from the torch generator that training uses."""
        raise NotImplementedError

    def add_critic(self, weight: float) -> None:
        """Build the terminal-value critic and its slow copy (the bootstrap of its targets; never trained by
        gradients) on the model's device, and plan with ``weight`` times its values (the agent calls this unless its
        ``terminal_value`` is 0)."""
        device = next(self.parameters()).device
        self.critic = LatentCritic(self.value_input_dim, self.critic_hidden_dims, self.value_bins).to(device)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.terminal_value = float(weight)

    def update_slow_critic(self, tau: float) -> None:
        """``slow <- (1 - tau) * slow + tau * critic``."""
        assert self.critic is not None and self.slow_critic is not None
        update_slow(self.slow_critic, self.critic, tau)

    def terminal_values(self, states: Sequence[Any]) -> Tensor:
        """The critic's values ``(len(states), ...)`` of a sequence of model states, weighted by ``terminal_value``:
        one call of the critic on all of them."""
        assert self.critic is not None
        features = torch.stack([self.value_features(state) for state in states])
        return self.terminal_value * self.critic(features)

    def _terminal(self) -> Callable[[Sequence[Any]], Tensor] | None:
        """The values the objective adds (:meth:`terminal_values`), or ``None`` (no critic, or a weight of 0)."""
        return self.terminal_values if self.critic is not None and self.terminal_value else None

    def _unpack_plan(self, array: np.ndarray) -> Tensor:
        plan = torch.as_tensor(array, dtype=torch.float32, device=self.device)
        shape = (plan.shape[0], self.planner.horizon, self.planner.action_dim)
        if tuple(plan.shape) != shape:
            raise ValueError(f"{type(self).__name__}: the carried plan must be {shape}, got {tuple(plan.shape)}")
        return plan

    def _plan(
        self,
        score: Callable[[Tensor], Tensor],
        plan: Tensor,
        is_first: Tensor,
        deterministic: bool,
        key: Sequence[Tensor],
    ) -> tuple[Tensor, Tensor]:
        """The planner's first actions from the plan (reset where episodes start), and the next plan; ``key`` is the
        latent state (its tensors) the search starts from: it seeds a deterministic search, with the plan.

        While the learner loop takes random actions (``warming_up``), no search is run: the action would be
        discarded, and the plan starts afresh when planning begins."""
        if self.warming_up:
            n = plan.shape[0]
            return torch.zeros(n, self.planner.action_dim, device=plan.device), self.planner.initial_plan(n, plan.device)
        cuda = plan.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(plan.device)
        start = time.perf_counter()
        action, plan, _ = self.planner.plan(score, self.planner.reset(plan, is_first), deterministic, key)
        if cuda:
            torch.cuda.synchronize(plan.device)  # the search's kernels ran asynchronously
        self._plan_seconds += time.perf_counter() - start
        self._planned += action.shape[0]
        return action, plan

    def discounted_return(
        self, step: Step, state: Any, actions: Tensor, terminal: Callable[[Sequence[Any]], Tensor] | None = None
    ) -> Tensor:
        """The planning objective of ``actions`` ``(..., H, A)`` from ``state``: ``sum_t gamma^t prod_{k<t} c_k r_t``
        without values; with ``terminal`` (the values of a sequence of states, :meth:`terminal_values`), the
        lambda-return of the imagined states ``s_1..s_H`` with ``plan_lambda`` (see the module's docstring), which
        at ``plan_lambda = 1`` adds ``gamma^H prod_{k<H} c_k terminal(s_H)`` to the rewards.

        ``step(state, a_t) -> (r_t, c_t, next state)`` is one step of the learner's model (rewards and continue
        probabilities of the leading shape of the returns)."""
        horizon = actions.shape[-2]
        if terminal is not None and self.plan_lambda < 1.0:
            rewards, conts, states = [], [], []
            for t in range(horizon):
                reward, cont, state = step(state, actions[..., t, :])
                rewards.append(reward)
                conts.append(cont)
                states.append(state)
            values = terminal(states)  # (H, ...): v(s_1)..v(s_H)
            lam, returns = self.plan_lambda, values[-1]
            for t in reversed(range(horizon)):
                bootstrap = returns if t == horizon - 1 else (1.0 - lam) * values[t] + lam * returns
                returns = rewards[t] + self.gamma * conts[t] * bootstrap
            return returns
        discounts = self.discounts(horizon + 1, actions.device)
        returns, alive = 0.0, 1.0
        for t in range(horizon):
            reward, cont, state = step(state, actions[..., t, :])
            returns = returns + discounts[t] * alive * reward
            alive = alive * cont
        if terminal is not None:
            returns = returns + discounts[horizon] * alive * terminal([state])[0]
        return returns

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

    With a critic (``WorldModelAgent(terminal_value > 0)``, the default), each member's return also counts the
    critic's values of the latents it passes through and ends in (the lambda-return of :meth:`discounted_return`).

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
        critic_hidden_dims: widths of the terminal-value critic's hidden layers (on the VAE's latent).
        termination_weight: weight of the continue model's loss on the steps that terminated (see
            :class:`~ca11_agents.world_models.world_model.WorldModel`).
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
        critic_hidden_dims: Sequence[int] = (64, 64),
        termination_weight: float = 1.0,
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
            termination_weight=termination_weight,
        )
        self.value_input_dim = latent_dim
        self._init_planning(critic_hidden_dims)
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
        return self._unpack_plan(arrays[0])

    def value_features(self, state: Tensor) -> Tensor:
        return state  # the VAE's latent

    def final_value_features(self, obs: Any, state: Tensor, action: Tensor, cut: Sequence[int]) -> Tensor:
        return self.world_model.encode_observations(obs.float())  # the model has no memory

    def _step(self, sample: bool) -> Step:
        """One step of every member on its own latents ``(E, B, L)`` under actions ``(B, A)``."""
        wm = self.world_model

        def step(z: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            action = action.expand(z.shape[0], *action.shape)  # (B, A) -> (E, B, A)
            return wm.predict_reward(z, action), wm.predict_continue(z, action), wm.dynamics.propagate(z, action, sample)

        return step

    def members_rollout(self, z: Tensor, actions: Tensor, sample: bool) -> tuple[Tensor, Tensor]:
        """Every member rolls the latents ``z`` ``(B, L)`` out under ``actions`` ``(B, H, A)`` on its own.

        Returns:
            ``(returns (E, B), latents (E, B, H + 1, L))``: each member's predicted discounted return (rewards
            weighted by the probability that the episode still runs, :meth:`discounted_return`) and its latents.
        """
        z = z.expand(self.world_model.dynamics.ensemble_size, *z.shape)  # (B, L) -> (E, B, L)
        step, latents = self._step(sample), [z]

        def recording(state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            reward, cont, nxt = step(state, action)
            latents.append(nxt)
            return reward, cont, nxt

        return self.discounted_return(recording, z, actions, self._terminal()), torch.stack(latents, 2)

    def score(self, z: Tensor, candidates: Tensor, sample: bool = True) -> Tensor:
        """Scores ``(n, N)`` of candidate sequences ``(n, N, H, A)`` from latents ``z`` ``(n, L)``: the members'
        mean return plus ``uncertainty_weight`` times their spread. Stochastic members are sampled if ``sample``
        (PETS's TSinf), else followed by their means."""
        n, count = candidates.shape[:2]
        flat = candidates.reshape(n * count, *candidates.shape[2:])  # (n, N, H, A) -> (n*N, H, A)
        start = z.repeat_interleave(count, 0).expand(self.world_model.dynamics.ensemble_size, n * count, -1)
        step = self._step(sample and self.world_model.dynamics.stochastic)
        returns = self.discounted_return(step, start, flat, self._terminal())  # (E, n*N)
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
        return self._plan(score, state, is_first, deterministic, (z,))


class RSSMPlannerPolicy(PlanningMixin, RSSMLatentPolicy):
    """An RSSM world model (sizes as :class:`~ca11_agents.common.policies.RSSMLatentPolicy`) and a planner over
    its prior (PlaNet): the belief filtered from every observation so far is where each plan starts, so the planner
    remembers what the RSSM's state remembers.

    Imagined steps follow the prior's mode (the most likely next latent): one deterministic rollout per candidate
    gives CEM scores without sampling noise. With a critic (:meth:`add_critic`, which the agent calls unless its
    ``terminal_value`` is 0), each candidate's score also counts the critic's values of the states it passes through
    and ends in (the lambda-return of :meth:`discounted_return`).

    Args:
        observation_space, action_space: as :class:`~ca11_agents.common.policies.RSSMLatentPolicy`.
        critic_hidden_dims: widths of the terminal-value critic's hidden layers.
        **world_model_kwargs: the RSSM's sizes, see :class:`~ca11_agents.common.policies.RSSMLatentPolicy`.
    """

    alias_for = "vector"
    agent_defaults: ClassVar[dict[str, float]] = {"learning_rate": 1e-3, "batch_size": 16, "train_freq": 2}
    #: Vector observations standardised per dimension (``obs_norm``): the planner's open-loop rollouts follow the
    #: cart-pole's small pole angle and the track's end better than with ``symlog`` (benchmarks/README.md, 2026-12-07).
    rssm_defaults: ClassVar[dict[str, Any]] = {"obs_norm": True}

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        critic_hidden_dims: Sequence[int] = (128, 128),
        **world_model_kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, **world_model_kwargs)
        self.value_input_dim, self.value_bins = self.rssm.feature_dim, self.rssm.twohot.bins
        self._init_planning(critic_hidden_dims)

    def value_features(self, state: RSSMState) -> Tensor:
        return self.rssm.features(state)

    def final_value_features(
        self, obs: Any, state: tuple[RSSMState, Tensor], action: Tensor, cut: Sequence[int]
    ) -> Tensor:
        return self.rssm.features(self.filter_final(obs, state[0], action, cut))

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
        return super().unpack_state(arrays[:2]), self._unpack_plan(arrays[2])

    def _step(self, state: RSSMState, action: Tensor) -> tuple[Tensor, Tensor, RSSMState]:
        feats = self.rssm.features(state)
        nxt = self.rssm.img_step(state, action, deterministic=True)
        return self.rssm.reward(feats, action), self.rssm.cont(feats, action), nxt

    def rollout_returns(self, state: RSSMState, actions: Tensor) -> Tensor:
        """Predicted discounted returns ``(B,)`` of ``actions`` ``(B, H, A)`` from ``state`` ``(B, ...)``, with the
        critic's values if there is a critic (:meth:`discounted_return`)."""
        return self.discounted_return(self._step, state, actions, self._terminal())

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
        score = lambda candidates: self.score(latent, candidates)  # noqa: E731
        action, plan = self._plan(score, plan, is_first, deterministic, (latent.deter, latent.stoch))
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
