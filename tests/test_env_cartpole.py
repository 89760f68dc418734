"""ContinuousCartPole is CartPole-v1 with a continuous force: same physics, starts, rewards and ends, bit for bit."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from ca11_gym import ContinuousCartPole

ENV_ID = "CA11/ContinuousCartPole-v0"
PUSH = {1: np.array([1.0], dtype=np.float32), 0: np.array([-1.0], dtype=np.float32)}  # CartPole-v1 action -> ours


def balancing_action(obs: np.ndarray) -> int:
    """A hand-made controller that keeps the pole up for the whole 500 steps (to reach the truncation)."""
    x, x_dot, theta, theta_dot = obs
    return int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)


def assert_same_step(ours: tuple, theirs: tuple) -> None:
    """Bitwise-equal observations; equal reward, terminated and truncated."""
    np.testing.assert_array_equal(ours[0], theirs[0])
    assert ours[0].dtype == theirs[0].dtype == np.float32
    assert ours[1:4] == theirs[1:4]


@pytest.mark.parametrize("policy", ["random", "balancing"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_trajectories_as_cartpole_v1(seed: int, policy: str) -> None:
    """Whole episodes through gym.make on both sides (so the 500-step TimeLimit too), resets included."""
    ours, theirs = gym.make(ENV_ID), gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    obs, _ = theirs.reset(seed=seed)
    np.testing.assert_array_equal(ours.reset(seed=seed)[0], obs)
    episodes, truncations = 0, 0
    while episodes < 3:
        action = int(rng.integers(2)) if policy == "random" else balancing_action(obs)
        step = theirs.step(action)
        assert_same_step(ours.step(PUSH[action]), step)
        obs = step[0]
        if step[2] or step[3]:
            episodes, truncations = episodes + 1, truncations + step[3]
            obs, _ = theirs.reset()
            np.testing.assert_array_equal(ours.reset()[0], obs)
    assert truncations == (3 if policy == "balancing" else 0)


@pytest.mark.parametrize("sutton_barto_reward", [False, True])
def test_steps_after_termination_match_cartpole_v1(sutton_barto_reward: bool) -> None:
    ours = ContinuousCartPole(sutton_barto_reward=sutton_barto_reward)
    theirs = gym.make("CartPole-v1", sutton_barto_reward=sutton_barto_reward).unwrapped
    ours.reset(seed=4)
    theirs.reset(seed=4)
    rewards = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(60):  # always pushing right: the pole falls within 60 steps, then 20+ steps beyond
            step = theirs.step(1)
            assert_same_step(ours.step(PUSH[1]), step)
            rewards.append(step[1])
    # Both warn once, on the first step after termination.
    assert sum("ContinuousCartPole: step() called after the episode terminated" in str(w.message) for w in caught) == 1
    assert sum("already returned terminated = True" in str(w.message) for w in caught) == 1
    assert ours.steps_beyond_terminated == theirs.steps_beyond_terminated > 10
    expected_after = -1.0 if sutton_barto_reward else 0.0
    assert rewards[-1] == expected_after


def test_partial_force_scales_cartpole_v1_force() -> None:
    """Action a pushes with 10 * a newtons: a = 0.5 is CartPole-v1 with force_mag = 5."""
    ours, theirs = ContinuousCartPole(), gym.make("CartPole-v1").unwrapped
    theirs.force_mag = 5.0
    ours.reset(seed=9)
    theirs.reset(seed=9)
    for _ in range(10):  # before the pole falls
        step = theirs.step(1)
        assert_same_step(ours.step(np.array([0.5], dtype=np.float32)), step)
    assert not step[2]


def test_reset_options_and_state_assignment_match_cartpole_v1() -> None:
    ours, theirs = ContinuousCartPole(), gym.make("CartPole-v1").unwrapped
    options = {"low": -0.2, "high": 0.1}
    np.testing.assert_array_equal(ours.reset(seed=3, options=options)[0], theirs.reset(seed=3, options=options)[0])
    state = np.array([0.5, -0.3, 0.02, 0.1])
    ours.state, theirs.state = state, state.copy()  # planning from a chosen state, as with CartPole-v1
    np.testing.assert_array_equal(ours.state, state)
    for _ in range(5):  # before the pole falls
        step = theirs.step(1)
        assert_same_step(ours.step(PUSH[1]), step)
    assert not step[2]
    with pytest.raises(ValueError, match="shape"):
        ours.state = np.zeros(3)


def test_registration_and_name() -> None:
    spec = gym.spec(ENV_ID)
    assert (spec.max_episode_steps, spec.reward_threshold) == (500, 475.0)
    env = ContinuousCartPole()
    assert env.name == "ContinuousCartPole"
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert env.observation_space == gym.make("CartPole-v1").observation_space


def test_vector_sutton_barto_reward_and_time_limit() -> None:
    envs = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", sutton_barto_reward=True)
    assert envs.unwrapped.max_episode_steps == 500  # passed by make_vec from the registration
    envs.reset(seed=0)
    rewards, terminated = [], []
    for _ in range(60):  # pushing right until every pole has fallen
        _, reward, term, _, _ = envs.step(np.ones((3, 1), dtype=np.float32))
        rewards.append(reward)
        terminated.append(term)
    rewards, terminated = np.array(rewards), np.array(terminated)
    assert terminated.any(axis=0).all()
    np.testing.assert_array_equal(rewards, np.where(terminated, -1.0, 0.0))
