"""The base of every ca11 learner: Stable-Baselines3's ``BaseAlgorithm`` with the one learner loop, every supported
space, and safe checkpoints.

Subclassing ``BaseAlgorithm`` directly (as sb3-contrib's ARS does) gives env wrapping, callbacks, the logger,
TensorBoard and ``evaluate_policy``. Its ``save``/``load`` are replaced by
:class:`~ca11_agents.common.persistence.CheckpointMixin`: SB3 stores pickled objects in its zip, so loading a tampered
file runs code; here a checkpoint is JSON plus safetensors (:mod:`ca11_agents.common.checkpoint`).
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections import defaultdict
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm, maybe_make_env
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from stable_baselines3.common.utils import safe_mean
from stable_baselines3.common.vec_env import VecEnv

from ca11_agents.common.arguments import validate, validate_learn
from ca11_agents.common.exploration import RepeatedRandomActions
from ca11_agents.common.persistence import CheckpointMixin
from ca11_agents.common.policies import RecurrentLatentPolicy
from ca11_agents.common.replay import SequenceReplayBuffer
from ca11_agents.common.spaces import ActionAdapter, check_finite_step, obs_as_tensor, stack_observations
from ca11_agents.common.threads import cpu_threads
from ca11_agents.world_models.encoders import check_observation_space

SelfModelBased = TypeVar("SelfModelBased", bound="ModelBasedAlgorithm")


#: Replay memory a default ``buffer_size`` may take (``min(1_000_000 steps, this / bytes per step)``): 4 GiB is
#: about 340,000 64x64x3 frames (12 KiB each), comfortable on a 24 GiB machine; vector tasks keep 1,000,000 steps.
DEFAULT_REPLAY_BYTES = 4 << 30


class ModelBasedAlgorithm(CheckpointMixin, BaseAlgorithm):
    """The shared machinery of the ca11 learners: every space the encoders and :class:`ActionAdapter` support,
    a sequence replay buffer, checkpoints that never unpickle, and the learner loop.

    The loop (:meth:`learn`, as SB3's ``OffPolicyAlgorithm.learn``) acts from the recurrent latent that it carries
    between steps (``policy.act``: the learner's acting hook), stores every step and, when episodes end, their
    discounted returns, runs ``gradient_steps`` updates (:meth:`train`: the learner's update hook) every
    ``train_freq`` env steps once ``learning_starts`` steps are stored, and logs through SB3's logger and callbacks.
    A learner subclasses this class, builds its optimizers in ``_setup_model`` (after ``super()._setup_model()``),
    and fills :meth:`train`; optionally :meth:`_terminal_values` (bootstrap values of episodes cut by a time limit).

    Args (shared by every learner; see the learners' docstrings for the rest):
        buffer_size: steps kept in the replay buffer; ``None`` for 1,000,000 or what fits in
            :data:`DEFAULT_REPLAY_BYTES` (whichever is smaller: pixel observations take 12 KiB a step).
        learning_starts: env steps taken with random actions before training starts.
        learning_rate: the world model's learning rate; ``None``: the policy class's ``agent_defaults``.
        batch_size: sequences per update (``B``); ``None``: the policy class's ``agent_defaults``.
        seq_len: steps per sequence (``T``).
        train_freq: env steps (summed over envs) between rounds of updates; ``None``: the policy class's
            ``agent_defaults``.
        gradient_steps: updates per round.
        gamma: the discount (of imagined returns, and of the stored Monte-Carlo returns).
        on_nonfinite: ``"raise"`` (a ``ValueError`` naming the loss term) or ``"skip"`` (warn, skip the step) when a
            loss is NaN or infinite; non-finite observations and rewards always raise, naming the env step.
        precision: ``"float32"``, or ``"bf16"``: the updates' forward passes run under ``torch.autocast`` in
            bfloat16 on the learner's device (:meth:`autocast`); the distributions' maths (probabilities, decoded
            values, returns, KL terms) stays in float32 (:func:`~ca11_agents.common.distributions.float32_math`),
            and so does acting. On this project's AVX2 CPU
            it does not pay (benchmarks/README.md, "Advanced world models"); on a GPU it may.
    """

    policy: RecurrentLatentPolicy
    replay_buffer: SequenceReplayBuffer | None = None
    #: The name under which TensorBoard runs are logged.
    tb_log_name: ClassVar[str] = "ModelBased"

    def __init__(
        self,
        policy: str | type[RecurrentLatentPolicy],
        env: GymEnv | str | None,
        learning_rate: float | None,
        *,
        buffer_size: int | None,
        learning_starts: int,
        batch_size: int | None,
        seq_len: int,
        train_freq: int | None,
        gradient_steps: int,
        gamma: float,
        on_nonfinite: str = "raise",
        precision: str = "float32",
        policy_kwargs: dict[str, Any] | None,
        stats_window_size: int,
        tensorboard_log: str | None,
        verbose: int,
        seed: int | None,
        device: torch.device | str,
    ) -> None:
        name = type(self).__name__
        if isinstance(policy, str) and policy not in self.policy_aliases:
            raise ValueError(f"{name}: unknown policy {policy!r}; {name} takes {sorted(self.policy_aliases)}")
        # Defaults that depend on the observations (a CNN world model wants a smaller learning rate, and its updates
        # cost far more than an MLP's): the policy class's ``agent_defaults``.
        policy_class = self.policy_aliases.get(policy) if isinstance(policy, str) else policy
        defaults = getattr(policy_class, "agent_defaults", {})
        learning_rate = defaults.get("learning_rate", 1e-3) if learning_rate is None else learning_rate
        batch_size = defaults.get("batch_size", 16) if batch_size is None else batch_size
        train_freq = defaults.get("train_freq", 1) if train_freq is None else train_freq
        if env is not None:
            env = maybe_make_env(env, verbose)
            # Checked before SB3's constructor, which asserts on unbounded Boxes: a ValueError naming the space.
            check_observation_space(env.observation_space, name)
            ActionAdapter(env.action_space, name)
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
            supported_action_spaces=None,
        )
        if env is None:
            self.n_envs = 1  # set_env() after load() compares against it, as in SB3
        self.on_nonfinite, self.precision = on_nonfinite, precision
        # Every argument is checked (common/arguments.py) when the model is set up, once the learner set its own.
        self.buffer_size, self.learning_starts = buffer_size, learning_starts
        self.batch_size, self.seq_len = batch_size, seq_len
        self.train_freq, self.gradient_steps, self.gamma = train_freq, gradient_steps, gamma
        self._updates_due = 0.0
        self._latent: Any = None
        self._explorer: RepeatedRandomActions | None = None
        self._prev_action: torch.Tensor | None = None

    def _setup_model(self) -> None:
        """Check every constructor argument, seed, build the policy from the spaces, and the replay buffer; learners
        add their optimizers."""
        name = type(self).__name__
        for arg, value in validate(name, self._init_kwargs()).items():
            setattr(self, self._ATTRIBUTES.get(arg, arg), value)
        least, why = self._min_seq_len()
        if self.seq_len < least:
            raise ValueError(f"{name}: seq_len must be >= {least} ({why}), got {self.seq_len}")
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(self.observation_space, self.action_space, **self.policy_kwargs)
        self.policy = self.policy.to(self.device)
        n_envs = self.n_envs if self.env is not None else 1
        action_dim = self.policy.actions.dim
        capacity = self.buffer_size
        per_step = SequenceReplayBuffer.bytes_per_step(self.observation_space, action_dim)
        if capacity is None:
            capacity = max(n_envs, min(1_000_000, DEFAULT_REPLAY_BYTES // per_step))
        if capacity // n_envs < self.seq_len:
            raise ValueError(
                f"{name}: buffer_size={capacity} keeps {capacity // n_envs} steps per env ({n_envs} envs), fewer than "
                f"seq_len={self.seq_len}: no training window could ever be sampled"
            )
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
        if memory and capacity * per_step > memory:
            raise ValueError(
                f"{name}: buffer_size={capacity} steps of {per_step} bytes need {capacity * per_step / 2**30:.1f} "
                f"GiB, more than this machine's {memory / 2**30:.1f} GiB"
            )
        self.replay_buffer = SequenceReplayBuffer(
            capacity, self.observation_space, action_dim, n_envs=n_envs, seed=self.seed
        )
        self._latent, self._prev_action = None, None

    def _min_seq_len(self) -> tuple[int, str]:
        """The shortest replayed window this learner's update can use, and why (an argument combination)."""
        return 1, "one step"

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """SB3's ``set_env``; the carried latent starts afresh with the new env."""
        super().set_env(env, force_reset)
        self._latent, self._prev_action = None, None

    # ------------------------------------------------------------------------------------------- the learner loop
    def train(self) -> dict[str, torch.Tensor]:
        """One update (the learner's hook). Returns the loss terms (tensors), logged as means under ``train/``."""
        raise NotImplementedError

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of the updates' forward passes: ``torch.autocast`` in bfloat16 with ``precision="bf16"``, a
        no-op with ``"float32"``."""
        if self.precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _terminal_values(self, cut: list[int], final_obs: Any, action: torch.Tensor) -> np.ndarray:
        """Values ``(len(cut),)`` of the final observations of the episodes of envs ``cut`` that a time limit ended,
        bootstrapping their stored returns (the learner's hook; default: 0)."""
        return np.zeros(len(cut), np.float32)

    def learn(
        self: SelfModelBased,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfModelBased:
        """Train for ``total_timesteps`` env steps (SB3's signature; ``log_interval`` counts episodes).

        On a CPU it runs with one torch intra-op thread unless you chose a count (:mod:`ca11_agents.common.threads`).
        """
        name = type(self).__name__
        if self.env is None:
            raise ValueError(
                f"{name}.learn needs an env: pass one to the constructor, to load(path, env=...) or to set_env()"
            )
        total_timesteps = validate_learn(name, total_timesteps)
        end = total_timesteps + (0 if reset_num_timesteps else int(self.num_timesteps))
        n_envs = self.env.num_envs
        # Rounds of updates become due from the first step at which learning_starts steps and one window per env
        # are stored: n_envs / train_freq of a round per loop step.
        first = max(self.learning_starts, self.seq_len * n_envs)
        if end < first + self.train_freq - n_envs:
            warnings.warn(
                f"{name}.learn({total_timesteps}) ends at env step {end}, before any update: updates start once "
                f"learning_starts={self.learning_starts} steps and a window of seq_len={self.seq_len} steps per env "
                f"are stored (then one round every train_freq={self.train_freq} steps), and until then actions are "
                "random. Train for more steps or pass a smaller learning_starts.",
                UserWarning,
                stacklevel=2,
            )
        with cpu_threads(self.device):
            return self._learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    def _learn(
        self: SelfModelBased,
        total_timesteps: int,
        callback: MaybeCallback,
        log_interval: int,
        tb_log_name: str | None,
        reset_num_timesteps: bool,
        progress_bar: bool,
    ) -> SelfModelBased:
        """The learner loop (see the class docstring), with :meth:`learn`'s arguments."""
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name or self.tb_log_name, progress_bar
        )
        env, policy, replay = self.env, self.policy, self.replay_buffer
        assert replay is not None
        n = env.num_envs
        check_finite_step(type(self).__name__, self.num_timesteps, self._last_obs, np.zeros(n), "reset observation")
        if self._latent is None or reset_num_timesteps:
            self._latent = policy.initial_state(n)
            self._prev_action = torch.zeros(n, policy.actions.dim, device=self.device)
            self._explorer = self._make_explorer(n)
        metrics: dict[str, list[torch.Tensor]] = defaultdict(list)
        episodes_since_log, start_steps, start_updates = 0, self.num_timesteps, self._n_updates
        start_time = time.perf_counter()
        callback.on_training_start(locals(), globals())
        callback.on_rollout_start()
        while self.num_timesteps < total_timesteps:
            obs = self._last_obs
            is_first = self._last_episode_starts.astype(np.float32)
            first_t = torch.as_tensor(is_first, device=self.device)
            policy.warming_up = self.num_timesteps < self.learning_starts
            action_t, self._latent = policy.act(
                obs_as_tensor(obs, self.device), self._latent, self._prev_action, first_t, False
            )
            if policy.warming_up:
                action_t = policy.actions.random(action_t)
                policy.warming_up = False
            elif self._explorer is not None:
                action_t = self._explorer(action_t, first_t)
            action = action_t.cpu().numpy()
            new_obs, rewards, dones, infos = env.step(policy.actions.to_env(action))
            check_finite_step(type(self).__name__, self.num_timesteps + n, new_obs, rewards)
            terminated = np.array(
                [done and not info.get("TimeLimit.truncated", False) for done, info in zip(dones, infos)], np.float32
            )
            replay.add(obs, action, rewards, terminated, is_first)
            if dones.any():
                self._end_episodes(dones, terminated, infos, action_t)
            self._prev_action = action_t
            self._last_obs, self._last_episode_starts = new_obs, dones
            self.num_timesteps += n
            self._update_info_buffer(infos, dones)
            callback.update_locals(locals())
            if not callback.on_step():
                break
            if self.num_timesteps >= self.learning_starts and replay.can_sample(self.seq_len):
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

    def _make_explorer(self, n_envs: int) -> RepeatedRandomActions | None:
        """The exploration that the loop adds to the policy's own actions after warm-up (``None``: none); a
        learner with an exploration argument overrides it."""
        return None

    def _finite(self, loss: torch.Tensor, term: str) -> bool:
        """Whether ``loss`` is finite; if not, raise a ``ValueError`` naming ``term`` (``on_nonfinite="raise"``) or
        warn and return ``False`` so the learner skips that step (``"skip"``)."""
        if bool(torch.isfinite(loss).all()):
            return True
        message = (
            f"{type(self).__name__}: non-finite {term} ({float(loss.detach().float().sum())}) at update "
            f"{self._n_updates + 1}, env step {self.num_timesteps}"
        )
        if self.on_nonfinite == "raise":
            raise ValueError(f"{message}; on_nonfinite='skip' skips such updates with a warning")
        warnings.warn(f"{message}: update skipped", RuntimeWarning, stacklevel=3)
        return False

    @torch.no_grad()
    def _end_episodes(self, dones: np.ndarray, terminated: np.ndarray, infos: list[dict], action: torch.Tensor) -> None:
        """Write the returns of the episodes that just ended into the replay buffer; an episode cut by a time limit
        is bootstrapped from :meth:`_terminal_values` of its final observation."""
        bootstrap = np.zeros(len(dones), np.float32)
        cut = [i for i in np.flatnonzero(dones) if not terminated[i] and "terminal_observation" in infos[i]]
        if cut:
            final = stack_observations([infos[i]["terminal_observation"] for i in cut])
            check_finite_step(type(self).__name__, self.num_timesteps, final, np.zeros(len(cut)), "final observation")
            bootstrap[cut] = self._terminal_values(cut, obs_as_tensor(final, self.device), action)
        assert self.replay_buffer is not None
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
        for key, value in self.policy.stats().items():
            self.logger.record(key, value)
        if metrics:
            # One device-to-host copy per log line, not one per update.
            means = torch.stack([torch.stack(v).float().mean() for v in metrics.values()]).cpu().tolist()
            for key, value in zip(metrics, means):
                self.logger.record(f"train/{key}", value)
        self.logger.record("train/n_updates", self._n_updates)
        self.logger.dump(step=self.num_timesteps)

    def get_env(self) -> VecEnv | None:
        """The training environment (a VecEnv), as in SB3."""
        return self.env
