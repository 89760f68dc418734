"""DreamerAgent: DreamerV3-style model-based RL behind Stable-Baselines3's ``learn``/``predict``/``save``/``load``.

One update (:meth:`DreamerAgent.train`)::

    replay --(B, T) windows--> RSSM posterior over T steps --> world-model loss (decoder, reward, continue, KL)
           posterior states --> H imagined steps of prior + actor --> rewards, continues, values
           --> lambda-returns --> actor, by default (actor_grad="dynamics", Dreamer v1): normalised returns,
                                  bootstrapped from the slow critic, backpropagated through the dynamics;
                                  or (actor_grad="reinforce", DreamerV3): REINFORCE on advantages / return scale,
                                  bootstrapped from the critic, imagined episodes ended by the continue head's mode
                              --> critic: two-hot regression on the returns and towards the slow critic, plus
                                          (mc_value_coef > 0) on the real windows' Monte-Carlo episode returns
                                          and (replay_value_coef > 0) on their lambda-returns

The loop (:meth:`DreamerAgent.learn`) acts from the posterior latent one step at a time, stores every step (and, when
an episode ends, its discounted returns), and runs ``gradient_steps`` updates every ``train_freq`` env steps once
``learning_starts`` steps are stored.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import torch
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from stable_baselines3.common.utils import safe_mean

from ca11_agents.common.base import ModelBasedAlgorithm
from ca11_agents.common.losses import replay_lambda_returns
from ca11_agents.common.replay import SequenceReplayBuffer
from ca11_agents.dreamer.imagination import ReturnNormalizer, frozen, imagine, imagine_sampled, imagined_returns
from ca11_agents.dreamer.policies import DreamerPolicy
from ca11_agents.world_models.rssm import RSSMState

SelfDreamer = TypeVar("SelfDreamer", bound="DreamerAgent")

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
    """Dreamer (Hafner et al., 2020-2023) for continuous actions, with DreamerV3's robustness techniques.

    Args:
        policy: ``"MlpPolicy"`` or :class:`DreamerPolicy` (the class holding the networks).
        env: an env id, a ``gym.Env`` or a VecEnv (several envs are supported).
        learning_rate: the world model's learning rate.
        actor_lr: the actor's learning rate.
        critic_lr: the critic's learning rate.
        buffer_size: steps kept in the replay buffer.
        learning_starts: env steps taken with random actions before training starts.
        batch_size: sequences per update (``B``).
        seq_len: steps per sequence (``T``).
        train_freq: env steps (summed over envs) between rounds of updates.
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
            smooth control such as the pendulum) or ``"reinforce"`` (DreamerV3: score-function gradients of
            normalised advantages, bootstrapped from the critic itself, with the continue head's mode as the end
            of imagined episodes; no graph through the model, so updates are cheaper).
        ent_coef: entropy bonus of the actor (relative to the normalised return).
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
        grad_clip: clip of every gradient's global norm.
        policy_kwargs: network sizes, see :class:`DreamerPolicy`.
        stats_window_size: episodes averaged by the logger's rollout statistics.
        tensorboard_log: TensorBoard folder (``None``: no TensorBoard).
        verbose: 0 silent, 1 training info, 2 debug.
        seed: seeds NumPy, torch, the envs and the replay sampling.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    policy_aliases: ClassVar[dict[str, type[DreamerPolicy]]] = {"MlpPolicy": DreamerPolicy}
    policy: DreamerPolicy

    def __init__(
        self,
        policy: str | type[DreamerPolicy] = "MlpPolicy",
        env: GymEnv | str | None = None,
        learning_rate: float = 1e-3,
        actor_lr: float = 3e-4,
        critic_lr: float = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 500,
        batch_size: int = 16,
        seq_len: int = 32,
        train_freq: int = 2,
        gradient_steps: int = 1,
        gamma: float = 0.99,
        return_lambda: float = 0.95,
        imagination_horizon: int = 15,
        imagination_starts: int | None = 128,
        actor_grad: str = "dynamics",
        ent_coef: float = 3e-4,
        normalize_returns: bool = True,
        critic_tau: float = 0.02,
        replay_value_coef: float = 0.0,
        mc_value_coef: float = 0.3,
        grad_clip: float = 100.0,
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
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            seed=seed,
            supported_action_spaces=None,  # checked in _setup_model with a ValueError that names the space
        )
        for name, value in (
            ("batch_size", batch_size),
            ("seq_len", seq_len),
            ("train_freq", train_freq),
            ("gradient_steps", gradient_steps),
            ("imagination_horizon", imagination_horizon),
            ("buffer_size", buffer_size),
        ):
            if int(value) < 1:
                raise ValueError(f"DreamerAgent: {name} must be >= 1, got {value}")
        if not 0.0 < gamma <= 1.0 or not 0.0 <= return_lambda <= 1.0:
            raise ValueError(
                f"DreamerAgent: need 0 < gamma <= 1 and 0 <= return_lambda <= 1, got {gamma}, {return_lambda}"
            )
        self.actor_lr, self.critic_lr = actor_lr, critic_lr
        self.buffer_size, self.learning_starts = buffer_size, learning_starts
        self.batch_size, self.seq_len = batch_size, seq_len
        self.train_freq, self.gradient_steps = train_freq, gradient_steps
        self.gamma, self.return_lambda, self.imagination_horizon = gamma, return_lambda, imagination_horizon
        self.imagination_starts = imagination_starts
        if actor_grad not in ("reinforce", "dynamics"):
            raise ValueError(f"DreamerAgent: actor_grad must be 'reinforce' or 'dynamics', got {actor_grad!r}")
        for name, value in (("replay_value_coef", replay_value_coef), ("mc_value_coef", mc_value_coef)):
            if value < 0.0:
                raise ValueError(f"DreamerAgent: {name} must be >= 0, got {value}")
        self.actor_grad, self.replay_value_coef, self.mc_value_coef = actor_grad, replay_value_coef, mc_value_coef
        self.ent_coef, self.critic_tau, self.grad_clip = ent_coef, critic_tau, grad_clip
        self.normalize_returns = normalize_returns
        self._updates_due = 0.0
        if _init_setup_model:
            self._setup_model()

    def _init_kwargs(self) -> dict[str, Any]:
        return {
            "learning_rate": self.learning_rate,
            "actor_lr": self.actor_lr,
            "critic_lr": self.critic_lr,
            "buffer_size": self.buffer_size,
            "learning_starts": self.learning_starts,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "train_freq": self.train_freq,
            "gradient_steps": self.gradient_steps,
            "gamma": self.gamma,
            "return_lambda": self.return_lambda,
            "imagination_horizon": self.imagination_horizon,
            "imagination_starts": self.imagination_starts,
            "actor_grad": self.actor_grad,
            "ent_coef": self.ent_coef,
            "normalize_returns": self.normalize_returns,
            "critic_tau": self.critic_tau,
            "replay_value_coef": self.replay_value_coef,
            "mc_value_coef": self.mc_value_coef,
            "grad_clip": self.grad_clip,
            "policy_kwargs": self.policy_kwargs,
            "stats_window_size": self._stats_window_size,
            "tensorboard_log": self.tensorboard_log,
            "verbose": self.verbose,
            "seed": self.seed,
        }

    def _setup_model(self) -> None:
        self._check_spaces()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(self.observation_space, self.action_space, **self.policy_kwargs)
        self.policy = self.policy.to(self.device)
        self.return_norm = ReturnNormalizer().to(self.device)
        adam = dict(eps=1e-6, foreach=True)
        self.model_optimizer = torch.optim.Adam(self.policy.rssm.parameters(), lr=self.learning_rate, **adam)
        self.actor_optimizer = torch.optim.Adam(self.policy.actor.parameters(), lr=self.actor_lr, **adam)
        self.critic_optimizer = torch.optim.Adam(self.policy.critic.parameters(), lr=self.critic_lr, **adam)
        n_envs = self.n_envs if self.env is not None else 1
        self.replay_buffer = SequenceReplayBuffer(
            self.buffer_size,
            int(self.observation_space.shape[0]),
            int(self.action_space.shape[0]),
            n_envs=n_envs,
            seed=self.seed,
        )
        self._latent: RSSMState | None = None
        self._prev_action: torch.Tensor | None = None

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
        batch = self.replay_buffer.sample(self.batch_size, self.seq_len, self.device)

        model_loss, terms, post = policy.rssm.loss_terms(batch)
        self.model_optimizer.zero_grad(set_to_none=True)
        model_loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.rssm.parameters(), self.grad_clip, foreach=True)
        self.model_optimizer.step()

        start = post.flatten().map(torch.Tensor.detach)  # (B, T, ...) -> (B*T, ...)
        if self.imagination_starts is not None and self.imagination_starts < start.deter.shape[0]:
            index = torch.randperm(start.deter.shape[0], device=self.device)[: self.imagination_starts]
            start = start.map(lambda x: x[index])
        step = self._actor_step_reinforce if self.actor_grad == "reinforce" else self._actor_step_dynamics
        imagined = step(start)
        torch.nn.utils.clip_grad_norm_(policy.actor.parameters(), self.grad_clip, foreach=True)
        self.actor_optimizer.step()

        # The critic: two-hot regression on the imagined returns, regularised towards the slow critic, plus losses on
        # the real windows: returns of finished episodes (Monte-Carlo) and DreamerV3's replay lambda-returns.
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
        known = torch.isfinite(batch["returns"])  # NaN: the episode is still running
        if self.mc_value_coef > 0.0 and bool(known.any()):
            critic_terms["critic/mc_loss"] = policy.critic.loss(real[known], batch["returns"][known]).mean()
            critic_loss = critic_loss + self.mc_value_coef * critic_terms["critic/mc_loss"]
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
        return terms

    def learn(
        self: SelfDreamer,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "Dreamer",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDreamer:
        """Train for ``total_timesteps`` env steps (SB3's signature; ``log_interval`` counts episodes)."""
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        env = self.env
        assert env is not None, "DreamerAgent.learn needs an env: pass one to the constructor or to load()"
        n = env.num_envs
        if self._latent is None or reset_num_timesteps:
            self._latent = self.policy.initial_state(n)
            self._prev_action = torch.zeros(n, self.action_space.shape[0], device=self.device)
        metrics: dict[str, list[torch.Tensor]] = defaultdict(list)
        episodes_since_log, start_steps, start_updates = 0, self.num_timesteps, self._n_updates
        start_time = time.perf_counter()
        callback.on_training_start(locals(), globals())
        callback.on_rollout_start()
        while self.num_timesteps < total_timesteps:
            obs = self._last_obs
            is_first = self._last_episode_starts.astype(np.float32)
            obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
            first_t = torch.as_tensor(is_first, device=self.device)
            action_t, self._latent = self.policy.act(obs_t, self._latent, self._prev_action, first_t, False)
            if self.num_timesteps < self.learning_starts:
                action_t = torch.rand_like(action_t) * 2.0 - 1.0
            action = action_t.cpu().numpy()
            new_obs, rewards, dones, infos = env.step(self.policy.unscale_action(action))
            terminated = np.array(
                [done and not info.get("TimeLimit.truncated", False) for done, info in zip(dones, infos)], np.float32
            )
            self.replay_buffer.add(obs, action, rewards, terminated, is_first)
            if dones.any():
                self._end_episodes(dones, terminated, infos, action_t)
            self._prev_action = action_t
            self._last_obs, self._last_episode_starts = new_obs, dones
            self.num_timesteps += n
            self._update_info_buffer(infos, dones)
            callback.update_locals(locals())
            if not callback.on_step():
                break
            if self.num_timesteps >= self.learning_starts and self.replay_buffer.can_sample(self.seq_len):
                self._updates_due += n / self.train_freq
                while self._updates_due >= 1.0:
                    self._updates_due -= 1.0
                    for _ in range(self.gradient_steps):
                        for key, value in self.train().items():
                            metrics[key].append(value)
            if dones.any():
                self._episode_num += int(dones.sum())
                episodes_since_log += int(dones.sum())
                if log_interval and episodes_since_log >= log_interval:
                    self._log(metrics, start_time, start_steps, start_updates)
                    metrics.clear()
                    episodes_since_log = 0
        callback.on_rollout_end()
        callback.on_training_end()
        return self

    @torch.no_grad()
    def _end_episodes(self, dones: np.ndarray, terminated: np.ndarray, infos: list[dict], action: torch.Tensor) -> None:
        """Write the returns of the episodes that just ended into the replay buffer; an episode cut by a time limit
        is bootstrapped from the slow critic's value of its final observation."""
        bootstrap = np.zeros(len(dones), np.float32)
        cut = [i for i in np.flatnonzero(dones) if not terminated[i] and "terminal_observation" in infos[i]]
        if cut:
            policy, latent = self.policy, self._latent
            assert latent is not None
            final = np.stack([infos[i]["terminal_observation"] for i in cut]).astype(np.float32)
            state = policy.rssm.obs_step(
                latent.map(lambda x: x[cut]),
                action[cut],
                policy.rssm.embed(torch.as_tensor(final, device=self.device)),
                torch.zeros(len(cut), device=self.device),
                deterministic=True,  # the posterior's mode: no draw from the torch generator training uses
            )
            bootstrap[cut] = policy.slow_critic(policy.rssm.features(state)).cpu().numpy()
        self.replay_buffer.end_episodes(dones, bootstrap, self.gamma)

    def _log(self, metrics: dict[str, list[torch.Tensor]], start: float, start_steps: int, start_updates: int) -> None:
        elapsed = max(time.perf_counter() - start, 1e-9)
        self.logger.record("time/episodes", self._episode_num, exclude="tensorboard")
        self.logger.record("time/fps", int((self.num_timesteps - start_steps) / elapsed))
        self.logger.record("time/updates_per_s", (self._n_updates - start_updates) / elapsed)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        if self.ep_info_buffer:
            self.logger.record("rollout/ep_rew_mean", safe_mean([ep["r"] for ep in self.ep_info_buffer]))
            self.logger.record("rollout/ep_len_mean", safe_mean([ep["l"] for ep in self.ep_info_buffer]))
        if metrics:
            # One device-to-host copy per log line, not one per update.
            means = torch.stack([torch.stack(v).float().mean() for v in metrics.values()]).cpu().tolist()
            for key, value in zip(metrics, means):
                self.logger.record(f"train/{key}", value)
        self.logger.record("train/n_updates", self._n_updates)
        self.logger.dump(step=self.num_timesteps)

    # ------------------------------------------------------------------------------------- the notebook's demo
    @torch.no_grad()
    def imagine_trajectory(
        self, observation: np.ndarray, steps: int = 10, deterministic: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dream ``steps`` steps ahead from an observation (the notebook's imagination demo).

        Returns:
            ``(states (steps + 1, feature_dim), rewards (steps,), actions (steps, A))``: the latent features of the
            start and each imagined state, the predicted rewards and the actions (normalised to ``[-1, 1]``).
        """
        policy = self.policy
        obs = torch.as_tensor(np.asarray(observation, np.float32).reshape(1, -1), device=self.device)
        zero_action = torch.zeros(1, self.action_space.shape[0], device=self.device)
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
