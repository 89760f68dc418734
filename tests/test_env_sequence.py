"""SequenceEnvironment and its vector twin: the memory task's timeline, its return bounds, and the API contract."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ca11_gym  # noqa: F401  (registers the ids)
from ca11_gym.envs.sequence import SequenceEnvironment, SequenceEnvironmentVectorEnv

ENV_ID = "CA11/SequenceEnvironment-v0"
Policy = Callable[[list[np.ndarray]], np.ndarray]  # maps the observations seen so far in the episode to an action


def run_episode(env: gym.Env, policy: Policy, seed: int | None = None) -> float:
    """Play one episode; the policy gets every observation of the episode so far (its 'memory')."""
    obs, _ = env.reset(seed=seed)
    seen, total, done = [obs], 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(seen))
        seen.append(obs)
        total += reward
        done = terminated or truncated
    return total


def recall_policy(lag: int) -> Policy:
    """Answer the cue shown ``lag`` steps ago (``lag = memory_size`` is optimal), 0 while there is none."""
    return lambda seen: np.array([seen[-1 - lag][0] if len(seen) > lag else 0.0])


def test_name_and_spaces() -> None:
    env = SequenceEnvironment(memory_size=5)
    assert env.name == "SequenceEnvironment"
    assert env.observation_space.shape == (2,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (1,) and env.action_space.dtype == np.float32
    assert env.action_space.low[0] == -1.0 and env.action_space.high[0] == 1.0


@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_gymnasium_check_env(render_mode: str | None) -> None:
    check_env(gym.make(ENV_ID, render_mode=render_mode).unwrapped, skip_render_check=render_mode is None)


def test_timeline_cues_flag_reward_and_termination() -> None:
    k, length = 3, 8
    cues = np.array([1, -1, -1, 1, 1, -1, 1, -1], dtype=float)
    env = SequenceEnvironment(memory_size=k, episode_length=length)
    obs, _ = env.reset(options={"cues": cues})
    for t in range(length):
        # The observation holds the current cue and whether the next action is scored, never c_{t-k}.
        np.testing.assert_array_equal(obs, [cues[t], float(t >= k)])
        obs, reward, terminated, truncated, _ = env.step(np.array([1.0]))
        assert reward == (1.0 - (1.0 - cues[t - k]) ** 2 / 2 if t >= k else 0.0)
        assert terminated == (t == length - 1) and not truncated
    np.testing.assert_array_equal(obs, [0.0, 0.0])  # terminal observation: no cue, nothing to recall
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0.0]))


def test_episode_ends_by_termination_whatever_the_length() -> None:
    """No registration time limit: ``episode_length`` passed to ``gym.make`` is the length, ended by termination."""
    env = gym.make(ENV_ID, episode_length=40)
    assert env.spec is not None and env.spec.max_episode_steps is None
    env.reset(seed=0)
    steps = [env.step(env.action_space.sample())[2:4] for _ in range(40)]
    assert [s[0] for s in steps] == [False] * 39 + [True] and not any(s[1] for s in steps)


def test_registered_reward_threshold_can_only_be_reached_with_memory() -> None:
    env = gym.make(ENV_ID)
    assert env.unwrapped.memoryless_return < env.spec.reward_threshold < env.unwrapped.optimal_return


# Per-episode return of the uniform random policy: each scored reward is r = 1 - u^2/2 with u = |a - c| ~ U[0, 2],
# so Var(r) = Var(u^2)/4 = (E[u^4] - E[u^2]^2)/4 = (16/5 - 16/9)/4 = 16/45, and over N independent scored steps
# the return's standard deviation is sqrt(16 N / 45) (2.67 for N = 20). Four standard errors: a false failure has
# probability ~6e-5 for an unlucky seed (the seed is fixed, so the test is deterministic anyway).
RANDOM_REWARD_VAR = 16 / 45
EPISODES = 300


@pytest.mark.parametrize("memory_size, episode_length", [(5, 25), (1, 10), (8, 12)])
def test_returns_match_their_derivation(memory_size: int, episode_length: int) -> None:
    env = SequenceEnvironment(memory_size=memory_size, episode_length=episode_length)
    n = env.scored_steps
    assert (env.optimal_return, env.memoryless_return, env.random_return) == pytest.approx((n, n / 2, n / 3))

    # The optimum (recall exactly) and the best memoryless policy (a = 0) are deterministic: every episode scores
    # exactly 1 (resp. 1/2) per scored step, so one tolerance fits all: floating-point rounding.
    optimal = [run_episode(env, recall_policy(memory_size), seed=s) for s in range(20)]
    memoryless = [run_episode(env, lambda seen: np.zeros(1), seed=s) for s in range(20)]
    np.testing.assert_allclose(optimal, env.optimal_return, atol=1e-9)
    np.testing.assert_allclose(memoryless, env.memoryless_return, atol=1e-9)

    env.action_space.seed(0)
    random = [run_episode(env, lambda seen: env.action_space.sample(), seed=s) for s in range(EPISODES)]
    standard_error = np.sqrt(n * RANDOM_REWARD_VAR / EPISODES)
    assert abs(np.mean(random) - env.random_return) < 4 * standard_error


@pytest.mark.parametrize(
    "policy",
    [
        recall_policy(0),  # the current cue: independent of the target, E[r] = 0
        recall_policy(4),  # a memory one step too short
        lambda seen: np.array([0.5]),  # a biased constant
        lambda seen: np.array([seen[-1][0] * seen[-1][1]]),  # a reactive function of the whole observation
    ],
    ids=["current-cue", "short-memory", "constant", "reactive"],
)
def test_no_policy_without_the_recalled_cue_beats_memoryless_return(policy: Policy) -> None:
    env = SequenceEnvironment(memory_size=5)
    returns = [run_episode(env, policy, seed=s) for s in range(EPISODES)]
    # Per-step rewards lie in [-1, 1], so the return's standard deviation is at most sqrt(N).
    assert np.mean(returns) < env.memoryless_return + 4 * np.sqrt(env.scored_steps / EPISODES)


@pytest.mark.parametrize("memory_size, episode_length", [(5, 25), (1, 2), (20, 100)])
def test_memory_gap_is_large(memory_size: int, episode_length: int) -> None:
    """The best memoryless policy gets well under half of the way from random to optimal (a quarter)."""
    env = SequenceEnvironment(memory_size=memory_size, episode_length=episode_length)
    fraction = (env.memoryless_return - env.random_return) / (env.optimal_return - env.random_return)
    assert fraction == pytest.approx(0.25)


@pytest.mark.parametrize(
    "action",
    [np.array([np.nan]), np.array([np.inf]), np.zeros(2), np.zeros((1, 1, 2)), "left", None, [0.1, 0.2]],
    ids=["nan", "inf", "shape-2", "shape-1x1x2", "string", "none", "list-of-2"],
)
def test_bad_actions_raise(action: object) -> None:
    env = SequenceEnvironment()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="SequenceEnvironment"):
        env.step(action)


def test_out_of_range_actions_are_clipped() -> None:
    rewards = []
    for action in ([7.0], [1.0]):
        env = SequenceEnvironment(memory_size=1, episode_length=2)
        env.reset(options={"cues": [-1.0, 1.0]})
        env.step(np.array([0.0]))
        rewards.append(env.step(np.array(action))[1])
    assert rewards[0] == rewards[1] == -1.0  # a = 1 against target -1: 1 - (1 - (-1))**2 / 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(memory_size=0), "memory_size"),
        (dict(memory_size=2.5), "memory_size"),
        (dict(memory_size=5, episode_length=5), "episode_length"),
        (dict(episode_length=-3), "episode_length"),
        (dict(render_mode="ascii"), "render_mode"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SequenceEnvironment(**kwargs)
    with pytest.raises(ValueError, match=message):
        SequenceEnvironmentVectorEnv(2, **kwargs)


@pytest.mark.parametrize("cues", [[1.0, 0.5, 1.0, 1.0], [1.0] * 3, "abc"])
def test_invalid_cue_option_raises(cues: object) -> None:
    with pytest.raises(ValueError, match="cues"):
        SequenceEnvironment(memory_size=1, episode_length=4).reset(options={"cues": cues})


def test_seeding_is_reproducible() -> None:
    def cues(seed: int) -> list[float]:
        env = SequenceEnvironment()
        first, _ = env.reset(seed=seed)
        return [first[0]] + [env.step(np.zeros(1))[0][0] for _ in range(24)]

    assert cues(1) == cues(1) and cues(1) != cues(2)


def test_render_shows_the_remembered_cue_that_the_observation_hides() -> None:
    """Two episodes differing only in c_0: at step k they emit the same observation but differ on screen."""
    frames, observations = [], []
    for first_cue in (1.0, -1.0):
        env = SequenceEnvironment(memory_size=3, episode_length=6, render_mode="rgb_array")
        env.reset(options={"cues": [first_cue, 1, 1, 1, 1, 1]})
        for _ in range(3):
            obs, *_ = env.step(np.array([0.3]))
        frame = env.render()
        assert frame.shape == (260, 600, 3) and frame.dtype == np.uint8
        frames.append(frame)
        observations.append(obs)
    np.testing.assert_array_equal(observations[0], observations[1])
    assert not np.array_equal(frames[0], frames[1])


def test_human_render_returns_none() -> None:
    env = SequenceEnvironment(render_mode="human")  # SDL_VIDEODRIVER=dummy in CI: no window appears
    env.reset(seed=0)
    assert env.render() is None
    env.close()


def test_pickled_env_continues_the_same_episode() -> None:
    env = SequenceEnvironment(render_mode="rgb_array")
    env.reset(seed=3)
    for _ in range(7):
        env.step(np.array([0.2]))
    env.render()  # the renderer holds pygame objects: pickling must still work
    copy = pickle.loads(pickle.dumps(env))
    for _ in range(18):
        a = np.array([-0.4])
        np.testing.assert_equal(env.step(a), copy.step(a))
    assert copy.render().shape == (260, 600, 3)


# --- the vector twin -------------------------------------------------------------------------------------------


def test_make_vec_builds_the_numpy_twin() -> None:
    envs = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", memory_size=3)
    assert isinstance(envs.unwrapped, SequenceEnvironmentVectorEnv)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert envs.observation_space.shape == (4, 2) and envs.action_space.shape == (4, 1)
    assert envs.single_observation_space == SequenceEnvironment().observation_space
    obs, _ = envs.reset(seed=0)
    assert obs in envs.observation_space and envs.unwrapped.optimal_return == 22.0


def test_vector_with_one_env_replays_the_single_env_under_the_same_seed() -> None:
    """Same generator calls: one sub-env and the single env draw the same cues, episode after episode."""
    single, vector = SequenceEnvironment(memory_size=2, episode_length=5), SequenceEnvironmentVectorEnv(1, 2, 5)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(18, 1))
    obs, _ = single.reset(seed=7)
    vobs, _ = vector.reset(seed=7)
    done = False
    for a in actions:  # (1,) actions, batched as (1, 1) for the vector env
        np.testing.assert_array_equal(vobs[0], obs)
        vobs, vr, vterm, vtrunc, _ = vector.step(a[None])
        if done:  # the vector env autoresets on this call, ignoring the action
            obs, _ = single.reset()
            assert vr[0] == 0.0 and not vterm[0]
            done = False
            continue
        obs, r, term, trunc, _ = single.step(a)
        assert (vr[0], vterm[0], vtrunc[0]) == (r, term, trunc)
        done = term or trunc


def test_each_sub_env_follows_the_single_env_dynamics_across_autoresets() -> None:
    num_envs, k, length = 3, 2, 6
    vector, single = SequenceEnvironmentVectorEnv(num_envs, k, length), SequenceEnvironment(k, length)
    rng = np.random.default_rng(1)
    obs, _ = vector.reset(seed=5)
    for _ in range(3):  # three episodes: the first from reset(), the next two after autoresets
        actions = rng.uniform(-1.5, 1.5, size=(length, num_envs, 1))  # out-of-range values are clipped by both
        observations, rewards, terminations = [obs], [], []
        for a in actions:
            obs, r, term, trunc, _ = vector.step(a)
            observations.append(obs)
            rewards.append(r)
            terminations.append(term)
            assert not trunc.any()
        seen = np.stack(observations)  # (L+1, B, 2): every cue of the episode is shown once
        for i in range(num_envs):
            single_obs, _ = single.reset(options={"cues": seen[:length, i, 0]})
            np.testing.assert_array_equal(single_obs, seen[0, i])
            for t in range(length):
                single_obs, r, term, _, _ = single.step(actions[t, i])
                np.testing.assert_array_equal(single_obs, seen[t + 1, i])
                assert (r, term) == (rewards[t][i], terminations[t][i])
        # NEXT_STEP autoreset: the action is ignored, the first observation of a new episode comes back.
        obs, r, term, trunc, _ = vector.step(np.full((num_envs, 1), 0.9))
        np.testing.assert_array_equal(r, 0.0)
        assert not term.any() and not trunc.any() and (obs[:, 1] == 0).all() and (np.abs(obs[:, 0]) == 1).all()


def test_vector_cue_option_and_bad_actions() -> None:
    vector = SequenceEnvironmentVectorEnv(2, memory_size=1, episode_length=3)
    obs, _ = vector.reset(options={"cues": [[1, 1, 1], [-1, -1, -1]]})
    np.testing.assert_array_equal(obs[:, 0], [1, -1])
    for bad in (np.zeros((3, 1)), np.array([[np.nan], [0.0]]), np.zeros(2, dtype=object), "x"):
        with pytest.raises(ValueError, match="SequenceEnvironmentVectorEnv"):
            vector.step(bad)
    with pytest.raises(ValueError, match="cues"):
        vector.reset(options={"cues": [1, 1, 1]})


def test_vector_render_and_pickle() -> None:
    vector = SequenceEnvironmentVectorEnv(3, render_mode="rgb_array")
    vector.reset(seed=0)
    vector.step(np.zeros((3, 1)))
    frames = vector.render()
    assert len(frames) == 3 and all(f.shape == (260, 600, 3) and f.dtype == np.uint8 for f in frames)
    copy = pickle.loads(pickle.dumps(vector))
    a = np.full((3, 1), 0.5)
    np.testing.assert_equal(vector.step(a), copy.step(a))
    with pytest.raises(ValueError, match="render_mode"):
        SequenceEnvironmentVectorEnv(2, render_mode="human")
