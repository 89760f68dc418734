"""Experience collection and minibatch sampling (ca11_agents.data)."""

from __future__ import annotations

import numpy as np
import pytest

from ca11_agents.data import (
    STEP_KEYS,
    collect_sequence_data,
    collect_world_model_data,
    sample_sequences,
    sample_transitions,
    train_test_split,
)
from ca11_gym import ContinuousCartPole, ContinuousPendulum, SequenceEnvironment


def episode_lengths(data: dict[str, np.ndarray]) -> list[int]:
    ends = np.flatnonzero(data["terminated"] | data["truncated"])
    return np.diff(np.concatenate([[-1], ends])).tolist()


def test_world_model_data_layout_and_the_notebook_call():
    data = collect_world_model_data(ContinuousCartPole(), steps=1000, episodes=5, seed=0)
    assert set(data) == set(STEP_KEYS)
    assert data["observations"].shape == data["next_observations"].shape == (1000, 4)
    assert data["actions"].shape == (1000, 1) and data["rewards"].shape == (1000,)
    assert data["observations"].dtype == data["rewards"].dtype == np.float32
    assert data["terminated"].dtype == data["truncated"].dtype == np.bool_
    # Transitions chain within an episode: o_{t+1} of one row is o_t of the next.
    cont = ~(data["terminated"] | data["truncated"])[:-1]
    np.testing.assert_array_equal(data["next_observations"][:-1][cont], data["observations"][1:][cont])
    assert data["truncated"][-1] or data["terminated"][-1]  # the budget's end cuts the last episode


def test_episodes_cap_each_episode_so_long_episodes_do_not_fill_the_budget():
    """Pendulum never terminates: with steps=600, episodes=3, each episode is cut at 200 steps."""
    data = collect_world_model_data(ContinuousPendulum(), steps=600, episodes=3, seed=0)
    assert episode_lengths(data) == [200, 200, 200]
    assert data["truncated"].sum() == 3 and not data["terminated"].any()
    unlimited = collect_world_model_data(ContinuousPendulum(), steps=300, seed=0)
    assert episode_lengths(unlimited) == [300]


def test_episodes_alone_collects_whole_episodes_from_an_env_id():
    data = collect_world_model_data("CA11/SequenceEnvironment-v0", steps=None, episodes=3, seed=0)
    assert episode_lengths(data) == [25, 25, 25] and data["terminated"].sum() == 3
    with pytest.raises(ValueError, match="steps, episodes or both"):
        collect_world_model_data(ContinuousCartPole(), steps=None, episodes=None)
    with pytest.raises(ValueError, match=">= 1"):
        collect_world_model_data(ContinuousCartPole(), steps=0)


def test_collection_is_reproducible_with_a_seed():
    a = collect_world_model_data(ContinuousCartPole(), steps=100, seed=3)
    b = collect_world_model_data(ContinuousCartPole(), steps=100, seed=3)
    c = collect_world_model_data(ContinuousCartPole(), steps=100, seed=4)
    for key in STEP_KEYS:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["actions"], c["actions"])


def test_callable_policy_and_action_clipping():
    data = collect_world_model_data(ContinuousCartPole(), steps=50, policy=lambda obs: np.array([5.0]), seed=0)
    np.testing.assert_array_equal(data["actions"], 1.0)  # stored as executed: clipped into [-1, 1]


class RecurrentModel:
    """An SB3-style model whose state counts the steps of the current episode."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, int | None]] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        self.calls.append((bool(episode_start[0]), state))
        steps = 0 if state is None or episode_start[0] else state
        return np.array([0.1 * (steps % 3)], dtype=np.float32), steps + 1


def test_sb3_style_policy_gets_its_state_and_episode_starts():
    model = RecurrentModel()
    episodes = collect_sequence_data(SequenceEnvironment(), episodes=2, episode_length=4, policy=model, seed=0)
    assert [start for start, _ in model.calls] == [True, False, False, False] * 2
    assert [state for _, state in model.calls] == [None, 1, 2, 3] * 2  # carried within, reset between episodes
    np.testing.assert_allclose(episodes[1]["actions"][:, 0], [0.0, 0.1, 0.2, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="policy must be"):
        collect_sequence_data(SequenceEnvironment(), episodes=1, policy=42)


def test_sequence_data_layout():
    episodes = collect_sequence_data(SequenceEnvironment(memory_size=5), episodes=4, episode_length=20, seed=0)
    assert len(episodes) == 4
    for ep in episodes:
        assert ep["observations"].shape == (20, 2) and ep["actions"].shape == (20, 1) and ep["rewards"].shape == (20,)
        np.testing.assert_array_equal(ep["is_first"], np.arange(20) == 0)
        assert ep["truncated"][-1] and not ep["terminated"].any()  # cut at 20 of the env's 25 steps
    whole = collect_sequence_data(SequenceEnvironment(), episodes=1, seed=0)[0]
    assert len(whole["rewards"]) == 25 and whole["terminated"][-1] and not whole["truncated"].any()


def test_sample_sequences_draws_consecutive_windows_inside_episodes():
    episodes = collect_sequence_data(SequenceEnvironment(), episodes=6, episode_length=12, seed=0)
    episodes.append({k: v[:3] for k, v in episodes[0].items()})  # too short for a window: never sampled
    batch = sample_sequences(episodes, batch_size=32, seq_len=8, rng=np.random.default_rng(0))
    assert batch["observations"].shape == (32, 8, 2) and batch["rewards"].shape == (32, 8)
    np.testing.assert_array_equal(batch["next_observations"][:, :-1], batch["observations"][:, 1:])
    assert batch["is_first"][:, 0].all() and not batch["is_first"][:, 1:].any()
    assert not episodes[0]["is_first"][1:].any()  # the episodes themselves are not modified
    with pytest.raises(ValueError, match="seq_len=13"):
        sample_sequences(episodes, 4, 13, np.random.default_rng(0))


def test_split_and_sample_transitions():
    data = collect_world_model_data(ContinuousCartPole(), steps=100, seed=0)
    train, test = train_test_split(data, 0.8)
    assert len(train["rewards"]) == 80 and len(test["rewards"]) == 20
    np.testing.assert_array_equal(test["observations"], data["observations"][80:])  # in order: later episodes
    batch = sample_transitions(train, 64, np.random.default_rng(0))
    assert batch["observations"].shape == (64, 4) and set(batch) == set(STEP_KEYS)
    with pytest.raises(ValueError, match="train_fraction"):
        train_test_split(data, 1.0)
