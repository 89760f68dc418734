"""What the benchmark runs on: the env ids' default budgets, their thresholds and spaces.

The runner (:mod:`benchmarks.run`), the sweep, the report and ``ca11 train``'s plots read them here. ``import
ca11_gym`` registers the CA11 ids and :mod:`benchmarks.envs` the benchmark's own (``CA11/PixelPendulum-v0``);
:func:`import_env_packages` does both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    """Default training budget of an env: long enough for the baselines (SAC, or DQN/PPO on discrete tasks) to pass
    the threshold."""

    steps: int
    eval_every: int


#: Used when ``--steps`` is not given. Pendulum: the zoo's SAC/TD3 ``n_timesteps`` (SAC solves it in ~10k).
#: CartPole: SAC balances the 500-step pole within ~20k steps; 50k leaves room for slower learners.
#: Sequence: 25-step memory episodes; 30k steps are 1,200 episodes.
#: CartPole-v1 / Acrobot-v1: the zoo's DQN ``n_timesteps`` (5e4 / 1e5; its PPO entries train 1e5 / 1e6).
#: Pixel pendulum: agent steps, each two physics steps (action repeat 2), so 20k agent steps are 200 episodes.
DEFAULT_BUDGETS: dict[str, Budget] = {
    "CA11/ContinuousPendulum-v0": Budget(20_000, 1_000),
    "Pendulum-v1": Budget(20_000, 1_000),
    "CA11/PixelPendulum-v0": Budget(20_000, 1_000),
    "CA11/ContinuousCartPole-v0": Budget(50_000, 2_500),
    "CartPole-v1": Budget(50_000, 1_000),
    "Acrobot-v1": Budget(100_000, 2_000),
    "CA11/SequenceEnvironment-v0": Budget(30_000, 1_000),
}

#: Thresholds set by the project's issue for envs whose spec has no ``reward_threshold`` (the pixel pendulum's
#: registration states the same -200). CartPole-v1 (475) and Acrobot-v1 (-100) use their specs' thresholds.
KNOWN_THRESHOLDS: dict[str, float] = {
    "CA11/ContinuousPendulum-v0": -200.0,
    "Pendulum-v1": -200.0,
    "CA11/PixelPendulum-v0": -200.0,
}


def import_env_packages() -> None:
    """Register the ca11 envs if the package is importable (Gymnasium does not auto-load third-party envs), and the
    benchmark's own ids (:mod:`benchmarks.envs`: ``CA11/PixelPendulum-v0``, which needs ca11_gym when made)."""
    import benchmarks.envs  # noqa: F401

    try:
        import ca11_gym  # noqa: F401
    except ImportError:
        pass  # only CA11/* ids need it; benchmarks.run.validate_envs reports a missing one clearly


def env_threshold(env_id: str) -> float | None:
    """The return an env counts as solved at.

    A memory task that exposes ``optimal_return`` and ``memoryless_return`` (on ``env.unwrapped``) is solved at
    80 % of the way from the best memoryless return to the optimal one; otherwise the issue's table, then the
    env spec's ``reward_threshold``.
    """
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        env.reset(seed=0)
        inner = env.unwrapped
        if hasattr(inner, "optimal_return") and hasattr(inner, "memoryless_return"):
            optimal, memoryless = float(inner.optimal_return), float(inner.memoryless_return)
            return memoryless + 0.8 * (optimal - memoryless)
        if env_id in KNOWN_THRESHOLDS:
            return KNOWN_THRESHOLDS[env_id]
        return None if env.spec is None or env.spec.reward_threshold is None else float(env.spec.reward_threshold)
    finally:
        env.close()


def env_spaces(env_id: str) -> tuple[Any, Any]:
    """``(observation_space, action_space)`` of ``env_id``."""
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def budget_for(env_id: str, steps: int | None, eval_every: int | None) -> Budget:
    """``--steps``/``--eval-every`` when given; else the env's default budget; else 20 evaluations per run."""
    if steps is None:
        if env_id not in DEFAULT_BUDGETS:
            raise ValueError(f"no default budget for {env_id!r}; pass --steps (defaults exist for "
                             f"{', '.join(DEFAULT_BUDGETS)})")  # fmt: skip
        default = DEFAULT_BUDGETS[env_id]
        return Budget(default.steps, eval_every or default.eval_every)
    return Budget(steps, eval_every or max(1, steps // 20))
