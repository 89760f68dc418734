"""DreamerAgent: DreamerV3-style model-based RL behind Stable-Baselines3's ``learn``/``predict``/``save``/``load``.

One update (:meth:`DreamerAgent.train`)::

    replay --(B, T) windows--> RSSM posterior over T steps --> world-model loss (decoder, reward, continue, KL)
           posterior states --> H imagined steps of prior + actor --> rewards, continues, values
           --> lambda-returns --> actor, by default for Box actions (actor_grad="dynamics", Dreamer v1): normalised
                                  returns, bootstrapped from the slow critic, backpropagated through the dynamics;
                                  or (actor_grad="reinforce", DreamerV3; the default for discrete actions):
                                  REINFORCE on advantages / return scale,
                                  bootstrapped from the critic, imagined episodes ended by the continue head's mode
                              --> critic: two-hot regression on the returns and towards the slow critic, plus
                                          (mc_value_coef > 0) on the real windows' Monte-Carlo episode returns
                                          and (replay_value_coef > 0) on their lambda-returns

The loop is every ca11 learner's (:meth:`ca11_agents.common.base.ModelBasedAlgorithm.learn`): it acts from the
posterior latent one step at a time (:meth:`DreamerPolicy.act`), stores every step (and, when an episode ends, its
discounted returns, bootstrapped by :meth:`DreamerAgent._terminal_values`), and calls :meth:`DreamerAgent.train`
``gradient_steps`` times every ``train_freq`` env steps once ``learning_starts`` steps are stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.type_aliases import GymEnv

from ca11_agents.common.base import ModelBasedAlgorithm
from ca11_agents.common.exploration import RepeatedRandomActions
from ca11_agents.common.losses import replay_lambda_returns
from ca11_agents.common.spaces import batch_observation, obs_as_tensor
from ca11_agents.dreamer.actor import LatentActor
from ca11_agents.dreamer.imagination import ReturnNormalizer, frozen, imagine, imagine_sampled, imagined_returns
from ca11_agents.dreamer.policies import DreamerCnnPolicy, DreamerMultiInputPolicy, DreamerPolicy
from ca11_agents.world_models.rssm import RSSMState

def _discrete(space: spaces.Space | None) -> bool:
    return isinstance(space, (spaces.Discrete, spaces.MultiDiscrete))


class ActorStep(NamedTuple):
    """What an actor update leaves for the critic's update and the logger (all without graphs)."""

    feats: torch.Tensor
    """Imagined features ``(N, H + 1, F)``."""
    returns: torch.Tensor
    """Lambda-returns ``(N, H)``: the critic's targets."""
    alive: torch.Tensor
    """Probability ``(N, H)`` that the imagined episode is still running."""
    actor_loss: torch.Tensor
    entropy: torch.Tensor
    scale: torch.Tensor
    """The return scale the actor divided by."""
    values: torch.Tensor
    """The values ``(N, H + 1)`` the returns bootstrapped from."""
    slow_values: torch.Tensor
    """The slow critic's values ``(N, H)`` of the imagined states: the critic's regularisation target."""


class DreamerAgent(ModelBasedAlgorithm):
    """Dreamer (Hafner et al., 2020-2023) with DreamerV3's robustness techniques, on vector, image and ``Dict``
    observations and continuous (``Box``) or discrete (``Discrete``, ``MultiDiscrete``) actions.

    Args:
        policy: ``"MlpPolicy"`` (vector observations), ``"CnnPolicy"`` (images: ``H x W x C`` uint8 frames, as
            :class:`ca11_gym.wrappers.PixelObservation` makes them), ``"MultiInputPolicy"`` (a ``Dict`` of those),
            or a :class:`DreamerPolicy` subclass (the class holding the networks).
        env: an env id, a ``gym.Env`` or a VecEnv (several envs are supported).
        learning_rate: the world model's learning rate; ``None``: 1e-3 for ``MlpPolicy``, 3e-4 for ``CnnPolicy`` and
            ``MultiInputPolicy`` (a CNN world model at 1e-3 stays on the mean image for thousands of updates).
        actor_lr: the actor's learning rate.
        critic_lr: the critic's learning rate.
        buffer_size: steps kept in the replay buffer; ``None``: 1,000,000, or fewer where they would take more than
            4 GiB (a 64x64x3 frame takes 12 KiB a step: about 340,000 frames).
        learning_starts: env steps taken with random actions before training starts.
        batch_size: sequences per update (``B``); ``None``: the policy's CPU-sized default (16 for ``MlpPolicy``, 8
            for ``CnnPolicy`` and ``MultiInputPolicy``, whose updates pass every frame through a CNN).
        seq_len: steps per sequence (``T``).
        train_freq: env steps (summed over envs) between rounds of updates; ``None``: the policy's default (2 for
            ``MlpPolicy``, 4 for ``CnnPolicy`` and ``MultiInputPolicy``: a 20,000-step pixel run then takes about
            half an hour on one CPU core).
        gradient_steps: updates per round: the replay ratio is ``gradient_steps * B * T / train_freq`` replayed
            steps per env step.
        gamma: discount of imagined returns (DreamerV3 uses 0.997, see the ``"v3"`` preset).
        return_lambda: the lambda of the TD(lambda) returns.
        imagination_horizon: imagined steps per start state (``H``).
        imagination_starts: posterior states (of the ``B * T`` in a batch) that imagination starts from, drawn at
            random; ``None`` for all of them (DreamerV3). Imagination dominates an update's cost on a CPU, and
            beyond a few hundred starts the actor's gradient barely improves.
        actor_grad: how the actor learns from imagination: ``"dynamics"`` (Dreamer v1: normalised returns
            backpropagated through the world model, bootstrapped from the slow critic; the fastest learner on
            smooth control such as the pendulum; discrete actions pass it through straight-through one-hot
            samples) or ``"reinforce"`` (DreamerV3: score-function gradients of normalised advantages, bootstrapped
            from the critic itself, with the continue head's mode as the end of imagined episodes; no graph through
            the model, so updates are cheaper). ``None``: ``"dynamics"`` for ``Box`` actions, ``"reinforce"`` for
            discrete ones (as DreamerV3; measured on ``CartPole-v1`` in benchmarks/README.md).
        ent_coef: entropy bonus of the actor (relative to the normalised return).
        explore_eps: temporally-extended epsilon-greedy exploration in the env (ez-greedy,
            :mod:`ca11_agents.common.exploration`): per step of an exploring episode, the probability that an env
            not already repeating a random action starts to. The world model and the imagined actor-critic learn
            from whatever was done, so the behaviour may differ from the actor. ``None``: 0.3 for discrete actions,
            whose categorical actor can collapse onto one action while no reward tells the actions apart
            (``Acrobot-v1``), and 0 (off) for ``Box`` actions, whose Gaussian actor explores by itself
            (benchmarks/README.md, "Acrobot and exploration with repeated random actions").
        explore_max_steps: the longest repeat of a random action; lengths are drawn with ``p(n) ~ n ** -2``.
        explore_fraction: the share of episodes that explore, drawn per env at each episode start; the others are
            the actor's own (the discrete cart-pole learns sooner with 0.5 than with 1).
        normalize_returns: divide imagined returns by DreamerV3's percentile scale before the actor maximises them
            (off: raw returns, as Dreamer v1).
        critic_tau: rate of the slow critic's moving average; the critic is always regularised towards the slow
            critic's values (DreamerV3).
        replay_value_coef: weight of DreamerV3's replay value loss: the critic also regresses lambda-returns of the
            real replayed windows (their rewards and terminations), which grounds long-horizon values (0: off;
            DreamerV3: 0.3).
        mc_value_coef: weight of a Monte-Carlo value loss: the critic also regresses the discounted returns of the
            finished real episodes in the replayed windows (bootstrapped from the slow critic where a time limit cut
            the episode). They see a whole episode ahead at once, where imagined returns see ``imagination_horizon``
            steps: this is what teaches the cart-pole's values that a slow drift ends at the track's edge (0: off;
            not part of DreamerV3).
        mc_max_age: the Monte-Carlo value loss uses only the returns of steps stored within the last ``mc_max_age``
            env steps (per environment): returns that the current policy, not an early one, earned. ``None``: all
            (benchmarks/README.md, "The critic's ranking and recent Monte-Carlo returns": with ``mc_value_coef=1``
            and 1,000 the cart-pole reaches 475 sooner, and holds it no better).
        saturation_coef: weight of a penalty on the actor's pre-squash means beyond +-2 on the replayed states that
            imagination starts from (:meth:`LatentActor.saturation`; continuous actions only, a ``ValueError`` for
            discrete ones). Without it the dynamics-gradient actor can push its means deep into tanh's flat tails,
            where almost no gradient comes back, and stay there (0: off; not part of DreamerV3; benchmarks/README.md,
            "Dreamer on the cart-pole over 10,000 steps": it does not stop the cart-pole's drift).
        grad_clip: clip of every gradient's global norm.
        on_nonfinite: what a non-finite loss (world model, actor or critic) does: ``"raise"`` a ``ValueError``
            naming it, or ``"skip"`` with a warning (the whole update for the world model's, that optimizer's step
            for the actor's or the critic's).
        precision: ``"float32"`` or ``"bf16"`` (mixed precision: the world-model loss, the imagination with the
            actor's loss and the critic's losses run under ``torch.autocast`` in bfloat16; see
            :meth:`~ca11_agents.common.base.ModelBasedAlgorithm.autocast`).
        policy_kwargs: network sizes, see :class:`DreamerPolicy`.
        stats_window_size: episodes averaged by the logger's rollout statistics.
        tensorboard_log: TensorBoard folder (``None``: no TensorBoard).
        verbose: 0 silent, 1 training info, 2 debug.
        seed: seeds NumPy, torch, the envs and the replay sampling.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    policy_aliases: ClassVar[dict[str, type[DreamerPolicy]]] = {
        "MlpPolicy": DreamerPolicy,
        "CnnPolicy": DreamerCnnPolicy,
        "MultiInputPolicy": DreamerMultiInputPolicy,
    }
    policy: DreamerPolicy
    tb_log_name: ClassVar[str] = "Dreamer"
    _ADDED_ARGUMENTS: ClassVar[dict[str, Any]] = {
        "saturation_coef": 0.0,
        "mc_max_age": None,
        "explore_eps": 0.0,
        "explore_max_steps": 100,
        "explore_fraction": 1.0,
    }

    def __init__(
        self,
        policy: str | type[DreamerPolicy] = "MlpPolicy",
        env: GymEnv | str | None = None,
        learning_rate: float | None = None,
        actor_lr: float = 3e-4,
        critic_lr: float = 3e-4,
        buffer_size: int | None = None,
        learning_starts: int = 500,
        batch_size: int | None = None,
        seq_len: int = 32,
        train_freq: int | None = None,
        gradient_steps: int = 1,
        gamma: float = 0.99,
        return_lambda: float = 0.95,
        imagination_horizon: int = 15,
        imagination_starts: int | None = 128,
        actor_grad: str | None = None,
        ent_coef: float = 3e-4,
        explore_eps: float | None = None,
        explore_max_steps: int = 100,
        explore_fraction: float = 0.5,
        normalize_returns: bool = True,
        critic_tau: float = 0.02,
        replay_value_coef: float = 0.0,
        mc_value_coef: float = 0.3,
        mc_max_age: int | None = None,
        saturation_coef: float = 0.0,
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
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            seq_len=seq_len,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            gamma=gamma,
            on_nonfinite=on_nonfinite,
            precision=precision,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            seed=seed,
            device=device,
        )
        self.actor_lr, self.critic_lr = actor_lr, critic_lr
        self.return_lambda, self.imagination_horizon = return_lambda, imagination_horizon
        self.imagination_starts = imagination_starts
        if actor_grad is None:
            actor_grad = "reinforce" if _discrete(getattr(self, "action_space", None)) else "dynamics"
        self.actor_grad, self.replay_value_coef, self.mc_value_coef = actor_grad, replay_value_coef, mc_value_coef
        self.ent_coef, self.critic_tau, self.grad_clip = ent_coef, critic_tau, grad_clip
        self.normalize_returns, self.saturation_coef = normalize_returns, saturation_coef
        self.mc_max_age = mc_max_age
        if explore_eps is None:
            explore_eps = 0.3 if _discrete(getattr(self, "action_space", None)) else 0.0
        self.explore_eps, self.explore_max_steps = explore_eps, explore_max_steps
        self.explore_fraction = explore_fraction
        if _init_setup_model:
            self._setup_model()

    def _make_explorer(self, n_envs: int) -> RepeatedRandomActions | None:
        if self.explore_eps <= 0.0:
            return None
        return RepeatedRandomActions(
            self.policy.actions, n_envs, self.explore_eps, self.explore_max_steps, self.device, self.explore_fraction
        )

    def _min_seq_len(self) -> tuple[int, str]:
        if self.replay_value_coef > 0.0:
            return 2, "replay_value_coef > 0 bootstraps lambda-returns across the window"
        return super()._min_seq_len()

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.saturation_coef > 0.0 and not isinstance(self.policy.actor, LatentActor):
            raise ValueError(
                f"DreamerAgent: saturation_coef={self.saturation_coef} penalises the pre-squash means of a continuous "
                f"actor; the action space {self.action_space} has a categorical actor (set saturation_coef=0)"
            )
        self.return_norm = ReturnNormalizer().to(self.device)
        adam = dict(eps=1e-6, foreach=True)
        self.model_optimizer = torch.optim.Adam(self.policy.rssm.parameters(), lr=self.learning_rate, **adam)
        self.actor_optimizer = torch.optim.Adam(self.policy.actor.parameters(), lr=self.actor_lr, **adam)
        self.critic_optimizer = torch.optim.Adam(self.policy.critic.parameters(), lr=self.critic_lr, **adam)

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.model_optimizer, "actor": self.actor_optimizer, "critic": self.critic_optimizer}

    def _extra_state(self) -> dict[str, Any]:
        return {
            **super()._extra_state(),
            "return_range": float(self.return_norm.range),
            "return_initialised": bool(self.return_norm.initialised),
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        super()._load_extra_state(state)
        self.return_norm.range.fill_(state["return_range"])
        self.return_norm.initialised.fill_(state["return_initialised"])

    # ------------------------------------------------------------------------------------------------- training
    def _return_scale(self, returns: torch.Tensor) -> torch.Tensor:
        if self.normalize_returns:
            return self.return_norm.update(returns)
        return torch.ones((), device=self.device)

    def _actor_step_reinforce(self, start: RSSMState) -> ActorStep:
        """DreamerV3's actor: REINFORCE on advantages ``(R - v) / scale`` plus an entropy bonus; the returns
        bootstrap from the critic being trained (DreamerV3)."""
        policy = self.policy
        feats, actions, pres = imagine_sampled(policy.rssm, policy.actor, start, self.imagination_horizon)
        with torch.no_grad():
            values = policy.critic(feats)
            returns, alive = imagined_returns(
                policy.rssm, feats, actions, values, self.gamma, self.return_lambda, continue_mode=True
            )
            scale = self._return_scale(returns)
            advantages = (returns - values[:, :-1]) / scale
            slow = policy.slow_critic(feats[:, :-1])
        states = feats[:, :-1]
        entropy = policy.actor.entropy(states)
        actor_loss = -(alive * (policy.actor.log_prob(states, pres) * advantages + self.ent_coef * entropy)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        return ActorStep(feats, returns, alive, actor_loss.detach(), entropy.detach(), scale, values, slow)

    def _actor_step_dynamics(self, start: RSSMState) -> ActorStep:
        """Dreamer v1's actor: maximise normalised returns by backpropagating them through the world model."""
        policy = self.policy
        with frozen(policy.rssm):
            feats, actions, log_probs = imagine(policy.rssm, policy.actor, start, self.imagination_horizon)
            # Bootstrap from the slow critic (DreamerV2): its smooth values are what the actor's gradient follows.
            # It has no trainable parameters; gradients reach the actor through its input.
            values = policy.slow_critic(feats)
            returns, alive = imagined_returns(
                policy.rssm, feats, actions, values, self.gamma, self.return_lambda, continue_mode=False
            )
            scale = self._return_scale(returns)
            actor_loss = -(alive * (returns / scale - self.ent_coef * log_probs)).mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
        values = values.detach()  # the slow critic's: also the critic's regularisation target
        return ActorStep(
            feats.detach(), returns.detach(), alive, actor_loss.detach(), -log_probs.detach(), scale, values,
            values[:, :-1],
        )

    def train(self) -> dict[str, torch.Tensor]:
        """One update of the world model, the actor and the critic. Returns the loss terms (tensors)."""
        policy = self.policy
        batch = self.replay_buffer.sample(self.batch_size, self.seq_len, self.device, self.mc_max_age)

        with self.autocast():
            model_loss, terms, post = policy.rssm.loss_terms(batch)
        if not self._finite(model_loss, "world_model/loss"):
            return {}
        self.model_optimizer.zero_grad(set_to_none=True)
        model_loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.rssm.parameters(), self.grad_clip, foreach=True)
        self.model_optimizer.step()

        start = post.flatten().map(torch.Tensor.detach)  # (B, T, ...) -> (B*T, ...)
        if self.imagination_starts is not None and self.imagination_starts < start.deter.shape[0]:
            index = torch.randperm(start.deter.shape[0], device=self.device)[: self.imagination_starts]
            start = start.map(lambda x: x[index])
        step = self._actor_step_reinforce if self.actor_grad == "reinforce" else self._actor_step_dynamics
        with self.autocast():  # the actor's backward runs inside: its loss needs the graph of the imagination
            imagined = step(start)
            saturation = None
            if self.saturation_coef > 0.0:
                saturation = policy.actor.saturation(imagined.feats[:, 0]).mean()
                (self.saturation_coef * saturation).backward()
        if self._finite(imagined.actor_loss, "actor/loss"):
            torch.nn.utils.clip_grad_norm_(policy.actor.parameters(), self.grad_clip, foreach=True)
            self.actor_optimizer.step()

        # The critic: two-hot regression on the imagined returns, regularised towards the slow critic, plus losses on
        # the real windows: returns of finished episodes (Monte-Carlo) and DreamerV3's replay lambda-returns.
        with self.autocast():
            critic_loss = (
                imagined.alive * policy.critic.loss(imagined.feats[:, :-1], imagined.returns, imagined.slow_values)
            ).mean()
            real, critic_terms = policy.rssm.features(post).detach(), {}  # the windows' features (B, T, F)
            if self.replay_value_coef > 0.0:
                with torch.no_grad():
                    real_returns = replay_lambda_returns(
                        batch["rewards"],
                        batch["terminated"],
                        batch["is_first"],
                        policy.critic(real),
                        self.gamma,
                        self.return_lambda,
                    )
                    real_slow = policy.slow_critic(real[:, :-1])
                critic_terms["critic/replay_loss"] = policy.critic.loss(real[:, :-1], real_returns, real_slow).mean()
                critic_loss = critic_loss + self.replay_value_coef * critic_terms["critic/replay_loss"]
            mc_loss = policy.critic.monte_carlo_loss(real, batch["returns"]) if self.mc_value_coef > 0.0 else None
            if mc_loss is not None:
                critic_terms["critic/mc_loss"] = mc_loss
                critic_loss = critic_loss + self.mc_value_coef * mc_loss
        if self._finite(critic_loss, "critic/loss"):
            self.critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.critic.parameters(), self.grad_clip, foreach=True)
            self.critic_optimizer.step()
            policy.update_slow_critic(self.critic_tau)
        self._n_updates += 1

        terms = {f"world_model/{k}": v.detach() for k, v in terms.items()}
        terms.update(
            {
                "actor/loss": imagined.actor_loss,
                "actor/entropy": imagined.entropy.mean(),
                "actor/return_scale": imagined.scale,
                "actor/imagined_return": imagined.returns.mean(),
                "critic/loss": critic_loss.detach(),
                "critic/value": imagined.values.mean(),
                **{k: v.detach() for k, v in critic_terms.items()},
            }
        )
        if saturation is not None:
            terms["actor/saturation"] = saturation.detach()
        return terms

    def _terminal_values(self, cut: list[int], final_obs: Any, action: torch.Tensor) -> np.ndarray:
        """The slow critic's values of the final observations of episodes cut by a time limit, filtered from the
        carried latent at the posterior's mode (no draw from the torch generator that training uses)."""
        policy = self.policy
        state = policy.filter_final(final_obs, self._latent, action, cut)
        return policy.slow_critic(policy.rssm.features(state)).cpu().numpy()

    # ------------------------------------------------------------------------------------------------ deploy
    def export_onnx(self, path: str | os.PathLike) -> Path:
        """Export the deterministic acting step (``predict(..., deterministic=True)``: posterior step at the mode,
        actor's mode) to an ONNX file at ``path`` with a JSON sidecar ``<path>.json`` (spaces, action scaling,
        versions, the file's sha256); :class:`ca11_agents.deploy.OnnxPolicy` runs it on onnxruntime with the same
        ``predict``. Needs the ``deploy`` extra (``pip install ".[deploy]"``).

        Returns:
            The sidecar's path.
        """
        from ca11_agents.deploy.onnx_export import export_onnx

        return export_onnx(self, path)

    # ------------------------------------------------------------------------------------- the notebook's demo
    @torch.no_grad()
    def imagine_trajectory(
        self, observation: np.ndarray, steps: int = 10, deterministic: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dream ``steps`` steps ahead from an observation (the notebook's imagination demo).

        Returns:
            ``(states (steps + 1, feature_dim), rewards (steps,), actions (steps, A))``: the latent features of the
            start and each imagined state, the predicted rewards and the learner's actions (normalised to ``[-1, 1]``,
            or one-hot for discrete actions).
        """
        policy = self.policy
        batch, _, _ = batch_observation(observation, self.observation_space, "DreamerAgent.imagine_trajectory")
        obs = obs_as_tensor(batch, self.device)
        zero_action = torch.zeros(1, policy.actions.dim, device=self.device)
        state = policy.rssm.obs_step(
            policy.initial_state(1), zero_action, policy.rssm.embed(obs), torch.ones(1, device=self.device), True
        )
        feats, actions, rewards = [policy.rssm.features(state)], [], []
        for _ in range(steps):
            action = policy.actor.act(feats[-1], deterministic)
            rewards.append(policy.rssm.reward(feats[-1], action))
            state = policy.rssm.img_step(state, action, deterministic)
            feats.append(policy.rssm.features(state))
            actions.append(action)
        return (
            torch.cat(feats).cpu().numpy(),
            torch.cat(rewards).cpu().numpy(),
            torch.cat(actions).cpu().numpy(),
        )
