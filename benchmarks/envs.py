"""Benchmark-only environment ids, registered with Gymnasium when this module is imported.

:func:`benchmarks.tasks.import_env_packages` imports it, so every adapter (SB3's ``make_vec_env``, tianshou's
``DummyVectorEnv``) and every Ray worker can ``gym.make`` these ids. They live here rather than in ``ca11_gym``
because they are benchmark configurations of ca11_gym's envs (a wrapper stack), not new tasks, and
``ca11_gym.ENV_IDS`` (the runner's default suite) stays the three state-based tasks.

``CA11/PixelPendulum-v0``
    ``CA11/ContinuousPendulum-v0`` seen through 64x64 RGB frames, **action repeat 2**::

        PixelObservation(ActionRepeat(gym.make("CA11/ContinuousPendulum-v0", render_mode="rgb_array"), 2), size=64)

    This gives the same observations and rewards as ``ActionRepeat(PixelObservation(...), 2)``, at half the cost:
    only the frame after the last repeated physics step is rendered and resized (~5 ms instead of ~9 ms per step).

    Observations: ``Box(0, 255, (64, 64, 3), uint8)`` (the frame after the last physics step). Actions: the
    pendulum's ``Box(-1, 1, (1,))``. One env step (the unit of ``max_episode_steps``, of the runner's budgets and of
    ``env_steps`` in the results) is one *agent* step = **two physics steps** of 0.05 s, whose rewards are summed.
    An episode is 200 physics steps = 100 agent steps, so episode returns are on the same scale as the state-based
    pendulum's and its threshold (-200) applies unchanged.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import register, registry

__all__ = ["BENCHMARK_ENV_IDS", "PIXEL_PENDULUM_ID", "PIXEL_PENDULUM_REPEAT", "PIXEL_SIZE", "make_pixel_pendulum"]

PIXEL_PENDULUM_ID = "CA11/PixelPendulum-v0"
#: Physics steps per agent step of :data:`PIXEL_PENDULUM_ID` (PlaNet/Dreamer use 2 on control tasks).
PIXEL_PENDULUM_REPEAT = 2
#: Side of the square frames, in pixels.
PIXEL_SIZE = 64
#: ``CA11/ContinuousPendulum-v0``'s time limit, in physics steps.
_PENDULUM_PHYSICS_STEPS = 200


def make_pixel_pendulum(
    render_mode: str | None = None, size: int = PIXEL_SIZE, repeat: int = PIXEL_PENDULUM_REPEAT, **kwargs: Any
) -> gym.Env:
    """The pixel pendulum: ``PixelObservation(ActionRepeat(pendulum, repeat), size)``.

    Args:
        render_mode: ``None`` or ``"rgb_array"``; the inner pendulum always renders to arrays (the observations are
            its frames), so ``render()`` returns the full-size 500x500 frame either way.
        size: side of the observed frames.
        repeat: physics steps per agent step.
        **kwargs: passed to ``CA11/ContinuousPendulum-v0`` (e.g. ``g``).
    """
    from ca11_gym.wrappers import ActionRepeat, PixelObservation

    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"{PIXEL_PENDULUM_ID}: render_mode must be None or 'rgb_array', got {render_mode!r}")
    # The inner time limit (200 physics steps) ends the episode; the registration's max_episode_steps (100 agent
    # steps) states it in agent steps and coincides with it.
    inner = gym.make("CA11/ContinuousPendulum-v0", render_mode="rgb_array", **kwargs)
    return PixelObservation(ActionRepeat(inner, repeat), size=size)


_SPECS: dict[str, dict[str, Any]] = {
    PIXEL_PENDULUM_ID: dict(
        entry_point="benchmarks.envs:make_pixel_pendulum",
        max_episode_steps=_PENDULUM_PHYSICS_STEPS // PIXEL_PENDULUM_REPEAT,  # agent steps
        reward_threshold=-200.0,  # the state pendulum's threshold (benchmarks.tasks.KNOWN_THRESHOLDS)
        disable_env_checker=True,  # the inner gym.make already checks the pendulum
    ),
}

#: Every env id this module registers.
BENCHMARK_ENV_IDS: tuple[str, ...] = tuple(_SPECS)

for _env_id, _kwargs in _SPECS.items():
    if _env_id not in registry:  # importing twice must not warn
        register(id=_env_id, **_kwargs)
