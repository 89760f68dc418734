"""The base of every ca11 learner: Stable-Baselines3's ``BaseAlgorithm`` with the one learner loop, every supported
space, and safe checkpoints.

Subclassing ``BaseAlgorithm`` directly (as sb3-contrib's ARS does) gives env wrapping, callbacks, the logger,
TensorBoard and ``evaluate_policy``. Its ``save``/``load`` are replaced: SB3 stores pickled objects in its zip, so
loading a tampered file runs code. Here a checkpoint is JSON plus safetensors (:mod:`ca11_agents.common.checkpoint`).
"""

from __future__ import annotations

import contextlib
import inspect
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

from ca11_agents.common.arguments import check_sizes, validate, validate_learn
from ca11_agents.common.checkpoint import (
    CheckpointMismatch,
    TensorSpecs,
    compare_tensor_specs,
    flatten_optimizer,
    load_checkpoint,
    same_kind,
    save_checkpoint,
    unflatten_optimizer,
)
from ca11_agents.common.exploration import RepeatedRandomActions
from ca11_agents.common.policies import RecurrentLatentPolicy
from ca11_agents.common.replay import SequenceReplayBuffer
from ca11_agents.common.spaces import (
    ActionAdapter,
    check_finite_step,
    obs_as_tensor,
    space_from_json,
    space_to_json,
    stack_observations,
)
from ca11_agents.common.threads import cpu_threads
from ca11_agents.world_models.encoders import check_observation_space

SelfModelBased = TypeVar("SelfModelBased", bound="ModelBasedAlgorithm")


#: Replay memory a default ``buffer_size`` may take (``min(1_000_000 steps, this / bytes per step)``): 4 GiB is
#: about 340,000 64x64x3 frames (12 KiB each), comfortable on a 24 GiB machine; vector tasks keep 1,000,000 steps.
DEFAULT_REPLAY_BYTES = 4 << 30


class ModelBasedAlgorithm(BaseAlgorithm):
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

    # ------------------------------------------------------------------------------------------- checkpoints
    #: Constructor arguments stored under another attribute name.
    _ATTRIBUTES: ClassVar[dict[str, str]] = {"stats_window_size": "_stats_window_size"}
    #: Constructor arguments added after checkpoints of the learner were first written, with the value that the
    #: older files were trained with (:meth:`load` uses it where a file does not store the argument).
    _ADDED_ARGUMENTS: ClassVar[dict[str, Any]] = {}

    def _init_kwargs(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON-serialisable), stored in every checkpoint: read from the
        attributes of the same name, so a learner lists its arguments once, in its signature."""
        skip = {"self", "policy", "env", "device", "_init_setup_model"}
        names = [p for p in inspect.signature(type(self).__init__).parameters if p not in skip]
        return {name: getattr(self, self._ATTRIBUTES.get(name, name)) for name in names}

    def _policy_alias(self) -> str | None:
        return next((k for k, v in self.policy_aliases.items() if v is self.policy_class), None)

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers whose state a checkpoint keeps, by name."""
        return {}

    def _extra_state(self) -> dict[str, Any]:
        """JSON state beyond weights and optimizers (counters); extended by subclasses."""
        return {"num_timesteps": int(self.num_timesteps), "n_updates": int(self._n_updates)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.num_timesteps = int(state["num_timesteps"])
        self._n_updates = int(state["n_updates"])

    def save(self, path: str | os.PathLike, exclude: Any = None, include: Any = None) -> None:  # noqa: ARG002
        """Save weights, optimizer states, counters and the constructor arguments to ``path``.

        The file is a zip of ``config.json`` and ``tensors.safetensors`` (never a pickle), written atomically: an
        interrupted save leaves the previous checkpoint intact. ``exclude``/``include`` exist for SB3 signature
        compatibility and are ignored (the replay buffer is saved by :meth:`save_replay_buffer`).
        """
        tensors = {f"policy/{k}": v for k, v in self.policy.state_dict().items()}
        optim_meta = {}
        for name, optimizer in self.optimizers.items():
            opt_tensors, optim_meta[name] = flatten_optimizer(f"optim/{name}", optimizer.state_dict())
            tensors.update(opt_tensors)
        config = {
            "policy": self._policy_alias(),
            "init_kwargs": self._init_kwargs(),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "state": self._extra_state(),
            "optimizers": optim_meta,
        }
        save_checkpoint(path, type(self).__name__, config, tensors)

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfModelBased],
        path: str | os.PathLike,
        env: GymEnv | None = None,
        device: torch.device | str = "auto",
        **kwargs: Any,
    ) -> SelfModelBased:
        """Load an agent saved by :meth:`save`; it predicts exactly what the saved one did.

        Args:
            path: the checkpoint file.
            env: an environment to go on training in; its spaces must match the saved ones.
            device: where to put the networks.
            **kwargs: constructor arguments to override (e.g. ``verbose``, ``tensorboard_log``; ``policy`` for an
                agent saved with a policy class that is none of its aliases).

        Raises:
            ValueError: the file is not a checkpoint of this class, or ``env``'s spaces do not match.
        """
        built: dict[str, Any] = {}

        def check(config: dict[str, Any], specs: TensorSpecs) -> None:
            # Before any tensor data is read: the config, then every tensor's shape against a build on the meta
            # device (no memory), so a file cannot make this load allocate what a real agent would not hold.
            try:
                spaces_ = space_from_json(config["observation_space"]), space_from_json(config["action_space"])
                policy = kwargs.pop("policy", None) or config.get("policy") or "MlpPolicy"
                if isinstance(policy, str) and policy not in cls.policy_aliases:
                    raise ValueError(f"unknown policy {policy!r} (known: {sorted(cls.policy_aliases)})")
                stored = {**cls._ADDED_ARGUMENTS, **config["init_kwargs"]}
                # Paths are the caller's to choose: a checkpoint does not decide where a later learn() writes.
                stored.pop("tensorboard_log", None)
                init_kwargs = _before_obs_norm({**stored, **kwargs}, cls.policy_aliases.get(policy, policy), specs)
                unknown = set(init_kwargs) - set(inspect.signature(cls.__init__).parameters)
                if unknown:
                    raise ValueError(f"unknown constructor arguments {sorted(unknown)}")
                if not isinstance(config["state"], dict) or not isinstance(config["optimizers"], dict):
                    raise ValueError("state and optimizers must be JSON objects")
                # A stranger's network sizes are bounded before anything is built, even on the meta device.
                check_sizes(cls.__name__, stored.get("policy_kwargs") or {})
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"malformed {cls.__name__} config: {exc}") from exc
            try:
                validate(cls.__name__, init_kwargs)
            except ValueError as exc:
                raise ValueError(f"{exc} (to load it anyway, override it: {cls.__name__}.load(path, <name>=...))")
            agent = cls(policy, env=env, device=device, _init_setup_model=False, **init_kwargs)
            if env is not None:
                for what, saved, given in zip(("observation", "action"), spaces_, (agent.observation_space,
                                                                                  agent.action_space)):  # fmt: skip
                    if saved != given:
                        raise CheckpointMismatch(
                            f"{path}: the env's {what} space {given} differs from the saved one {saved}"
                        )
            agent.observation_space, agent.action_space = spaces_
            try:
                agent._check_tensor_specs(specs)
            except ValueError as exc:  # the caller's env or overrides (e.g. buffer_size for more envs)
                if set(kwargs) or env is not None:
                    raise CheckpointMismatch(f"{path}: {exc} (with the env or arguments passed to load)") from exc
                raise
            built["agent"] = agent

        config, tensors = load_checkpoint(path, cls.__name__, check)
        agent = built["agent"]
        agent._setup_model()
        try:
            agent.policy.load_state_dict(
                {k[len("policy/") :]: v for k, v in tensors.items() if k.startswith("policy/")}, strict=True
            )
            for name, optimizer in agent.optimizers.items():
                defaults = [dict(group) for group in optimizer.param_groups]
                optimizer.load_state_dict(unflatten_optimizer(f"optim/{name}", tensors, config["optimizers"][name]))
                for group, default in zip(optimizer.param_groups, defaults):
                    for key, value in default.items():
                        if key != "params" and not same_kind(group.get(key), value):
                            raise ValueError(f"optimizer {name!r}: {key}={group.get(key)!r} (expected like {value!r})")
            agent._load_extra_state(config["state"])
        except Exception as exc:  # any malformed piece of a stranger's file is its error, named with the file
            raise ValueError(f"{path}: weights do not match a {cls.__name__} of this configuration: {exc}") from exc
        return agent

    def _check_tensor_specs(self, specs: TensorSpecs) -> None:
        """Refuse checkpoint tensors (``{name: (dtype, shape)}``) that this agent's networks and optimizers would
        not hold, by building them on the meta device: no tensor storage however wide the config asks them to be
        (how deep is bounded before, by :func:`~ca11_agents.common.arguments.check_sizes`)."""
        device = self.device
        self.device = torch.device("meta")
        try:
            with torch.device("meta"):
                self._setup_model()
            expected = {f"policy/{k}": (v.dtype, tuple(v.shape)) for k, v in self.policy.state_dict().items()}
            params = {
                name: [tuple(p.shape) for group in optimizer.param_groups for p in group["params"]]
                for name, optimizer in self.optimizers.items()
            }
        finally:
            self.device = device
            self.policy, self.replay_buffer = None, None  # type: ignore[assignment]
        compare_tensor_specs(specs, expected, params)

    def save_replay_buffer(self, path: str | os.PathLike) -> None:
        """Save the replay buffer (``.npz``, atomically) so that training can resume with
        ``learn(..., reset_num_timesteps=False)``."""
        if self.replay_buffer is None:
            raise ValueError(f"{type(self).__name__} has no replay buffer to save")
        self.replay_buffer.save(path)

    def load_replay_buffer(self, path: str | os.PathLike, truncate_last_traj: bool = True) -> None:  # noqa: ARG002
        """Load a replay buffer written by :meth:`save_replay_buffer` (``truncate_last_traj`` is accepted for SB3
        compatibility: windows may cross episode boundaries anyway, which ``is_first`` marks)."""
        if self.replay_buffer is None:
            raise ValueError(f"{type(self).__name__} has no replay buffer to load into")
        self.replay_buffer.load(path)

    def get_env(self) -> VecEnv | None:
        """The training environment (a VecEnv), as in SB3."""
        return self.env


def _before_obs_norm(init_kwargs: dict[str, Any], policy: Any, specs: TensorSpecs) -> dict[str, Any]:
    """A checkpoint of a learner whose policy now standardises observations by default (``rssm_defaults``) but
    saved before it did: its file holds no normaliser statistics and does not name ``obs_norm``, so it loads with
    ``obs_norm=False``, the model it was trained as (an explicit choice, stored or passed to ``load``, stands)."""
    if not getattr(policy, "rssm_defaults", {}).get("obs_norm"):
        return init_kwargs
    policy_kwargs = dict(init_kwargs.get("policy_kwargs") or {})
    rssm_kwargs = dict(policy_kwargs.get("rssm_kwargs") or {})
    if "obs_norm" in rssm_kwargs or any(name.startswith("policy/rssm.obs_norm.") for name in specs):
        return init_kwargs
    return {**init_kwargs, "policy_kwargs": {**policy_kwargs, "rssm_kwargs": {**rssm_kwargs, "obs_norm": False}}}
