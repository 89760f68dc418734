"""ContinuousPendulum is Pendulum-v1 with the torque normalised to [-1, 1]: same physics, starts and rewards."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ca11_gym import ContinuousPendulum

ENV_ID = "CA11/ContinuousPendulum-v0"


def assert_same_step(ours: tuple, theirs: tuple) -> None:
    """Bitwise-equal observations; equal reward, terminated and truncated."""
    np.testing.assert_array_equal(ours[0], theirs[0])
    assert ours[0].dtype == theirs[0].dtype == np.float32
    assert ours[1:4] == theirs[1:4]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_trajectories_as_pendulum_v1_with_twice_the_action(seed: int) -> None:
    """Action a here is Pendulum-v1's float64 action 2a, over whole episodes through gym.make (TimeLimit 200),
    out-of-range actions (clipped on both sides) included."""
    ours, theirs = gym.make(ENV_ID), gym.make("Pendulum-v1")
    actions = np.random.default_rng(seed).uniform(-1.3, 1.3, size=(450, 1)).astype(np.float32)
    np.testing.assert_array_equal(ours.reset(seed=seed)[0], theirs.reset(seed=seed)[0])
    truncations = 0
    for action in actions:
        step = theirs.step(2.0 * action.astype(np.float64))
        assert_same_step(ours.step(action), step)
        if step[3]:
            truncations += 1
            np.testing.assert_array_equal(ours.reset()[0], theirs.reset()[0])
    assert truncations == 2


def test_gravity_argument_and_reset_options_match_pendulum_v1() -> None:
    ours, theirs = ContinuousPendulum(g=9.81), gym.make("Pendulum-v1", g=9.81).unwrapped
    options = {"x_init": np.pi / 2, "y_init": 0.5}
    np.testing.assert_array_equal(ours.reset(seed=5, options=options)[0], theirs.reset(seed=5, options=options)[0])
    assert abs(ours.state[1]) <= 0.5
    for action in np.linspace(-1, 1, 30, dtype=np.float32):
        assert_same_step(ours.step(np.array([action])), theirs.step(np.array([2.0 * action], dtype=np.float64)))


def test_state_assignment_matches_pendulum_v1() -> None:
    """Planning from a chosen state, as users do with Pendulum-v1's ``state``."""
    ours, theirs = ContinuousPendulum(), gym.make("Pendulum-v1").unwrapped
    ours.reset(seed=0)
    theirs.reset(seed=0)
    state = np.array([3.0, -7.5])
    ours.state, theirs.state = state, state.copy()
    np.testing.assert_array_equal(ours.state, state)
    for _ in range(10):
        assert_same_step(ours.step(np.array([-1.0], dtype=np.float32)), theirs.step(np.array([-2.0])))
    with pytest.raises(ValueError, match="shape"):
        ours.state = np.zeros(3)


def test_rewards_are_bounded_as_documented() -> None:
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    rewards = [env.step(np.array([a], dtype=np.float32))[1] for a in np.sign(np.sin(np.arange(200) / 7.0))]
    assert all(-16.2736044 <= r <= 0.0 for r in rewards)


def test_registration_and_name() -> None:
    assert gym.spec(ENV_ID).max_episode_steps == 200
    env = ContinuousPendulum()
    assert env.name == "ContinuousPendulum"
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert env.observation_space == gym.make("Pendulum-v1").observation_space
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", g=9.81)
    assert (envs.unwrapped.max_episode_steps, envs.unwrapped.g) == (200, 9.81)


def test_frames_draw_the_rod_at_its_length() -> None:
    """A rod of changed length is drawn at that length, its tip in the picture; the default rod as before."""

    def frame(**physics: float) -> np.ndarray:
        env = gym.make(ENV_ID, render_mode="rgb_array", **physics)
        env.reset(seed=0)
        env.unwrapped.state = np.array([0.0, 0.0])  # upright: the rod points to the top edge
        image = env.render()
        env.close()
        return image

    def reach(image: np.ndarray) -> float:
        """How far the rod's tip is above the pivot (the frame's centre), as a fraction of half the frame."""
        rows = np.flatnonzero(((image[..., 0] > 150) & (image[..., 1] < 120)).any(1))
        return (image.shape[0] / 2 - rows[0]) / (image.shape[0] / 2)

    default = frame()
    np.testing.assert_array_equal(default, frame(length=1.0))
    short, long = reach(frame(length=0.5)), reach(frame(length=3.0))
    assert short < 0.75 * reach(default) and 0.0 < short
    assert reach(default) < long < 1.0  # zoomed out: a 3 m rod still ends inside the picture
