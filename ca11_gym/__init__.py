"""ca11_gym: continuous-control and memory tasks for Gymnasium.

Importing this package registers the environments (Gymnasium 1.x does not auto-load third-party envs)::

    import gymnasium as gym
    import ca11_gym

    env = gym.make("CA11/ContinuousPendulum-v0")
    envs = gym.make_vec("CA11/ContinuousPendulum-v0", num_envs=8, vectorization_mode="vector_entry_point")

``gym.make("ca11_gym:CA11/ContinuousPendulum-v0")`` works without the explicit import.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from ca11_gym.envs.cartpole import ContinuousCartPole, ContinuousCartPoleVectorEnv
from ca11_gym.envs.pendulum import ContinuousPendulum, ContinuousPendulumVectorEnv
from ca11_gym.envs.sequence import SequenceEnvironment, SequenceEnvironmentVectorEnv

__all__ = [
    "ContinuousCartPole",
    "ContinuousCartPoleVectorEnv",
    "ContinuousPendulum",
    "ContinuousPendulumVectorEnv",
    "SequenceEnvironment",
    "SequenceEnvironmentVectorEnv",
    "ENV_IDS",
]

_SPECS = {
    "CA11/ContinuousCartPole-v0": dict(
        entry_point="ca11_gym.envs.cartpole:ContinuousCartPole",
        vector_entry_point="ca11_gym.envs.cartpole:ContinuousCartPoleVectorEnv",
        max_episode_steps=500,
        reward_threshold=475.0,
    ),
    "CA11/ContinuousPendulum-v0": dict(
        entry_point="ca11_gym.envs.pendulum:ContinuousPendulum",
        vector_entry_point="ca11_gym.envs.pendulum:ContinuousPendulumVectorEnv",
        max_episode_steps=200,
    ),
    "CA11/SequenceEnvironment-v0": dict(
        entry_point="ca11_gym.envs.sequence:SequenceEnvironment",
        vector_entry_point="ca11_gym.envs.sequence:SequenceEnvironmentVectorEnv",
        # No max_episode_steps: the episode length is part of the task (it terminates itself after
        # episode_length steps). 18 closes 80% of the gap from the best memoryless return (10) to the optimum (20)
        # for the default arguments (the benchmarks' threshold), so a policy above it provably uses memory.
        reward_threshold=18.0,
    ),
}

#: Every environment id this package registers.
ENV_IDS: tuple[str, ...] = tuple(_SPECS)

for _env_id, _kwargs in _SPECS.items():
    if _env_id not in registry:  # importing twice (e.g. after importlib.reload) must not warn
        register(id=_env_id, **_kwargs)
