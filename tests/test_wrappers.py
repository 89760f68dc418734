"""ca11_gym.wrappers: pixel observations from every env's renderer, and action repeat."""

from __future__ import annotations

import math
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ca11_gym
from ca11_gym.envs.sequence import SequenceEnvironment
from ca11_gym.wrappers import ActionRepeat, PixelObservation, resize_frame

SEQUENCE_ID = "CA11/SequenceEnvironment-v0"


def quiet_check_env(env: gym.Env) -> None:
    """``check_env`` on a wrapped env, without its warning that the env is wrapped (that is the point here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        check_env(env, skip_render_check=True)  # its render check rebuilds the env with render_mode="human"


# --- PixelObservation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
@pytest.mark.parametrize("include_state", [False, True], ids=["pixels", "pixels+state"])
def test_pixel_observation_is_the_resized_frame(env_id: str, include_state: bool) -> None:
    env = PixelObservation(gym.make(env_id, render_mode="rgb_array"), include_state=include_state)
    plain = gym.make(env_id)  # same seed and actions: the "state" entry must be its observation
    obs, _ = env.reset(seed=0)
    state, _ = plain.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(5):
        assert obs in env.observation_space
        pixels = obs["pixels"] if include_state else obs
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
        full = env.render()  # the env's own frame stays full size, for RecordVideo
        assert full.shape[:2] != (64, 64)
        np.testing.assert_array_equal(pixels, resize_frame(full, 64))
        if include_state:
            np.testing.assert_array_equal(obs["state"], state)
        action = env.action_space.sample()
        obs, *_ = env.step(action)
        state, *_ = plain.step(action)


@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
@pytest.mark.parametrize("include_state", [False, True], ids=["pixels", "pixels+state"])
def test_check_env_passes_on_pixel_envs(env_id: str, include_state: bool) -> None:
    quiet_check_env(PixelObservation(gym.make(env_id, render_mode="rgb_array"), include_state=include_state))


def test_pixel_size_argument() -> None:
    env = PixelObservation(gym.make(SEQUENCE_ID, render_mode="rgb_array"), size=32)
    assert env.observation_space.shape == (32, 32, 3)
    assert env.reset(seed=0)[0].shape == (32, 32, 3)


@pytest.mark.parametrize("render_mode", [None, "human"])
def test_pixel_observation_needs_rgb_array_rendering(render_mode: str | None) -> None:
    with pytest.raises(ValueError, match="rgb_array"):
        PixelObservation(gym.make(SEQUENCE_ID, render_mode=render_mode))


@pytest.mark.parametrize("size", [0, -64, 2.5, True])
def test_pixel_observation_rejects_bad_sizes(size: object) -> None:
    with pytest.raises(ValueError, match="size"):
        PixelObservation(gym.make(SEQUENCE_ID, render_mode="rgb_array"), size=size)


def test_pixel_env_pickles_and_rebuilds_from_its_spec() -> None:
    env = PixelObservation(gym.make(SEQUENCE_ID, render_mode="rgb_array"), include_state=True)
    first, _ = env.reset(seed=4)
    for copy in (pickle.loads(pickle.dumps(env)), gym.make(env.spec)):
        assert isinstance(copy, PixelObservation) and copy.include_state
        obs, _ = copy.reset(seed=4)
        np.testing.assert_array_equal(obs["pixels"], first["pixels"])


def test_resize_frame_keeps_orientation_and_colours() -> None:
    frame = np.zeros((400, 600, 3), dtype=np.uint8)
    frame[:200] = (255, 0, 0)  # top half red
    frame[200:, :300] = (0, 0, 255)  # bottom-left quarter blue, bottom-right black
    small = resize_frame(frame, 64)
    assert small.shape == (64, 64, 3) and small.dtype == np.uint8
    # Away from region borders, where smoothscale averages neighbours, each region keeps its colour (up to the
    # few levels its fixed-point averaging loses: 255 comes out as 253).
    region = {"top": small[2:30, 2:62], "bottom-left": small[34:62, 2:30], "bottom-right": small[34:62, 34:62]}
    np.testing.assert_allclose(region["top"], np.broadcast_to((255, 0, 0), (28, 60, 3)), atol=3)
    np.testing.assert_allclose(region["bottom-left"], np.broadcast_to((0, 0, 255), (28, 28, 3)), atol=3)
    np.testing.assert_array_equal(region["bottom-right"], 0)


# --- ActionRepeat -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("repeat", [1, 3])
def test_action_repeat_sums_rewards_and_stops_at_episode_end(repeat: int) -> None:
    """Against a reference env stepped by hand: same sums, same last observation, and a last, shorter chunk."""
    length = 7
    rng = np.random.default_rng(0)
    cues = rng.choice([-1.0, 1.0], size=length)
    reference = SequenceEnvironment(memory_size=1, episode_length=length)
    wrapped = ActionRepeat(SequenceEnvironment(memory_size=1, episode_length=length), repeat)
    reference.reset(options={"cues": cues})
    wrapped.reset(options={"cues": cues})
    chunks = math.ceil(length / repeat)
    for i, action in enumerate(rng.uniform(-1, 1, size=(chunks, 1))):
        expected = 0.0
        for _ in range(repeat):
            ref_obs, reward, ref_terminated, _, _ = reference.step(action)
            expected += reward
            if ref_terminated:
                break
        obs, reward, terminated, truncated, _ = wrapped.step(action)
        assert reward == pytest.approx(expected)
        np.testing.assert_array_equal(obs, ref_obs)
        assert terminated == ref_terminated == (i == chunks - 1) and not truncated


@pytest.mark.parametrize("repeat", [0, -2, 2.5, True, "3"])
def test_action_repeat_rejects_bad_repeats(repeat: object) -> None:
    with pytest.raises(ValueError, match="repeat"):
        ActionRepeat(SequenceEnvironment(), repeat)


def test_action_repeat_rebuilds_from_its_spec() -> None:
    env = gym.make(ActionRepeat(gym.make(SEQUENCE_ID), repeat=2).spec)
    assert isinstance(env, ActionRepeat) and env.repeat == 2


@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
def test_check_env_passes_with_action_repeat(env_id: str) -> None:
    quiet_check_env(ActionRepeat(gym.make(env_id), repeat=2))
