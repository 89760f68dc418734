"""The sequence replay buffer returns contiguous windows of one environment, also after it wraps around."""

import copy

import numpy as np
import pytest
import torch

from ca11_agents.common.replay import SequenceReplayBuffer, _rng_bytes


def fill(buffer: SequenceReplayBuffer, steps: int, episode_len: int = 7) -> None:
    for t in range(steps):
        env_ids = np.arange(buffer.n_envs)
        obs = np.stack([np.full(buffer.obs_dim, 1000 * e + t) for e in env_ids]).astype(np.float32)
        buffer.add(obs, np.zeros((buffer.n_envs, 1)), np.full(buffer.n_envs, t), np.zeros(buffer.n_envs),
                   np.full(buffer.n_envs, t % episode_len == 0))


def test_windows_are_contiguous_per_env_after_wrapping():
    buffer = SequenceReplayBuffer(capacity=40, observation_space=2, action_dim=1, n_envs=2, seed=0)
    fill(buffer, 53)  # 20 slots per env: the first 33 steps were overwritten
    assert len(buffer) == 40
    batch = buffer.sample(256, 6)
    obs = batch["observations"][..., 0].numpy()
    env, step = obs // 1000, obs % 1000
    assert (env == env[:, :1]).all()  # never mixes environments
    assert (np.diff(step, axis=1) == 1).all()  # consecutive steps, never across the write head
    assert step.min() >= 33 and step.max() <= 52  # only the steps still stored
    assert np.array_equal(batch["is_first"].numpy(), (step % 7 == 0).astype(np.float32))


def test_save_load_round_trip_and_mismatch(tmp_path):
    buffer = SequenceReplayBuffer(capacity=30, observation_space=2, action_dim=1, seed=0)
    fill(buffer, 45)
    buffer.save(tmp_path / "replay.npz")
    other = SequenceReplayBuffer(capacity=30, observation_space=2, action_dim=1, seed=1)
    other.load(tmp_path / "replay.npz")
    for key in buffer.data:
        assert np.array_equal(buffer.sample(8, 4)[key].numpy(), other.sample(8, 4)[key].numpy(), equal_nan=True)
    with pytest.raises(ValueError, match="obs_dim=2"):
        SequenceReplayBuffer(capacity=30, observation_space=3, action_dim=1).load(tmp_path / "replay.npz")
    (tmp_path / "broken.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="broken.npz"):
        other.load(tmp_path / "broken.npz")


def test_cannot_sample_longer_windows_than_stored():
    buffer = SequenceReplayBuffer(capacity=10, observation_space=1, action_dim=1)
    fill(buffer, 3)
    assert not buffer.can_sample(4)
    with pytest.raises(ValueError, match="cannot sample 4"):
        buffer.sample(1, 4)


def test_end_episodes_writes_discounted_returns_of_finished_episodes(tmp_path):
    buffer = SequenceReplayBuffer(capacity=20, observation_space=1, action_dim=1, n_envs=2)
    gamma = 0.5
    # Env 0 terminates after 3 steps; env 1 is cut by a time limit after 3 steps (bootstrap 8), then runs on.
    for first, term in [(1, 0), (0, 0), (0, 1)]:
        buffer.add(np.zeros((2, 1)), np.zeros((2, 1)), np.array([1.0, 2.0]), np.array([term, 0.0]),
                   np.array([first, first]))
    buffer.end_episodes(np.array([True, True]), np.array([100.0, 8.0]), gamma)
    buffer.add(np.zeros((2, 1)), np.zeros((2, 1)), np.array([1.0, 2.0]), np.zeros(2), np.ones(2))
    returns = buffer.data["returns"][:, :4]
    np.testing.assert_allclose(returns[0, :3], [1 + 0.5 + 0.25, 1 + 0.5, 1])  # termination: no bootstrap
    np.testing.assert_allclose(returns[1, :3], [2 + 1 + 0.5 + 1, 2 + 1 + 2, 2 + 4])  # time limit: + gamma^k * 8
    assert np.isnan(returns[:, 3]).all()  # the running episodes have no return yet
    buffer.save(tmp_path / "replay.npz")
    loaded = SequenceReplayBuffer(capacity=20, observation_space=1, action_dim=1, n_envs=2)
    loaded.load(tmp_path / "replay.npz")
    np.testing.assert_array_equal(loaded.data["returns"], buffer.data["returns"])
    np.testing.assert_array_equal(loaded.episode_steps, [1, 1])  # the running episodes continue after a resume


def test_returns_older_than_a_given_age_are_sampled_as_unknown():
    buffer = SequenceReplayBuffer(capacity=40, observation_space=1, action_dim=1, n_envs=2, seed=0)
    fill(buffer, 53)  # wrapped: steps 33-52 stored per env, the newest at 52
    buffer.data["returns"][:] = 1.0  # every episode finished
    rng = copy.deepcopy(buffer.rng)
    every = buffer.sample(256, 6)
    buffer.rng = rng
    recent = buffer.sample(256, 6, returns_max_age=5)
    step = recent["observations"][..., 0].numpy() % 1000
    assert np.array_equal(step, every["observations"][..., 0].numpy() % 1000)  # the same windows, the same draws
    assert np.array_equal(np.isfinite(recent["returns"].numpy()), step >= 48)  # the 5 newest steps only
    assert (step < 48).any() and (step >= 48).any()
    assert torch.isfinite(every["returns"]).all()


def test_buffers_saved_without_returns_still_load(tmp_path):
    buffer = SequenceReplayBuffer(capacity=30, observation_space=2, action_dim=1, seed=0)
    fill(buffer, 10)
    old_format = {k: v for k, v in buffer.data.items() if k != "returns"}
    meta = np.array([1, 30, 2, 1, buffer.pos, buffer.count])
    rng = np.frombuffer(_rng_bytes(buffer.rng), np.uint8)
    np.savez(tmp_path / "old.npz", meta=meta, rng_state=rng, **old_format)
    loaded = SequenceReplayBuffer(capacity=30, observation_space=2, action_dim=1)
    loaded.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(loaded.data["observations"], buffer.data["observations"])
    assert np.isnan(loaded.data["returns"]).all()


def test_frames_and_dicts_keep_their_dtypes_through_save_and_load(tmp_path):
    from gymnasium import spaces

    space = spaces.Dict({"pixels": spaces.Box(0, 255, (3, 8, 8), np.uint8), "state": spaces.Box(-1, 1, (2,))})
    buffer = SequenceReplayBuffer(capacity=20, observation_space=space, action_dim=2, seed=0)
    assert SequenceReplayBuffer.bytes_per_step(space, 2) == 3 * 8 * 8 + 2 * 4 + 2 * 4 + 16
    for t in range(12):
        obs = {"pixels": np.full((1, 3, 8, 8), t, np.uint8), "state": np.full((1, 2), t / 10, np.float32)}
        buffer.add(obs, np.zeros((1, 2)), np.ones(1), np.zeros(1), np.array([t == 0]))
    batch = buffer.sample(4, 5)
    pixels = batch["observations"]["pixels"]
    assert pixels.dtype == torch.uint8 and pixels.shape == (4, 5, 3, 8, 8)
    assert batch["observations"]["state"].dtype == torch.float32
    buffer.save(tmp_path / "replay.npz")
    loaded = SequenceReplayBuffer(capacity=20, observation_space=space, action_dim=2)
    loaded.load(tmp_path / "replay.npz")
    for key, value in buffer.data.items():
        np.testing.assert_array_equal(loaded.data[key], value)
    # a buffer of float frames is another layout: named, and the buffer is left as it was
    floats = SequenceReplayBuffer(capacity=20, observation_space=spaces.Box(0, 255, (3, 8, 8), np.float32),
                                  action_dim=2)  # fmt: skip
    floats.save(tmp_path / "floats.npz")
    with pytest.raises(ValueError, match="observations"):
        loaded.load(tmp_path / "floats.npz")
    np.testing.assert_array_equal(loaded.data["observations.pixels"], buffer.data["observations.pixels"])


def test_a_compressed_member_that_would_inflate_is_refused_before_reading(tmp_path):
    buffer = SequenceReplayBuffer(capacity=30, observation_space=2, action_dim=1, seed=0)
    fill(buffer, 10)
    buffer.save(tmp_path / "replay.npz")
    with np.load(tmp_path / "replay.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["observations"] = np.zeros((1, 30_000_000, 2), np.float32)  # 240 MB that zip to a few hundred kB
    np.savez_compressed(tmp_path / "bomb.npz", **arrays)
    assert (tmp_path / "bomb.npz").stat().st_size < 2_000_000
    with pytest.raises(ValueError, match="bomb.npz"):
        buffer.load(tmp_path / "bomb.npz")
