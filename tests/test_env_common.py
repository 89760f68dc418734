"""The contract every registered environment keeps: Gymnasium's and SB3's checkers, seeding, rendering, action
validation, pickling; and, for the two physics environments, that each vector twin's sub-environments step exactly
like the single environment."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ca11_gym
from ca11_gym.envs.utils import validate_action, validate_batch_action, validate_scalar_action

PHYSICS_IDS = ("CA11/ContinuousCartPole-v0", "CA11/ContinuousPendulum-v0")
# CartPole-v1's observation space has infinite velocity bounds, and so has ours: the checkers say so.
KNOWN_WARNINGS = ("observation space minimum value is -infinity", "observation space maximum value is infinity")


def make_vec(env_id: str, num_envs: int, **kwargs) -> gym.vector.VectorEnv:
    """The numpy vector twin, as users get it."""
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)


def rollout(env: gym.Env, seed: int, actions: np.ndarray) -> list[tuple]:
    """Every (obs, reward, terminated, truncated) of a run through ``actions``, resetting after each episode."""
    obs, _ = env.reset(seed=seed)
    transitions = [(obs, 0.0, False, False)]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        transitions.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            transitions.append((obs, 0.0, False, False))
    return transitions


@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
def test_passes_gymnasium_and_sb3_env_checkers(env_id: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gym.make(env_id).unwrapped)  # unwrapped, as the checker asks; it also renders in every mode
        sb3_check_env(gym.make(env_id))
    unexpected = [str(w.message) for w in caught if not any(k in str(w.message) for k in KNOWN_WARNINGS)]
    assert unexpected == []


def test_make_imports_the_package_from_the_id_prefix() -> None:
    code = (
        "import gymnasium as gym, numpy as np\n"
        "env = gym.make('ca11_gym:CA11/ContinuousPendulum-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "assert obs.shape == (3,) and env.spec.max_episode_steps == 200\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
def test_same_seed_same_trajectory(env_id: str) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, size=(300, 1)).astype(np.float32)
    first, second = (rollout(gym.make(env_id), seed=7, actions=actions) for _ in range(2))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:] == b[1:]
    other = rollout(gym.make(env_id), seed=8, actions=actions)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))


@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
def test_rgb_array_frames_show_the_state(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    for _ in range(5):
        env.step(np.ones(env.action_space.shape, dtype=np.float32))
    later = env.render()
    for frame in (first, later):
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.size > 0
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 2  # something is drawn on the background
    assert not np.array_equal(first, later)
    env.close()


@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
def test_vector_render_returns_frames_of_the_first_sub_envs(env_id: str) -> None:
    envs = make_vec(env_id, num_envs=3, render_mode="rgb_array")
    envs.reset(seed=0)
    frames = envs.render()
    assert 1 <= len(frames) <= 3
    assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 for f in frames)
    envs.close()


BAD_ACTIONS = {
    "nan": lambda shape: np.full(shape, np.nan, dtype=np.float32),
    "inf": lambda shape: np.full(shape, np.inf, dtype=np.float32),
    "-inf": lambda shape: np.full(shape, -np.inf),
    "wrong shape": lambda shape: np.zeros((*shape[:-1], 2), dtype=np.float32),
    "extra axis": lambda shape: np.zeros((*shape, 1), dtype=np.float32),
    "string": lambda shape: "left",
    "None": lambda shape: None,
    "object array": lambda shape: np.full(shape, None, dtype=object),
}


@pytest.mark.parametrize("bad", BAD_ACTIONS)
@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
def test_bad_actions_raise_value_error_naming_env_and_shape(env_id: str, bad: str) -> None:
    env = gym.make(env_id).unwrapped  # the passive checker would only warn first
    env.reset(seed=0)
    with pytest.raises(ValueError, match=rf"{env.name}.*\(1,\)"):
        env.step(BAD_ACTIONS[bad]((1,)))

    envs = make_vec(env_id, num_envs=3)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=rf"{envs.unwrapped.name}.*\(3, 1\)"):
        envs.step(BAD_ACTIONS[bad]((3, 1)))


@pytest.mark.parametrize(
    "action",
    [
        np.array([0.25], np.float32),
        np.array([-1.0]),
        np.array([3.5], np.float32),
        np.array([-2.0]),
        np.array([1]),
        [0.5],
        0.75,
        np.float32(-0.5),
        np.array(0.1),
    ],
    ids=repr,
)
def test_fast_action_checks_agree_with_validate_action(action: object) -> None:
    """The environments' shortcuts for the common case return what validate_action returns, for every input."""
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert validate_scalar_action(action, space, "Env") == validate_action(action, space, "Env")[0]
    batch = np.stack([np.asarray(action).reshape(1)] * 3)  # (1,) -> (3, 1)
    expected = validate_action(batch, space, "Env", 3)
    np.testing.assert_array_equal(validate_batch_action(batch, space, "Env", 3), expected)


@pytest.mark.parametrize("env_id", PHYSICS_IDS)
def test_out_of_range_actions_are_clipped(env_id: str) -> None:
    clipped, reference = gym.make(env_id), gym.make(env_id)
    clipped.reset(seed=3)
    reference.reset(seed=3)
    for big in (5.0, -1e30, 1.5):
        got = clipped.step(np.array([big], dtype=np.float64))
        want = reference.step(np.array([np.clip(big, -1, 1)], dtype=np.float32))
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1:4] == want[1:4]

    envs, reference_envs = make_vec(env_id, 2), make_vec(env_id, 2)
    envs.reset(seed=3)
    reference_envs.reset(seed=3)
    got = envs.step(np.array([[7.0], [-3.0]]))
    want = reference_envs.step(np.array([[1.0], [-1.0]], dtype=np.float32))
    for g, w in zip(got[:4], want[:4]):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
def test_pickled_env_continues_identically(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=1)
    env.render()  # a renderer (pygame surfaces) exists and must not break pickling
    actions = np.random.default_rng(1).uniform(-1, 1, size=(40, 1)).astype(np.float32)
    for action in actions[:5]:
        env.step(action)
    copy = pickle.loads(pickle.dumps(env))
    for action in actions[5:]:
        original, restored = env.step(action), copy.step(action)
        np.testing.assert_array_equal(original[0], restored[0])
        assert original[1:4] == restored[1:4]
        if original[2] or original[3]:
            np.testing.assert_array_equal(env.reset()[0], copy.reset()[0])
    assert copy.render().shape == env.render().shape

    envs = make_vec(env_id, num_envs=4)
    envs.reset(seed=1)
    envs_copy = pickle.loads(pickle.dumps(envs))
    batch = np.repeat(actions[:, None], 4, axis=1)  # (T, 1) -> (T, 4, 1)
    for action in batch:
        for a, b in zip(envs.step(action)[:4], envs_copy.step(action)[:4]):
            np.testing.assert_array_equal(a, b)


# A starting observation of each physics env: every state variable drawn from a small interval.
IS_START_OBS = {
    "CA11/ContinuousCartPole-v0": lambda obs: bool(np.all(np.abs(obs) <= 0.05)),
    "CA11/ContinuousPendulum-v0": lambda obs: bool(abs(obs[2]) <= 1.0),
}


@pytest.mark.parametrize("env_id", PHYSICS_IDS)
def test_vector_twin_with_one_sub_env_is_the_single_env(env_id: str) -> None:
    """With num_envs=1 the vector env (its time limit passed by make_vec from the registration) equals a single
    env made with gym.make and reset whenever an episode ends, autoresets included."""
    env, envs = gym.make(env_id), make_vec(env_id, num_envs=1)
    actions = np.random.default_rng(0).uniform(-1.2, 1.2, size=(1200, 1, 1)).astype(np.float32)
    obs, _ = env.reset(seed=5)
    np.testing.assert_array_equal(envs.reset(seed=5)[0][0], obs)
    done, episodes = False, 0
    for action in actions:
        if done:  # next-step autoreset: the reset observation, reward 0, not terminated nor truncated
            (obs, _), reward, terminated, truncated = env.reset(), 0.0, False, False
            episodes += 1
        else:
            obs, reward, terminated, truncated, _ = env.step(action[0])
        batch_obs, batch_reward, batch_terminated, batch_truncated, _ = envs.step(action)
        np.testing.assert_array_equal(batch_obs[0], obs)
        assert (batch_reward[0], batch_terminated[0], batch_truncated[0]) == (reward, terminated, truncated)
        done = terminated or truncated
    assert episodes >= 3


@pytest.mark.parametrize("env_id", PHYSICS_IDS)
def test_vector_sub_envs_step_like_single_envs(env_id: str) -> None:
    """Sub-env i starts where a single env is after reset(seed=s) and i more resets, steps exactly like it until
    its episode ends, and starts a new episode on the following step."""
    num_envs, limit = 4, 100
    envs = make_vec(env_id, num_envs=num_envs, max_episode_steps=limit)
    batch_obs, _ = envs.reset(seed=11)
    singles = []
    for i in range(num_envs):
        single = gym.make(env_id, max_episode_steps=limit)
        obs, _ = single.reset(seed=11)
        for _ in range(i):
            obs, _ = single.reset()
        np.testing.assert_array_equal(batch_obs[i], obs)
        singles.append(single)

    actions = np.random.default_rng(2).uniform(-1, 1, size=(limit + 1, num_envs, 1)).astype(np.float32)
    ended_at: list[int | None] = [None] * num_envs
    for t, action in enumerate(actions):
        obs, reward, terminated, truncated, _ = envs.step(action)
        for i, single in enumerate(singles):
            if ended_at[i] is None:
                s_obs, s_reward, s_terminated, s_truncated, _ = single.step(action[i])
                np.testing.assert_array_equal(obs[i], s_obs)
                assert (reward[i], terminated[i], truncated[i]) == (s_reward, s_terminated, s_truncated)
                if s_terminated or s_truncated:
                    ended_at[i] = t
            elif ended_at[i] == t - 1:
                assert (reward[i], terminated[i], truncated[i]) == (0.0, False, False)
                assert IS_START_OBS[env_id](obs[i])
    assert all(t is not None and t < limit for t in ended_at)  # truncation at `limit` at the latest
