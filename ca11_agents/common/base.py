"""The base of every ca11 learner: Stable-Baselines3's ``BaseAlgorithm`` with safe checkpoints.

Subclassing ``BaseAlgorithm`` directly (as sb3-contrib's ARS does) gives env wrapping, callbacks, the logger,
TensorBoard and ``evaluate_policy``. Its ``save``/``load`` are replaced: SB3 stores pickled objects in its zip, so
loading a tampered file runs code. Here a checkpoint is JSON plus safetensors (:mod:`ca11_agents.common.checkpoint`).
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import VecEnv

from ca11_agents.common.checkpoint import (
    flatten_optimizer,
    load_checkpoint,
    save_checkpoint,
    unflatten_optimizer,
)
from ca11_agents.common.replay import SequenceReplayBuffer

SelfModelBased = TypeVar("SelfModelBased", bound="ModelBasedAlgorithm")


def box_to_json(space: spaces.Box) -> dict[str, Any]:
    """A ``Box`` as JSON (shape, bounds, dtype)."""
    return {
        "shape": list(space.shape),
        "low": space.low.tolist(),
        "high": space.high.tolist(),
        "dtype": str(space.dtype),
    }


def box_from_json(data: dict[str, Any]) -> spaces.Box:
    """Inverse of :func:`box_to_json`."""
    return spaces.Box(
        np.asarray(data["low"], dtype=data["dtype"]).reshape(data["shape"]),
        np.asarray(data["high"], dtype=data["dtype"]).reshape(data["shape"]),
        dtype=data["dtype"],
    )


class ModelBasedAlgorithm(BaseAlgorithm):
    """Shared machinery of the ca11 learners: continuous ``Box`` spaces, normalised actions, a sequence replay
    buffer, and checkpoints that never unpickle.

    Subclasses define ``_setup_model``, ``learn`` and ``train``, list their constructor arguments in
    :meth:`_init_kwargs` (the JSON config of a checkpoint), and their optimizers in :attr:`optimizers`.
    """

    replay_buffer: SequenceReplayBuffer | None = None

    # ------------------------------------------------------------------------------------------------ spaces
    def _check_spaces(self) -> None:
        name = type(self).__name__
        if not isinstance(self.observation_space, spaces.Box) or len(self.observation_space.shape) != 1:
            raise ValueError(f"{name} needs a flat Box observation space, got {self.observation_space}")
        if not isinstance(self.action_space, spaces.Box) or len(self.action_space.shape) != 1:
            raise ValueError(f"{name} needs a flat Box action space, got {self.action_space}")
        if not np.all(np.isfinite(self.action_space.low)) or not np.all(np.isfinite(self.action_space.high)):
            raise ValueError(f"{name} needs finite action bounds, got {self.action_space}")

    # ------------------------------------------------------------------------------------------- checkpoints
    @abstractmethod
    def _init_kwargs(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON-serialisable), stored in every checkpoint."""

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
            "init_kwargs": self._init_kwargs(),
            "observation_space": box_to_json(self.observation_space),
            "action_space": box_to_json(self.action_space),
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
            **kwargs: constructor arguments to override (e.g. ``verbose``, ``tensorboard_log``).

        Raises:
            ValueError: the file is not a checkpoint of this class, or ``env``'s spaces do not match.
        """
        config, tensors = load_checkpoint(path, cls.__name__)
        try:
            obs_space = box_from_json(config["observation_space"])
            action_space = box_from_json(config["action_space"])
            init_kwargs = {**config["init_kwargs"], **kwargs}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: malformed {cls.__name__} config: {exc}") from exc
        agent = cls(env=env, device=device, _init_setup_model=False, **init_kwargs)
        if env is not None:
            for what, saved, given in (
                ("observation", obs_space, agent.observation_space),
                ("action", action_space, agent.action_space),
            ):
                if saved != given:
                    raise ValueError(f"{path}: the env's {what} space {given} differs from the saved one {saved}")
        agent.observation_space, agent.action_space = obs_space, action_space
        agent._setup_model()
        try:
            agent.policy.load_state_dict(
                {k[len("policy/") :]: v for k, v in tensors.items() if k.startswith("policy/")}, strict=True
            )
            for name, optimizer in agent.optimizers.items():
                optimizer.load_state_dict(unflatten_optimizer(f"optim/{name}", tensors, config["optimizers"][name]))
            agent._load_extra_state(config["state"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ValueError(f"{path}: weights do not match a {cls.__name__} of this configuration: {exc}") from exc
        return agent

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
