"""The spaces users bring, handled once: JSON for checkpoints, the action adapter, observations as tensors.

Inside the learners actions are vectors: a ``Box`` is rescaled to ``[-1, 1]``, a ``Discrete`` (or each part of a
``MultiDiscrete``) is one-hot. :class:`ActionAdapter` maps between those vectors and the env's own actions. What
the observation encoders support is checked in :mod:`ca11_agents.world_models.encoders`.

Images follow Stable-Baselines3: its env wrapping transposes channel-last images to channel-first
(``VecTransposeImage``), so the learners see ``(C, H, W)`` uint8 frames, and ``predict`` transposes channel-last
observations with SB3's ``maybe_transpose``.
"""

from __future__ import annotations

import math
from typing import Any, Union

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, maybe_transpose

#: An observation batch: an array ``(n, ...)`` or, for a ``Dict`` space, a dict of them.
ObsBatch = Union[np.ndarray, dict[str, np.ndarray]]

#: The largest space a checkpoint may declare (elements of one observation), checked before anything is allocated.
MAX_SPACE_ELEMENTS = 1 << 24


# ------------------------------------------------------------------------------------------------------- JSON
def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A ``Box``, ``Discrete``, ``MultiDiscrete`` or ``Dict`` (of those) as JSON; bounds that are the same
    everywhere (an image's 0..255) are stored once."""
    if isinstance(space, spaces.Box):
        bounds = {}
        for name, values in (("low", space.low), ("high", space.high)):
            flat = values.reshape(-1)
            uniform = flat.size > 0 and bool(np.all(flat == flat[0]))
            bounds[name] = _json_number(flat[0]) if uniform else [_json_number(x) for x in flat]
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype), **bounds}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.reshape(-1).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(sub) for key, sub in space.spaces.items()}}
    raise ValueError(f"cannot store the space {space} in a checkpoint (supported: Box, Discrete, MultiDiscrete, Dict)")


def _json_number(x: Any) -> float | int | str:
    value = x.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf" / "-inf" / "nan": JSON has no infinities
    return value


def space_from_json(data: Any, _depth: int = 0) -> spaces.Space:
    """Inverse of :func:`space_to_json`; sizes are checked before anything is allocated.

    Raises:
        ValueError: the description is malformed or declares an implausibly large space.
    """
    if not isinstance(data, dict) or _depth > 1:
        raise ValueError(f"malformed space description {str(data)[:80]!r}")
    kind = data.get("type", "Box")  # files written before spaces carried a type held only Boxes
    if kind == "Box":
        shape = data["shape"]
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape) or len(shape) > 4:
            raise ValueError(f"malformed Box shape {shape!r}")
        size = math.prod(shape)
        if size > MAX_SPACE_ELEMENTS:
            raise ValueError(f"a Box of shape {shape} ({size} elements) is larger than any supported space")
        dtype = np.dtype(data["dtype"])
        bounds = []
        for name in ("low", "high"):
            value = data[name]
            if isinstance(value, list):
                if len(value) != size:
                    raise ValueError(f"Box {name} has {len(value)} values, shape {shape} needs {size}")
                bounds.append(np.asarray([float(v) for v in value], dtype=dtype).reshape(shape))
            else:
                bounds.append(np.full(shape, float(value), dtype=dtype))
        return spaces.Box(bounds[0], bounds[1], dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        nvec = data["nvec"]
        if not isinstance(nvec, list) or not 0 < len(nvec) <= 4096:
            raise ValueError(f"malformed MultiDiscrete nvec {str(nvec)[:80]!r}")
        return spaces.MultiDiscrete([int(n) for n in nvec])
    if kind == "Dict":
        subs = data["spaces"]
        if not isinstance(subs, dict) or len(subs) > 64:
            raise ValueError("malformed Dict space description")
        return spaces.Dict({str(k): space_from_json(v, _depth + 1) for k, v in subs.items()})
    raise ValueError(f"unknown space type {kind!r}")


# ----------------------------------------------------------------------------------------------------- actions
class ActionAdapter:
    """Between an env's action space and the learners' action vectors.

    * ``Box`` (flat, finite bounds): vectors in ``[-1, 1]``, rescaled to the bounds.
    * ``Discrete(n)``: one-hot vectors of size ``n``; the env gets the index (plus the space's ``start``).
    * ``MultiDiscrete(nvec)`` (flat): one one-hot block per part, concatenated.

    Args:
        space: the env's action space.
        owner: named in the error for an unsupported space.

    Raises:
        ValueError: the space is none of the above (a ``Tuple``, an unbounded or multi-dimensional ``Box``, ...).
    """

    def __init__(self, space: spaces.Space, owner: str = "ca11") -> None:
        self.space = space
        supported = (
            "supported: a flat Box with finite bounds, Discrete, or a flat MultiDiscrete"
        )
        if isinstance(space, spaces.Box):
            if len(space.shape) != 1 or space.shape[0] < 1:
                raise ValueError(f"{owner}: action space {space} is not a flat Box ({supported})")
            if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
                raise ValueError(f"{owner}: action space {space} has infinite bounds ({supported})")
            self.discrete, self.nvec = False, ()
            self.dim = int(space.shape[0])
            self._low, self._high = space.low, space.high
        elif isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
            if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim != 1:
                raise ValueError(f"{owner}: action space {space} is not a flat MultiDiscrete ({supported})")
            nvec = [int(space.n)] if isinstance(space, spaces.Discrete) else space.nvec.tolist()
            if min(nvec) < 1:
                raise ValueError(f"{owner}: action space {space} has a part without choices ({supported})")
            self.discrete, self.nvec = True, tuple(int(n) for n in nvec)
            self.dim = sum(self.nvec)
        else:
            raise ValueError(f"{owner}: action space {space} is not supported ({supported})")

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """The env's actions ``(n, ...)`` for learner actions ``(n, dim)``, in the space's dtype."""
        actions = np.asarray(actions)
        if not self.discrete:
            # SB3's ``unscale_action``, in the space's dtype (tanh keeps learner actions inside [-1, 1])
            return (self._low + (0.5 * (actions + 1.0) * (self._high - self._low))).astype(self.space.dtype)
        parts = np.split(actions, np.cumsum(self.nvec)[:-1], axis=-1)
        index = np.stack([p.argmax(-1) for p in parts], -1)  # (n, parts)
        if isinstance(self.space, spaces.Discrete):
            return (index[:, 0] + int(self.space.start)).astype(self.space.dtype)
        return (index + self.space.start).astype(self.space.dtype)

    def from_env(self, actions: np.ndarray) -> np.ndarray:
        """Learner actions ``(n, dim)`` (float32) for env actions ``(n, ...)``."""
        actions = np.asarray(actions)
        if not self.discrete:
            scaled = 2.0 * (actions.astype(np.float64) - self._low) / (self._high - self._low) - 1.0
            return scaled.reshape(-1, self.dim).astype(np.float32)
        index = actions.reshape(len(actions), -1) - np.asarray(self.space.start).reshape(1, -1)
        out = np.zeros((len(actions), self.dim), np.float32)
        offsets = np.concatenate([[0], np.cumsum(self.nvec)[:-1]])
        out[np.arange(len(actions))[:, None], offsets[None] + index] = 1.0
        return out

    def random(self, like: torch.Tensor) -> torch.Tensor:
        """Uniformly random learner actions shaped like ``like`` ``(n, dim)`` (from torch's generator)."""
        if not self.discrete:
            return torch.rand_like(like) * 2.0 - 1.0
        blocks = [
            torch.nn.functional.one_hot(torch.randint(0, n, like.shape[:-1], device=like.device), n)
            for n in self.nvec
        ]
        return torch.cat(blocks, -1).to(like.dtype)


# ------------------------------------------------------------------------------------------------ observations
def is_image(space: spaces.Space) -> bool:
    """Whether ``space`` is an image ``Box`` (3-D uint8 in ``[0, 255]``, either channel order): SB3's test."""
    return is_image_space(space, check_channels=False)


def storage_dtype(space: spaces.Box) -> np.dtype:
    """How a field is kept in replay: integer observations (uint8 frames) in their own dtype, floats as float32."""
    return np.dtype(np.float32) if np.issubdtype(space.dtype, np.floating) else np.dtype(space.dtype)


def observation_fields(space: spaces.Space | int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The replay fields of an observation space: ``{"observations": (shape, dtype)}``, or for a ``Dict``
    ``{"observations.<key>": ...}`` per key. An int is a flat float32 vector of that size."""
    if isinstance(space, int):
        return {"observations": ((space,), np.dtype(np.float32))}
    if isinstance(space, spaces.Dict):
        return {f"observations.{k}": (tuple(s.shape), storage_dtype(s)) for k, s in space.spaces.items()}
    return {"observations": (tuple(space.shape), storage_dtype(space))}


def split_observation(obs: ObsBatch) -> dict[str, np.ndarray]:
    """An observation batch as replay fields (see :func:`observation_fields`)."""
    if isinstance(obs, dict):
        return {f"observations.{k}": np.asarray(v) for k, v in obs.items()}
    return {"observations": np.asarray(obs)}


def join_observation(fields: dict[str, Any]) -> Any:
    """Inverse of :func:`split_observation` on a batch of replay fields (arrays or tensors): the other fields are
    kept and the observation fields gathered under ``"observations"``."""
    out = {k: v for k, v in fields.items() if not k.startswith("observations.")}
    parts = {k[len("observations.") :]: v for k, v in fields.items() if k.startswith("observations.")}
    if parts:
        out["observations"] = parts
    return out


def obs_as_tensor(obs: ObsBatch, device: torch.device | str) -> torch.Tensor | dict[str, torch.Tensor]:
    """An observation batch as tensor(s) on ``device``: uint8 frames stay uint8 (the encoder scales them, once),
    floats become float32."""
    if isinstance(obs, dict):
        return {k: obs_as_tensor(v, device) for k, v in obs.items()}  # type: ignore[misc]
    array = np.asarray(obs)
    if np.issubdtype(array.dtype, np.floating) and array.dtype != np.float32:
        array = array.astype(np.float32)
    return torch.as_tensor(array, device=device)


def batch_observation(observation: Any, space: spaces.Space, owner: str) -> tuple[ObsBatch, int, bool]:
    """``(batch (n, ...), n, single)`` for one observation or a batch, images transposed to the space's channel
    order (SB3's ``maybe_transpose``).

    Raises:
        ValueError: the observation's shape fits neither one observation nor a batch of them.
    """
    if isinstance(space, spaces.Dict):
        if not isinstance(observation, dict) or set(observation) != set(space.spaces):
            got = sorted(observation) if isinstance(observation, dict) else type(observation).__name__
            raise ValueError(f"{owner}: expected a dict observation with keys {sorted(space.spaces)}, got {got}")
        parts = {k: batch_observation(observation[k], space.spaces[k], f"{owner} [{k!r}]") for k in space.spaces}
        sizes = {n for _, n, _ in parts.values()}
        if len(sizes) != 1:
            raise ValueError(f"{owner}: the dict observation's entries have different batch sizes {sorted(sizes)}")
        single = all(s for _, _, s in parts.values())
        return {k: p[0] for k, p in parts.items()}, sizes.pop(), single
    array = np.asarray(observation)
    if is_image(space):
        array = maybe_transpose(array, space)
    if array.shape == space.shape:
        return array[None], 1, True
    if array.ndim == len(space.shape) + 1 and array.shape[1:] == space.shape:
        return array, array.shape[0], False
    raise ValueError(f"{owner}: expected observations of shape {space.shape} or (n, *{space.shape}), got {array.shape}")


def stack_observations(observations: list[Any]) -> ObsBatch:
    """A batch ``(n, ...)`` from single observations (dicts stacked per key)."""
    if isinstance(observations[0], dict):
        return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    return np.stack(observations)


def check_finite_step(learner: str, step: int, obs: Any, rewards: np.ndarray, what: str = "observation") -> None:
    """Refuse NaN or infinite observations and rewards where they enter, before they reach the replay and every
    weight: a ``ValueError`` naming the env step and the field."""
    fields = [(f"{what}[{k!r}]", v) for k, v in obs.items()] if isinstance(obs, dict) else [(what, obs)]
    for key, value in [*fields, ("reward", rewards)]:
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            rows = np.flatnonzero(~np.isfinite(value).reshape(len(value), -1).all(axis=1)).tolist()
            raise ValueError(f"{learner}: the env returned a non-finite {key} at env step {step} (rows {rows})")
