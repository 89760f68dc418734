"""The dream: a real episode beside the world model's open-loop imagination, drawn by the env's own renderer.

Tiny learners (Dreamer on vectors and on pixels, the world-model planner, the RSSM planner on a Dict of pixels and
state with discrete actions) are trained for a few hundred steps; what is checked is what a user of the picture
relies on: the imagination sees nothing after the context, imagined states are drawn exactly as the env draws real
ones, the video has one frame per step and both panels, and the divergence is the documented one.
"""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest

import ca11_gym  # noqa: F401  (registers the CA11 environments)
from ca11_agents import DreamerAgent, RSSMAgent, WorldModelAgent
from ca11_agents.experiments.dream import (
    DreamResult,
    dream,
    imagine_episode,
    imagined_frame,
    plot_dream,
    write_dream_video,
)
from ca11_gym.wrappers import PixelObservation

RSSM_SIZES = dict(hidden_dim=16, state_dim=16, classes=4, units=16, bins=31, cnn_depth=4)
TINY_DREAMER = dict(
    learning_starts=100, batch_size=3, seq_len=6, imagination_horizon=3, imagination_starts=8, train_freq=8,
    buffer_size=400, policy_kwargs=dict(**RSSM_SIZES, actor_hidden_dims=[16], critic_hidden_dims=[16]),
)  # fmt: skip
TINY_PLANNER = dict(horizon=3, planner_kwargs=dict(candidates=8, elites=2, iterations=2))


def pixels(env_id: str, include_state: bool = False) -> gym.Env:
    return PixelObservation(gym.make(env_id, render_mode="rgb_array"), size=16, include_state=include_state)


@pytest.fixture(scope="module")
def cartpole_dreamer() -> DreamerAgent:
    return DreamerAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=0, **TINY_DREAMER).learn(200)


def learner_actions(agent, result: DreamResult) -> np.ndarray:
    return agent.policy.actions.from_env(result.actions)


def fake_result(steps: int = 5, context: int = 2, frames: bool = True) -> DreamResult:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(steps, 3)).astype(np.float32)
    real_frames = rng.integers(0, 255, (steps, 100, 200, 3), dtype=np.uint8)
    return DreamResult(
        real_observations=obs, imagined_observations=obs + 0.1, real_rewards=np.ones(steps - 1),
        imagined_rewards=np.zeros(steps - 1), actions=np.zeros((steps - 1, 1), np.float32),
        observation_error=np.linspace(0.1, 1.0, steps), reward_error=np.ones(steps - 1), real_frames=real_frames,
        imagined_frames=real_frames[:, ::-1].copy() if frames else None, context=context, episode_length=steps - 1,
    )  # fmt: skip


def test_the_video_has_a_frame_per_step_and_both_panels_side_by_side(cartpole_dreamer, tmp_path):
    result = dream(cartpole_dreamer, "CA11/ContinuousCartPole-v0", seed=0, context=3)
    assert len(result) == result.episode_length + 1  # the whole episode: its initial observation and each step's
    assert result.real_frames.shape == result.imagined_frames.shape == (len(result), 400, 600, 3)
    written = write_dream_video(result, tmp_path / "dream.gif")
    video = iio.imread(tmp_path / "dream.gif", index=None)
    assert written == len(video) == len(result)
    assert video.shape[2] == result.real_frames.shape[2] + result.imagined_frames.shape[2]
    assert video.shape[1] > result.real_frames.shape[1]  # the title strip and the divergence plot below
    short = dream(cartpole_dreamer, "CA11/ContinuousCartPole-v0", seed=0, context=3, horizon=4)
    assert len(short) == 7 == write_dream_video(short, tmp_path / "short.gif")
    assert len(iio.imread(tmp_path / "short.gif", index=None)) == 7


def test_the_dream_compares_the_real_episode_with_the_documented_divergence(cartpole_dreamer):
    result = dream(cartpole_dreamer, "CA11/ContinuousCartPole-v0", seed=0, context=3)
    env = gym.make("CA11/ContinuousCartPole-v0")
    first, _ = env.reset(seed=0)
    assert np.array_equal(result.real_observations[0], first)  # the real episode starts from the seed's state
    for t, action in enumerate(result.actions[:5]):  # and is the agent's, replayed exactly
        obs, reward, *_ = env.step(action)
        assert np.array_equal(result.real_observations[t + 1], obs) and result.real_rewards[t] == reward
    real, imagined = result.real_observations.astype(np.float64), result.imagined_observations.astype(np.float64)
    assert imagined.shape == real.shape and result.imagined_observations.dtype == np.float32
    expected = (((imagined - real) / real.std(0)) ** 2).mean(1)  # per dimension, by the real episode's std
    assert np.allclose(result.observation_error, expected)
    assert np.allclose(result.reward_error, np.abs(result.imagined_rewards - result.real_rewards))
    assert len(result.real_rewards) == len(result.actions) == len(result) - 1


def test_the_rssm_imagines_open_loop_after_the_context(cartpole_dreamer):
    result = dream(cartpole_dreamer, "CA11/ContinuousCartPole-v0", seed=0, context=4)
    real, actions, c = result.real_observations, learner_actions(cartpole_dreamer, result), result.context
    imagined, rewards = imagine_episode(cartpole_dreamer, real, actions, context=c)
    # dream() imagines with the learner's own actions; from_env's round trip differs in the last float bits only
    assert np.allclose(imagined, result.imagined_observations, atol=1e-4)
    assert np.allclose(rewards, result.imagined_rewards, atol=1e-4)
    later = real.copy()
    later[c:] = np.random.default_rng(0).normal(0.0, 3.0, later[c:].shape)  # what really came after the context
    blind, blind_rewards = imagine_episode(cartpole_dreamer, later, actions, context=c)
    assert np.array_equal(blind, imagined) and np.array_equal(blind_rewards, rewards)
    earlier = real.copy()
    earlier[:c] = np.random.default_rng(1).normal(0.0, 3.0, earlier[:c].shape)  # what the model observed
    seen, _ = imagine_episode(cartpole_dreamer, earlier, actions, context=c)
    assert not np.allclose(seen[c:], imagined[c:], atol=1e-3)  # does shape the dream
    with pytest.raises(ValueError, match="context"):
        imagine_episode(cartpole_dreamer, real, actions, context=len(real))


@pytest.mark.parametrize(
    "env_id", ["CA11/ContinuousCartPole-v0", "CartPole-v1", "CA11/ContinuousPendulum-v0", "Pendulum-v1"]
)
def test_imagined_states_are_drawn_by_the_envs_renderer(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
    real_frame, state = env.render(), np.array(env.unwrapped.state)
    drawn = imagined_frame(env, obs)  # the observation the env gave: the frame the env drew
    assert drawn.shape == real_frame.shape and drawn.dtype == np.uint8
    assert np.any(drawn != real_frame, -1).mean() < 1e-3  # float32 observations: at most a few edge pixels differ
    assert np.array_equal(env.unwrapped.state, state)  # the env's own state is put back
    other = obs.copy()
    if "Pendulum" in env_id:
        other[:2] = [np.cos(2.0), np.sin(2.0)]  # another angle, recovered with atan2
    else:
        other[2] = 0.2  # another pole angle
    assert np.any(imagined_frame(env, other) != real_frame, -1).mean() > 1e-3
    assert np.array_equal(env.render(), real_frame)
    sequence = gym.make("CA11/SequenceEnvironment-v0", render_mode="rgb_array")
    assert imagined_frame(sequence, sequence.reset(seed=0)[0]) is None  # no renderer for its imagined states


def test_envs_without_a_renderer_for_imagined_states_get_a_panel(tmp_path):
    result = fake_result(frames=False)
    assert write_dream_video(result, tmp_path / "panel.gif", fps=5) == len(result)
    video = iio.imread(tmp_path / "panel.gif", index=None)
    assert video.shape[0] == len(result) and video.shape[2] == 2 * 200
    right = video[:, 28 : 28 + 100, 200:, :3]  # under the title strip: the panel (mostly white), not a frame
    assert (right > 200).all(-1).mean() > 0.8 and (video[:, 28 : 28 + 100, :200, :3] > 200).all(-1).mean() < 0.5


def test_only_gif_and_mp4_are_written(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"dream\.avi must end in \.gif or \.mp4"):
        write_dream_video(fake_result(), tmp_path / "dream.avi")
    import importlib.util

    find_spec = importlib.util.find_spec
    missing = lambda name, *args: None if name == "imageio_ffmpeg" else find_spec(name, *args)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    with pytest.raises(ValueError, match=r"pip install imageio-ffmpeg.*\.gif"):
        write_dream_video(fake_result(), tmp_path / "dream.mp4")
    assert not (tmp_path / "dream.mp4").exists()


def test_mp4_through_imageios_ffmpeg_plugin(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    result = fake_result(steps=6)
    odd = {k: getattr(result, k)[:, :99, :151].copy() for k in ("real_frames", "imagined_frames")}
    result = DreamResult(**{**result.__dict__, **odd})  # odd sides: H.264 needs even ones, the writer pads
    assert write_dream_video(result, tmp_path / "dream.mp4", fps=10) == 6
    import imageio.v2 as imageio

    with imageio.get_reader(tmp_path / "dream.mp4") as reader:
        frames = [frame for frame in reader]  # list() asks the reader its length: infinite for a stream
    assert len(frames) == 6 and frames[0].shape[1] == 2 * 151 and frames[0].shape[0] % 2 == 0


def test_the_env_must_render_frames(cartpole_dreamer):
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        dream(cartpole_dreamer, gym.make("CA11/ContinuousCartPole-v0"))


def test_a_world_model_agent_dreams_and_plots(tmp_path):
    agent = WorldModelAgent(
        "MlpPolicy", "Pendulum-v1", seed=0, learning_starts=40, batch_size=4, seq_len=4, train_freq=8,
        buffer_size=400, **TINY_PLANNER,
        policy_kwargs=dict(latent_dim=4, vae_hidden_dims=[16], dynamics_hidden_dims=[16], reward_hidden_dims=[16],
                           ensemble_size=2),
    ).learn(100)  # fmt: skip
    result = dream(agent, "Pendulum-v1", seed=2, context=4, horizon=8)
    assert len(result) == 12 and result.imagined_observations.shape == (12, 3)
    assert result.imagined_frames.shape == result.real_frames.shape == (12, 500, 500, 3)
    assert np.isfinite(result.observation_error).all() and np.isfinite(result.imagined_rewards).all()
    later = result.real_observations.copy()
    later[4:] += 1.0
    blind, _ = imagine_episode(agent, later, learner_actions(agent, result), context=4)
    same, _ = imagine_episode(agent, result.real_observations, learner_actions(agent, result), context=4)
    assert np.array_equal(blind, same)  # the model's memory is the last observed step alone
    figure = plot_dream(result, tmp_path / "dream.png")
    assert (tmp_path / "dream.png").stat().st_size > 0 and len(figure.axes) >= 1 + 3  # divergence, each dimension


def test_a_pixel_agent_dreams_images(tmp_path):
    agent = DreamerAgent("CnnPolicy", pixels("CA11/ContinuousPendulum-v0"), seed=0,
                         **{**TINY_DREAMER, "learning_starts": 40}).learn(100)  # fmt: skip
    result = dream(agent, pixels("CA11/ContinuousPendulum-v0"), seed=0, context=2, horizon=5)
    imagined = result.imagined_observations
    assert imagined.shape == result.real_observations.shape == (7, 16, 16, 3) and imagined.dtype == np.uint8
    assert result.imagined_frames.shape == result.real_frames.shape == (7, 500, 500, 3)
    centres = ((np.arange(16) + 0.5) * 500 / 16).astype(int)  # the decoded image itself, upscaled
    assert np.array_equal(result.imagined_frames[:, centres][:, :, centres], imagined)
    assert write_dream_video(result, tmp_path / "pixels.gif") == 7


def test_an_rssm_planner_dreams_dict_observations_under_discrete_actions(tmp_path):
    agent = RSSMAgent(
        "MultiInputPolicy", pixels("CartPole-v1", include_state=True), seed=0, learning_starts=40, batch_size=3,
        seq_len=6, train_freq=8, buffer_size=400, **TINY_PLANNER, policy_kwargs=RSSM_SIZES,
    ).learn(100)  # fmt: skip
    result = dream(agent, pixels("CartPole-v1", include_state=True), seed=0, context=3, horizon=4)
    imagined = result.imagined_observations
    assert imagined["pixels"].shape == (7, 16, 16, 3) and imagined["pixels"].dtype == np.uint8
    assert imagined["state"].shape == (7, 4) and result.actions.shape == (6,)
    assert result.imagined_frames.shape == result.real_frames.shape
    later = {k: v.copy() for k, v in result.real_observations.items()}
    later["pixels"][3:], later["state"][3:] = 0, 5.0
    actions = learner_actions(agent, result)
    blind, blind_rewards = imagine_episode(agent, later, actions, context=3)
    same, rewards = imagine_episode(agent, result.real_observations, actions, context=3)
    assert all(np.array_equal(blind[k], same[k]) for k in same) and np.array_equal(blind_rewards, rewards)
    assert write_dream_video(result, tmp_path / "dict.gif") == 7
