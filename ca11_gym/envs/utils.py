"""Helpers shared by the environments: action validation."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from gymnasium import spaces


def validate_action(action, space: spaces.Box, env_name: str, batch_size: int | None = None) -> np.ndarray:
    """Check an action and clip it into ``space``.

    Args:
        action: what the agent passed to ``step``: a number, a sequence or an array.
        space: the single environment's ``Box`` action space.
        env_name: named in the error message.
        batch_size: for a vector environment, the number of sub-environments; the expected shape is then
            ``(batch_size, *space.shape)``.

    Returns:
        A float64 array of the expected shape, clipped into the space's bounds (finite out-of-range values are
        clipped, as documented by every environment).

    Raises:
        ValueError: for a non-numeric type, a wrong shape, or NaN or infinite values. The message names the
            environment and the expected shape.
    """
    expected = space.shape if batch_size is None else (batch_size, *space.shape)
    if isinstance(action, numbers.Number) and not isinstance(action, bool):
        arr = np.asarray(action, dtype=np.float64)
        if arr.size != int(np.prod(expected)):
            raise ValueError(f"{env_name}: expected an action of shape {expected}, got the scalar {action!r}")
        arr = arr.reshape(expected)
    else:
        try:
            arr = np.asarray(action)
        except Exception as exc:  # ragged lists and other non-array input
            raise ValueError(f"{env_name}: the action must be numeric with shape {expected}, got {action!r}") from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(
                f"{env_name}: the action must be numeric with shape {expected}, got {type(action).__name__} "
                f"of dtype {arr.dtype}"
            )
        if arr.dtype == np.bool_:
            raise ValueError(f"{env_name}: the action must be numeric with shape {expected}, got booleans")
        arr = arr.astype(np.float64)
        if arr.shape != expected:
            if arr.size == int(np.prod(expected)) and arr.ndim <= 1 and batch_size is None:
                arr = arr.reshape(expected)  # a scalar array or a length-1 list for a (1,) space
            else:
                raise ValueError(f"{env_name}: expected an action of shape {expected}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{env_name}: the action must be finite (no NaN or inf) with shape {expected}, got {arr}")
    return np.clip(arr, space.low, space.high)


def validate_scalar_action(action: Any, space: spaces.Box, env_name: str) -> float:
    """:func:`validate_action` for a ``Box`` of shape ``(1,)``, returning the (clipped) action as a Python float.

    The common case, an in-range float array of shape ``(1,)`` (what ``space.sample()`` and agents produce), is
    accepted after a few comparisons; anything else (other types, shapes, NaN, infinities, out-of-range values) goes
    through :func:`validate_action`, so errors and clipping are exactly the same. The shortcut exists because
    ``validate_action``'s conversions cost as much as a whole CartPole step (see ``benchmarks/README.md``).
    """
    if type(action) is np.ndarray and action.shape == (1,) and action.dtype.kind == "f":
        value = float(action[0])
        if space.low[0] <= value <= space.high[0]:  # False for NaN, so NaN takes the checked path
            return value
    return float(validate_action(action, space, env_name)[0])


def validate_batch_action(actions: Any, space: spaces.Box, env_name: str, batch_size: int) -> np.ndarray:
    """:func:`validate_action` for a vector environment's ``(batch_size, *space.shape)`` actions, as float64.

    An in-range float array of the expected shape is accepted after one ``min`` and one ``max`` (NaN fails both
    comparisons); anything else goes through :func:`validate_action`, so errors and clipping are exactly the same.
    (With bounds that differ between dimensions the shortcut is stricter than needed: more takes the checked path.)
    """
    if (
        type(actions) is np.ndarray
        and actions.dtype.kind == "f"
        and actions.shape == (batch_size, *space.shape)
        and actions.min() >= space.low.max()  # every action above every lower bound
        and actions.max() <= space.high.min()
    ):
        return actions.astype(np.float64)
    return validate_action(actions, space, env_name, batch_size)


def check_render_mode(env_name: str, render_mode: str | None, render_modes: list[str]) -> None:
    """Raise a ``ValueError`` naming the environment unless ``render_mode`` is ``None`` or one of ``render_modes``."""
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"{env_name}: render_mode must be one of {render_modes} or None, got {render_mode!r}")


def check_num_envs(env_name: str, num_envs: object) -> int:
    """The number of sub-environments of a vector env as an ``int``; ``ValueError`` unless a positive integer."""
    return check_positive_int(env_name, "num_envs", num_envs)


def check_positive_int(env_name: str, name: str, value: object) -> int:
    """``value`` as an ``int``; a ``ValueError`` naming the environment and the parameter unless a positive
    integer (``max_episode_steps=0`` would end every episode before its first step)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{env_name}: {name} must be a positive integer, got {value!r}")
    return int(value)


def check_finite(env_name: str, name: str, value: object) -> float:
    """``value`` as a ``float``; a ``ValueError`` naming the environment and the parameter unless a finite real
    number (a NaN physics constant would turn every observation into NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{env_name}: {name} must be a finite number, got {value!r}")
    return float(value)


def check_range(env_name: str, name: str, value: object, low: float, high: float) -> float:
    """``value`` as a ``float``; a ``ValueError`` naming the environment, the parameter and the documented range
    ``[low, high]`` unless a real number inside it."""
    number = check_finite(env_name, name, value)
    if not low <= number <= high:
        raise ValueError(f"{env_name}: {name} must be in [{low}, {high}] (the documented range), got {value!r}")
    return number
