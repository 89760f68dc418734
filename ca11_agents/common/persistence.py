"""Checkpoints of the ca11 learners: ``save``/``load`` of weights, optimizers, counters and constructor arguments
as JSON plus safetensors (:mod:`ca11_agents.common.checkpoint`), never a pickle, and the replay buffer's save/load.

SB3's ``BaseAlgorithm.save``/``load`` store pickled objects in their zip, so loading a tampered file runs code; this
mixin replaces them for :class:`~ca11_agents.common.base.ModelBasedAlgorithm` (it comes first in the bases).
"""

from __future__ import annotations

import inspect
import os
from typing import Any, ClassVar, TypeVar

import torch
from stable_baselines3.common.type_aliases import GymEnv

from ca11_agents.common.arguments import check_sizes, validate
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
from ca11_agents.common.spaces import space_from_json, space_to_json

SelfCheckpointed = TypeVar("SelfCheckpointed", bound="CheckpointMixin")


class CheckpointMixin:
    """``save``/``load`` and the replay buffer's, for a ``BaseAlgorithm`` subclass whose constructor arguments are
    its attributes of the same names (:meth:`_init_kwargs`) and whose ``_setup_model`` builds ``policy``,
    ``replay_buffer`` and :attr:`optimizers`."""

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
        cls: type[SelfCheckpointed],
        path: str | os.PathLike,
        env: GymEnv | None = None,
        device: torch.device | str = "auto",
        **kwargs: Any,
    ) -> SelfCheckpointed:
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
