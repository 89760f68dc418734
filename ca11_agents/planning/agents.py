"""The learners that plan: ``WorldModelAgent`` (PETS-style ensemble MPC) and ``RSSMAgent`` (PlaNet-style MPC).

Both run the one learner loop (:meth:`ca11_agents.common.base.ModelBasedAlgorithm.learn`): the loop acts through
the policy's planner (:mod:`ca11_agents.planning.policies`) and calls :meth:`train`, which here is one world-model
update and nothing more: a planner learns no actor or critic, so it is cheap to train and costly to act (every
action is ``iterations`` batched rollouts of ``candidates`` sequences over ``horizon`` steps; see
``time/planned_actions_per_s`` in the logger).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3.common.type_aliases import GymEnv

from ca11_agents.common.base import ModelBasedAlgorithm
from ca11_agents.common.losses import replay_lambda_returns
from ca11_agents.common.spaces import ActionAdapter, obs_as_tensor
from ca11_agents.planning.planner import Planner
from ca11_agents.planning.policies import (
    RSSMPlannerCnnPolicy,
    RSSMPlannerMultiInputPolicy,
    RSSMPlannerPolicy,
    WorldModelPolicy,
)

_PLANNER_ARGS = """
        planner: ``"cem"`` (refit to the best candidates) or ``"mppi"`` (refit to all, weighted by their scores).
        horizon: steps planned ahead.
        planner_kwargs: the rest of :class:`~ca11_agents.planning.planner.Planner` (``candidates``, ``iterations``,
            ``elites``, ``temperature``, ``momentum``, ``init_std``, ``min_std``, ``min_prob``): the knobs of the
            cost of acting, which grows with ``candidates * iterations * horizon``; and ``exploration_std``, the
            noise of the training actions (``None``: the refined plan's own spread; ``0``: the plan's mean).
        terminal_value: weight of a learned value of a candidate's last imagined state in its score (1: the
            discounted return beyond the horizon; TD-MPC's terminal value, Hansen et al., 2022). A critic on the
            model's latent regresses TD(lambda) returns of the replayed windows (the value of the agent's own
            behaviour, bootstrapped from its slow copy). 0 builds no critic: the summed rewards alone (PETS,
            PlaNet); checkpoints saved before the critic existed load so.
        plan_lambda: the lambda of a plan's score with a critic: the lambda-return over the imagined states, which
            counts the values of the states a plan passes through as well as of the one it ends in (1: the last
            state's alone, TD-MPC's terminal value). A plan that swings the pole towards its limit and back scores
            low on the way, where the last state's value alone can be the critic's error (benchmarks/README.md,
            "the planners' score along the plan").
        critic_lr: the critic's learning rate.
        return_lambda: the lambda of the critic's TD(lambda) targets.
        critic_tau: rate of the slow critic's moving average (the bootstrap of the critic's targets).
        mc_value_coef: weight of a Monte-Carlo value loss: the critic also regresses the discounted returns of the
            finished real episodes in the replayed windows (bootstrapped from the slow critic where a time limit cut
            the episode), which see a whole episode ahead where the TD(lambda) targets see a window (as
            ``DreamerAgent``'s; 0: off, and no effect without a critic).
        mc_max_age: that loss uses only the returns of steps stored within the last ``mc_max_age`` env steps (per
            environment): returns that the current planner, not an early one, earned. ``None``: all."""


class _OnPolicy:
    """A planning agent's argument that lives on its policy, which plans with it, once there is one: setting it on
    either is saved and used. Before the policy exists it is kept as ``_<name>`` (what :meth:`_setup_model` hands
    the policy, and what a checkpoint stores)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, agent: Any, owner: type | None = None) -> Any:
        if agent is None:
            return self
        policy = getattr(agent, "policy", None)
        return getattr(policy, self.name) if policy is not None else agent.__dict__[f"_{self.name}"]

    def __set__(self, agent: Any, value: float) -> None:
        agent.__dict__[f"_{self.name}"] = float(value)
        if getattr(agent, "policy", None) is not None:
            setattr(agent.policy, self.name, float(value))


def _arguments(scope: dict[str, Any], *own: str) -> dict[str, Any]:
    """A planning learner's constructor arguments (its ``locals()``) for :class:`PlanningAgent`, without its own
    (``own``) and the setup flag: each learner lists its arguments once, in its signature."""
    skip = {"self", "__class__", "_init_setup_model", *own}
    return {name: value for name, value in scope.items() if name not in skip}


class PlanningAgent(ModelBasedAlgorithm):
    """What the planning learners share: the planner's arguments and a world-model update as the whole of
    :meth:`train`. A subclass names its policies and fills :meth:`model` (the module the update trains; its
    optimizer is built here) and :meth:`_model_loss`."""

    def __init__(
        self,
        policy: Any,
        env: GymEnv | str | None,
        learning_rate: float | None,
        *,
        planner: str,
        horizon: int,
        planner_kwargs: dict[str, Any] | None,
        terminal_value: float,
        plan_lambda: float,
        critic_lr: float,
        return_lambda: float,
        critic_tau: float,
        mc_value_coef: float,
        mc_max_age: int | None,
        grad_clip: float,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(policy, env, learning_rate, **base_kwargs)
        self.terminal_value, self.plan_lambda, self.critic_lr = terminal_value, plan_lambda, critic_lr
        self.return_lambda, self.critic_tau, self.mc_value_coef = return_lambda, critic_tau, mc_value_coef
        self.mc_max_age = mc_max_age
        name = type(self).__name__
        planner_kwargs = dict(planner_kwargs or {})
        clash = sorted({"horizon", "method", "action_dim", "nvec"} & set(planner_kwargs))
        if clash:
            raise ValueError(
                f"{name}: planner_kwargs {clash} are set otherwise: pass horizon= and planner= (the method) to the "
                "agent; the action layout comes from the env"
            )
        self.planner, self.horizon, self.planner_kwargs = planner, horizon, planner_kwargs
        self.grad_clip = grad_clip
        if hasattr(self, "action_space"):  # arguments checked now, not at the first action
            self._make_planner(self.action_space)

    #: Checkpoints written before the terminal value (its Monte-Carlo loss, the lambda-return score) existed were
    #: trained without them.
    _ADDED_ARGUMENTS: ClassVar[dict[str, Any]] = {
        "terminal_value": 0.0,
        "mc_value_coef": 0.0,
        "mc_max_age": None,
        "plan_lambda": 1.0,
    }

    @property
    def terminal_value(self) -> float:
        """Weight of the critic's value in the planner's scores (see the arguments); once a critic is built it lives
        on the policy, which plans with it, so setting either is saved and used."""
        policy = getattr(self, "policy", None)
        return policy.terminal_value if policy is not None and policy.critic is not None else self._terminal_value

    @terminal_value.setter
    def terminal_value(self, value: float) -> None:
        self._terminal_value = float(value)
        policy = getattr(self, "policy", None)
        if policy is not None and policy.critic is not None:
            policy.terminal_value = self._terminal_value

    #: The lambda of a plan's score (see the arguments).
    plan_lambda = _OnPolicy()

    def _min_seq_len(self) -> tuple[int, str]:
        if self.terminal_value > 0.0:
            return 2, "the terminal value's critic bootstraps TD(lambda) returns across the window"
        return super()._min_seq_len()

    def _make_planner(self, action_space: Any) -> Planner:
        actions = ActionAdapter(action_space, type(self).__name__)
        try:
            return Planner(actions.dim, actions.nvec, method=self.planner, horizon=self.horizon, **self.planner_kwargs)
        except TypeError as exc:
            raise ValueError(f"{type(self).__name__}: bad planner_kwargs {self.planner_kwargs}: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__}: {exc}") from exc

    def model(self) -> torch.nn.Module:
        """The world model the update trains."""
        raise NotImplementedError

    def export_onnx(self, path: Any) -> None:
        """Not available: a planner acts by searching (CEM/MPPI) through its world model in Python at every step,
        which is no single network to export.

        Raises:
            NotImplementedError: always; it names the alternatives.
        """
        raise NotImplementedError(
            f"{type(self).__name__} acts by planning ({getattr(self.policy.planner, 'method', 'cem')!r}) in Python "
            "at every step, so its acting is not one network and has no ONNX export; serve it with torch "
            f"({type(self).__name__}.load(...).predict), or train a DreamerAgent, whose actor exports "
            "(DreamerAgent.export_onnx)"
        )

    def _setup_model(self) -> None:
        super()._setup_model()
        self.policy.planner = self._make_planner(self.action_space)
        self.policy.gamma, self.policy.plan_lambda = self.gamma, self._plan_lambda
        parameters = self.model().parameters()
        self.model_optimizer = torch.optim.Adam(parameters, lr=self.learning_rate, eps=1e-6, foreach=True)
        self.critic_optimizer: torch.optim.Optimizer | None = None
        if self.terminal_value > 0.0:
            self.policy.add_critic(self.terminal_value)
            assert self.policy.critic is not None
            parameters = self.policy.critic.parameters()
            self.critic_optimizer = torch.optim.Adam(parameters, lr=self.critic_lr, eps=1e-6, foreach=True)

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        critic = {"critic": self.critic_optimizer} if self.critic_optimizer is not None else {}
        return {"model": self.model_optimizer, **critic}

    def _model_loss(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """The world model's loss on ``batch``, its logged terms, and the latent features ``(B, T, F)`` of the
        windows' steps that the critic reads (:meth:`_train_value`)."""
        raise NotImplementedError

    def _train_value(self, batch: dict[str, torch.Tensor], features: torch.Tensor) -> dict[str, torch.Tensor]:
        """The critic's update on the windows' latent features ``(B, T, F)``: two-hot regression on TD(lambda)
        returns of the stored rewards, bootstrapped from the slow critic and cut where episodes end
        (:func:`~ca11_agents.common.losses.replay_lambda_returns`); nothing without a critic."""
        policy = self.policy
        if self.critic_optimizer is None:  # no critic
            return {}
        assert policy.critic is not None and policy.slow_critic is not None
        with self.autocast():
            features = features.detach()
            with torch.no_grad():
                targets = replay_lambda_returns(
                    batch["rewards"],
                    batch["terminated"],
                    batch["is_first"],
                    policy.slow_critic(features),
                    self.gamma,
                    self.return_lambda,
                )
            loss = policy.critic.loss(features[:, :-1], targets).mean()
            terms = {"critic/td_loss": loss.detach()}
            mc_loss = policy.critic.monte_carlo_loss(features, batch["returns"]) if self.mc_value_coef > 0.0 else None
            if mc_loss is not None:
                terms["critic/mc_loss"] = mc_loss
                loss = loss + self.mc_value_coef * mc_loss
        if not self._finite(loss, "critic/loss"):
            return {}
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.critic.parameters(), self.grad_clip, foreach=True)
        self.critic_optimizer.step()
        policy.update_slow_critic(self.critic_tau)
        return {"critic/loss": loss.detach(), "critic/target": targets.mean(), **terms}

    def _terminal_values(self, cut: list[int], final_obs: Any, action: torch.Tensor) -> np.ndarray:
        """The slow critic's values of the final observations of episodes cut by a time limit (the bootstrap of
        their stored returns; 0 without a critic)."""
        policy = self.policy
        if policy.slow_critic is None:
            return super()._terminal_values(cut, final_obs, action)
        features = policy.final_value_features(final_obs, self._latent, action, cut)
        return policy.slow_critic(features).cpu().numpy()

    def train(self) -> dict[str, torch.Tensor]:
        """One world-model update on ``batch_size`` replayed windows of ``seq_len`` steps (then
        :meth:`_train_value` on the same windows)."""
        assert self.replay_buffer is not None
        self.policy.set_training_mode(True)
        batch = self.replay_buffer.sample(self.batch_size, self.seq_len, self.device, self.mc_max_age)
        with self.autocast():
            loss, terms, features = self._model_loss(batch)
        if not self._finite(loss, "world_model/loss"):
            return {}
        self.model_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model().parameters(), self.grad_clip, foreach=True)
        self.model_optimizer.step()
        self._n_updates += 1
        out = {f"world_model/{k}": v.detach() for k, v in terms.items()}
        out.update(self._train_value(batch, features))
        return out


class WorldModelAgent(PlanningAgent):
    """A world-model learner that acts by model-predictive control in latent space (PETS, Chua et al., 2018, on
    the notebook's :class:`~ca11_agents.world_models.world_model.WorldModel`).

    It learns the VAE, the ensemble of latent dynamics, the reward model and a continue model from its own replayed
    transitions, and at every step searches action sequences with CEM or MPPI through every ensemble member,
    warm-started from the previous step's plan. ``predict``'s state carries that plan.

    Candidates are scored with a learned value by default (``terminal_value=1``; ``0`` is PETS's summed rewards):
    the lambda-return of the critic's values along the imagined states (``plan_lambda=0.95``; ``1`` is TD-MPC's
    terminal value alone), the critic also fitted to the replayed episodes' Monte-Carlo returns
    (``mc_value_coef=1``). Where the reward is the same at every step (the CA11 cart-pole's +1), a 15-step plan scores a
    cart drifting towards the track's end like one that stays, so the value decides; scored by the value of its last
    state alone, the search found plans that swing the pole to its limit and back, where the critic was wrong, and the
    learner lost the pole it had balanced (benchmarks/README.md, "the planners' score along the plan").

    Args:
        policy: ``"MlpPolicy"`` (flat vector observations) or a :class:`WorldModelPolicy` subclass.
        env: an env id, a ``gym.Env`` or a VecEnv.
        learning_rate: the world model's learning rate; ``None``: 1e-3.
        buffer_size: steps kept in the replay buffer (``None``: 1,000,000).
        learning_starts: env steps taken with random actions before training starts.
        batch_size: replayed windows per update (``None``: 32); every window gives ``seq_len - 1`` transitions.
        seq_len: steps per window.
        train_freq: env steps between rounds of updates (``None``: 1).
        gradient_steps: updates per round: 3 by default (about 670 replayed transitions per env step; on the
            CA11 cart-pole one update per step left the model too rough to balance after 1,000 steps, three balanced
            it after 500).
        gamma: discount of the predicted rewards within the horizon (and of the critic's returns).{planner_args}
        uncertainty_weight: weight of the spread of the ensemble members' predicted returns in a candidate's score:
            > 0 is optimism (explore what the model does not know), < 0 pessimism (avoid it), 0 the members' mean
            (PETS). :meth:`uncertainty` reports the disagreement itself.
        grad_clip: clip of the gradients' global norm.
        on_nonfinite: what a non-finite loss does: ``"raise"`` a ``ValueError`` naming it, or ``"skip"`` the
            update with a warning.
        precision: ``"float32"`` or ``"bf16"`` (the world-model loss under ``torch.autocast`` in bfloat16).
        policy_kwargs: the world model's sizes, ensemble and dynamics kind (see :class:`WorldModelPolicy`;
            ``stochastic=False`` for deterministic members).
        stats_window_size, tensorboard_log, verbose, seed, device: as in Stable-Baselines3.
    """

    policy_aliases: ClassVar[dict[str, type]] = {"MlpPolicy": WorldModelPolicy}
    policy: WorldModelPolicy
    tb_log_name: ClassVar[str] = "WorldModelAgent"

    def __init__(
        self,
        policy: str | type[WorldModelPolicy] = "MlpPolicy",
        env: GymEnv | str | None = None,
        learning_rate: float | None = None,
        buffer_size: int | None = None,
        learning_starts: int = 200,
        batch_size: int | None = None,
        seq_len: int = 8,
        train_freq: int | None = None,
        gradient_steps: int = 3,
        gamma: float = 0.99,
        planner: str = "cem",
        horizon: int = 15,
        planner_kwargs: dict[str, Any] | None = None,
        terminal_value: float = 1.0,
        plan_lambda: float = 0.95,
        critic_lr: float = 3e-4,
        return_lambda: float = 0.95,
        critic_tau: float = 0.02,
        mc_value_coef: float = 1.0,
        mc_max_age: int | None = None,
        uncertainty_weight: float = 0.0,
        grad_clip: float = 100.0,
        on_nonfinite: str = "raise",
        precision: str = "float32",
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(**_arguments(locals(), "uncertainty_weight"))
        self.uncertainty_weight = uncertainty_weight
        if _init_setup_model:
            self._setup_model()

    #: Weight of the members' spread of returns in the planner's scores (see the class docstring).
    uncertainty_weight = _OnPolicy()

    def _setup_model(self) -> None:
        super()._setup_model()
        self.policy.uncertainty_weight = self._uncertainty_weight

    def _min_seq_len(self) -> tuple[int, str]:
        return 2, "the world model learns from transitions: two steps"

    def model(self) -> torch.nn.Module:
        return self.policy.world_model

    def _model_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The world model's loss on the consecutive pairs of the windows: ``(o_t, a_t, r_t, o_{t+1})``, where
        ``o_{t+1}`` counts only if it follows ``o_t`` in the same episode (``valid``), and ``terminated_t``."""
        obs = batch["observations"].float()
        pairs = {
            "observations": obs[:, :-1],
            "next_observations": obs[:, 1:],
            "actions": batch["actions"][:, :-1],
            "rewards": batch["rewards"][:, :-1],
            "terminated": batch["terminated"][:, :-1],
            "valid": 1.0 - batch["is_first"][:, 1:].float(),
        }
        loss, terms = self.policy.world_model.loss_terms(pairs)
        if self.policy.critic is None:
            return loss, terms, obs
        with torch.no_grad():  # the critic reads the VAE's latents; it does not train the VAE
            return loss, terms, self.policy.world_model.encode_observations(obs)

    @torch.no_grad()
    def uncertainty(self, observation: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The ensemble's disagreement along an action sequence: how little the model knows what it predicts.

        Args:
            observation: one observation ``(obs_dim,)`` or a batch ``(n, obs_dim)``.
            actions: the env's actions taken from it, ``(H, *action_shape)`` (or ``(n, H, *action_shape)``).

        Returns:
            ``(H,)`` (or ``(n, H)``): after each action, the variance across members of their predicted latents
            (each member rolling out on its own means), averaged over latent dimensions; 0 for a single member.
        """
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        obs, acts = (obs[None], np.asarray(actions)[None]) if single else (obs, np.asarray(actions))
        if obs.ndim != 2 or acts.shape[0] != obs.shape[0] or acts.ndim < 2:
            raise ValueError(
                f"WorldModelAgent.uncertainty: expected an observation (obs_dim,) with actions (H, ...) or a batch "
                f"(n, obs_dim) with (n, H, ...), got {np.shape(observation)} and {np.shape(actions)}"
            )
        n, horizon = acts.shape[:2]
        policy = self.policy
        flat = policy.actions.from_env(acts.reshape(n * horizon, *acts.shape[2:]))
        learner = torch.as_tensor(flat.reshape(n, horizon, -1), device=self.device)
        z = policy.world_model.encode_observations(obs_as_tensor(obs, self.device).float())
        _, latents = policy.members_rollout(z, learner, sample=False)  # (E, n, H + 1, L)
        spread = latents[:, :, 1:].var(0, unbiased=False).mean(-1).cpu().numpy()  # (n, H)
        return spread[0] if single else spread


class RSSMAgent(PlanningAgent):
    """A learner that plans over an RSSM's prior (PlaNet, Hafner et al., 2019) with the DreamerV3 world-model loss.

    It learns the RSSM (encoder and decoder built from the observation space, recurrent dynamics, reward and continue
    heads) from replayed sequences and acts by CEM or MPPI over imagined rollouts from the belief it filters from
    every observation so far: ``predict``'s state carries that belief (so it is the planner for tasks that need
    memory) and the plan. A candidate's score is the sum of its predicted rewards (PlaNet's) plus, by default, a
    learned value of the state it ends in (TD-MPC's terminal value, Hansen et al., 2022): a critic on the RSSM's
    features regresses TD(lambda) returns of the replayed windows (the value of the agent's own behaviour,
    bootstrapped from its slow copy), so that a 12-step plan sees what lies beyond its horizon (a pendulum that
    must swing up, a cart drifting to the track's edge).

    Args:
        policy: ``"MlpPolicy"``, ``"CnnPolicy"`` (``H x W x C`` uint8 frames), ``"MultiInputPolicy"`` (a ``Dict``),
            or a :class:`RSSMPlannerPolicy` subclass.
        env: an env id, a ``gym.Env`` or a VecEnv.
        learning_rate: the world model's learning rate; ``None``: 1e-3 (``MlpPolicy``) or 3e-4 (with a CNN).
        buffer_size: steps kept in the replay buffer (``None``: 1,000,000 or what fits in 4 GiB).
        learning_starts: env steps taken with random actions before training starts.
        batch_size: sequences per update (``None``: 16, or 8 with a CNN).
        seq_len: steps per sequence.
        train_freq: env steps between rounds of updates (``None``: 2, or 4 with a CNN).
        gradient_steps: updates per round.
        gamma: discount of the predicted rewards within the horizon (and of the critic's returns).{planner_args}
        grad_clip: clip of the gradients' global norm.
        on_nonfinite: what a non-finite loss does: ``"raise"`` a ``ValueError`` naming it, or ``"skip"`` the
            update with a warning.
        precision: ``"float32"`` or ``"bf16"`` (the world-model loss under ``torch.autocast`` in bfloat16).
        policy_kwargs: the RSSM's and the critic's sizes (see :class:`RSSMPlannerPolicy`); its vector observations
            are standardised per dimension by default (``{"rssm_kwargs": {"obs_norm": False}}``: ``symlog``, as
            Dreamer's).
        stats_window_size, tensorboard_log, verbose, seed, device: as in Stable-Baselines3.
    """

    policy_aliases: ClassVar[dict[str, type]] = {
        "MlpPolicy": RSSMPlannerPolicy,
        "CnnPolicy": RSSMPlannerCnnPolicy,
        "MultiInputPolicy": RSSMPlannerMultiInputPolicy,
    }
    policy: RSSMPlannerPolicy
    tb_log_name: ClassVar[str] = "RSSMAgent"

    def __init__(
        self,
        policy: str | type[RSSMPlannerPolicy] = "MlpPolicy",
        env: GymEnv | str | None = None,
        learning_rate: float | None = None,
        buffer_size: int | None = None,
        learning_starts: int = 500,
        batch_size: int | None = None,
        seq_len: int = 32,
        train_freq: int | None = None,
        gradient_steps: int = 1,
        gamma: float = 0.99,
        planner: str = "cem",
        horizon: int = 12,
        planner_kwargs: dict[str, Any] | None = None,
        terminal_value: float = 1.0,
        plan_lambda: float = 1.0,
        critic_lr: float = 3e-4,
        return_lambda: float = 0.95,
        critic_tau: float = 0.02,
        mc_value_coef: float = 0.0,
        mc_max_age: int | None = None,
        grad_clip: float = 100.0,
        on_nonfinite: str = "raise",
        precision: str = "float32",
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(**_arguments(locals()))
        if _init_setup_model:
            self._setup_model()

    def model(self) -> torch.nn.Module:
        return self.policy.rssm

    def _model_loss(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        loss, terms, post = self.policy.rssm.loss_terms(batch)
        return loss, terms, self.policy.rssm.features(post)


for _cls in (WorldModelAgent, RSSMAgent):
    _cls.__doc__ = (_cls.__doc__ or "").replace("{planner_args}", _PLANNER_ARGS)
