"""SB3's contract for every ca11 learner on every space a user brings: vectors, pixels and dicts, continuous and
discrete actions.

Each case trains a tiny learner (Dreamer, the world-model planner, the RSSM planner) through the shared learner
loop, then checks what users rely on: recurrent ``predict`` in the env's own action space and dtype,
``evaluate_policy``, callbacks, safe ``save``/``load`` with identical predictions, replay save/load and resume, uint8
frames in replay, and clear errors for what is not supported.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import ca11_gym  # noqa: F401  (registers the CA11 environments)
from ca11_agents import DreamerAgent, RSSMAgent, WorldModelAgent
from ca11_agents.common.spaces import ActionAdapter, space_from_json, space_to_json
from ca11_gym.wrappers import PixelObservation

TINY = dict(
    learning_starts=40,
    batch_size=3,
    seq_len=6,
    imagination_horizon=3,
    imagination_starts=8,
    train_freq=8,
    buffer_size=400,
    policy_kwargs=dict(
        hidden_dim=16, state_dim=16, classes=4, units=16, actor_hidden_dims=[16], critic_hidden_dims=[16], bins=31,
        cnn_depth=4,
    ),
)


_TINY_PLANNER = dict(horizon=3, planner_kwargs=dict(candidates=8, elites=2, iterations=2))
#: Each learner with its tiny settings and the observation kinds it takes.
LEARNERS = {
    "dreamer": (DreamerAgent, TINY, ("mlp", "cnn", "dict")),
    "rssm": (
        RSSMAgent,
        dict(
            learning_starts=40, batch_size=3, seq_len=6, train_freq=8, buffer_size=400, **_TINY_PLANNER,
            policy_kwargs=dict(hidden_dim=16, state_dim=16, classes=4, units=16, bins=31, cnn_depth=4),
        ),
        ("mlp", "cnn", "dict"),
    ),
    "world_model": (
        WorldModelAgent,
        dict(
            learning_starts=40, batch_size=4, seq_len=4, train_freq=8, buffer_size=400, **_TINY_PLANNER,
            policy_kwargs=dict(
                latent_dim=4, vae_hidden_dims=[16], dynamics_hidden_dims=[16], reward_hidden_dims=[16], ensemble_size=2
            ),
        ),
        ("mlp",),
    ),
}


def pixels(env_id: str, include_state: bool = False, size: int = 16) -> gym.Env:
    return PixelObservation(gym.make(env_id, render_mode="rgb_array"), size=size, include_state=include_state)


#: (policy alias, env factory): Box and Discrete actions under each alias.
CASES = {
    "mlp-box": ("MlpPolicy", lambda: gym.make("Pendulum-v1")),
    "mlp-discrete": ("MlpPolicy", lambda: gym.make("CartPole-v1")),
    "cnn-box": ("CnnPolicy", lambda: pixels("CA11/ContinuousPendulum-v0")),
    "cnn-discrete": ("CnnPolicy", lambda: pixels("CartPole-v1")),
    "dict-box": ("MultiInputPolicy", lambda: pixels("CA11/ContinuousPendulum-v0", include_state=True)),
    "dict-discrete": ("MultiInputPolicy", lambda: pixels("CartPole-v1", include_state=True)),
}


@pytest.fixture(
    scope="module",
    params=[(learner, name) for learner, (_, _, kinds) in LEARNERS.items() for name in sorted(CASES)
            if name.split("-")[0] in kinds],  # fmt: skip
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def case(request):
    learner, name = request.param
    cls, tiny, _ = LEARNERS[learner]
    alias, make = CASES[name]
    agent = cls(alias, make(), seed=0, **tiny).learn(100)
    return name, alias, make, agent


def play(agent, env: gym.Env, steps: int = 8, seed: int = 3) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    state, start, actions = None, np.ones(1, bool), []
    for _ in range(steps):
        action, state = agent.predict(obs, state, start, deterministic=True)
        start = np.zeros(1, bool)
        assert env.action_space.contains(action), f"{action!r} is not in {env.action_space}"
        actions.append(np.asarray(action))
        obs, *_ = env.step(action)
    return actions


def test_learns_and_predicts_in_the_envs_own_action_space(case):
    _, _, make, agent = case
    assert agent.num_timesteps == 100 and agent._n_updates > 0
    env = make()
    actions = play(agent, env)
    assert actions[0].dtype == env.action_space.dtype
    batch, _ = agent.predict(agent.env.reset(), None, None, deterministic=True)  # a batch from the VecEnv
    assert batch.shape == (1, *env.action_space.shape)


def test_evaluate_policy_and_callbacks(case, tmp_path):
    _, alias, make, agent = case
    mean, _ = evaluate_policy(agent, Monitor(make()), n_eval_episodes=1)
    assert np.isfinite(mean)
    checkpoints = CheckpointCallback(save_freq=30, save_path=str(tmp_path), name_prefix="agent")
    cls = type(agent)
    tiny = next(t for c, t, _ in LEARNERS.values() if c is cls)
    cls(alias, make(), seed=1, **tiny).learn(60, callback=checkpoints)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent_30_steps.zip", "agent_60_steps.zip"]


def test_save_load_predicts_the_same_and_resumes_with_its_replay(case, tmp_path):
    _, _, make, agent = case
    agent.save(tmp_path / "agent.zip")
    agent.save_replay_buffer(tmp_path / "replay.npz")
    loaded = type(agent).load(tmp_path / "agent.zip", env=make())
    for a, b in zip(play(agent, make()), play(loaded, make())):
        np.testing.assert_array_equal(a, b)
    loaded.load_replay_buffer(tmp_path / "replay.npz")
    for key, value in agent.replay_buffer.data.items():
        np.testing.assert_array_equal(loaded.replay_buffer.data[key], value)
    loaded.learn(30, reset_num_timesteps=False)
    assert loaded.num_timesteps == 130 and loaded._n_updates > agent._n_updates


def test_frames_are_stored_as_uint8(case):
    name, _, _, agent = case
    data = agent.replay_buffer.data
    if name.startswith("cnn"):
        assert data["observations"].dtype == np.uint8 and data["observations"].shape[2:] == (3, 16, 16)
    elif name.startswith("dict"):
        assert data["observations.pixels"].dtype == np.uint8
        assert data["observations.state"].dtype == np.float32
    else:
        assert data["observations"].dtype == np.float32


def test_channel_last_frames_are_accepted_by_predict():
    agent = DreamerAgent("CnnPolicy", pixels("CA11/ContinuousPendulum-v0"), seed=0, **TINY)
    assert agent.observation_space.shape == (3, 16, 16)  # SB3's VecTransposeImage: channel-first inside
    frame = pixels("CA11/ContinuousPendulum-v0").reset(seed=0)[0]  # (16, 16, 3), as Gymnasium renders
    a, _ = agent.predict(frame, deterministic=True)
    b, _ = agent.predict(np.transpose(frame, (2, 0, 1)), deterministic=True)
    np.testing.assert_array_equal(a, b)


class _MultiDiscreteEnv(gym.Env):
    """Two independent choices; reward 1 when both match the observation's bits."""

    observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = spaces.MultiDiscrete([2, 3])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._obs = self.np_random.integers(0, 2, 2).astype(np.float32)
        self._t = 0
        return self._obs, {}

    def step(self, action):
        reward = float(np.array_equal(action, self._obs.astype(np.int64)))
        self._t += 1
        return self.reset()[0], reward, False, self._t >= 20, {}


def test_multidiscrete_actions_round_trip():
    adapter = ActionAdapter(spaces.MultiDiscrete([2, 3]))
    env_actions = np.array([[1, 2], [0, 0]])
    learner = adapter.from_env(env_actions)
    np.testing.assert_array_equal(learner, [[0, 1, 0, 0, 1], [1, 0, 1, 0, 0]])
    np.testing.assert_array_equal(adapter.to_env(learner), env_actions)
    agent = DreamerAgent("MlpPolicy", _MultiDiscreteEnv(), seed=0, **TINY).learn(60)
    action, _ = agent.predict(np.zeros(2, np.float32), deterministic=True)
    assert spaces.MultiDiscrete([2, 3]).contains(action)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-1, 1, (3,)),
        spaces.Box(0, 255, (64, 64, 3), np.uint8),
        spaces.Discrete(4, start=1),
        spaces.MultiDiscrete([2, 5]),
        spaces.Dict({"pixels": spaces.Box(0, 255, (3, 8, 8), np.uint8), "state": spaces.Box(-np.inf, np.inf, (2,))}),
    ],
)
def test_spaces_survive_json(space):
    assert space_from_json(space_to_json(space)) == space


class _Spaces(gym.Env):
    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space


@pytest.mark.parametrize(
    ("observation_space", "action_space", "named"),
    [
        (spaces.Tuple([spaces.Box(-1, 1, (2,))]), spaces.Box(-1, 1, (1,)), "Tuple"),
        (spaces.Box(-1, 1, (4, 4)), spaces.Box(-1, 1, (1,)), r"Box\(-1.0, 1.0, \(4, 4\)"),
        (spaces.Box(-1, 1, (3,)), spaces.Box(-np.inf, np.inf, (1,)), "infinite bounds"),
        (spaces.Box(-1, 1, (3,)), spaces.Tuple([spaces.Discrete(2)]), "Tuple"),
        (spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2, 2)), "not a flat Box"),
    ],
)
@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_unsupported_spaces_are_named(observation_space, action_space, named, learner):
    with pytest.raises(ValueError, match=named) as info:
        LEARNERS[learner][0]("MlpPolicy", _Spaces(observation_space, action_space))
    assert "supported" in str(info.value)


def test_the_world_model_planner_names_what_it_cannot_take():
    with pytest.raises(ValueError, match=r'flat vector observations.*RSSMAgent\("CnnPolicy"\)'):
        WorldModelAgent("MlpPolicy", pixels("CA11/ContinuousPendulum-v0"))
    with pytest.raises(ValueError, match=r"unknown policy 'CnnPolicy'; WorldModelAgent takes \['MlpPolicy'\]"):
        WorldModelAgent("CnnPolicy", "Pendulum-v1")


def test_the_alias_must_fit_the_observations():
    with pytest.raises(ValueError, match="CnnPolicy"):
        DreamerAgent("MlpPolicy", pixels("CA11/ContinuousPendulum-v0"), **TINY)
    with pytest.raises(ValueError, match="MlpPolicy"):
        DreamerAgent("CnnPolicy", "Pendulum-v1", **TINY)


@pytest.mark.parametrize("actor_grad", ["reinforce", "dynamics"])
def test_discrete_actors_learn_with_either_gradient(actor_grad):
    agent = DreamerAgent("MlpPolicy", "CartPole-v1", seed=0, actor_grad=actor_grad, **TINY).learn(60)
    before = [p.detach().clone() for p in agent.policy.actor.parameters()]
    terms = agent.train()
    assert torch.isfinite(terms["actor/loss"]) and float(terms["actor/entropy"]) > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.actor.parameters()))


def test_the_actor_gradient_defaults_by_action_space():
    assert DreamerAgent("MlpPolicy", "CartPole-v1", **TINY).actor_grad == "reinforce"  # DreamerV3's choice
    assert DreamerAgent("MlpPolicy", "Pendulum-v1", **TINY).actor_grad == "dynamics"


@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_several_envs_then_load_set_env_and_learn_as_in_sb3(learner, tmp_path):
    from stable_baselines3.common.env_util import make_vec_env

    cls, tiny, _ = LEARNERS[learner]
    agent = cls("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=0), seed=0, **tiny).learn(120)
    updates = agent._n_updates
    actions, state = agent.predict(agent.env.reset(), deterministic=True)  # acting (and planning) batched over envs
    assert actions.shape == (2, 1) and all(np.shape(x)[0] == 2 for x in state)
    agent.save(tmp_path / "agent.zip")
    loaded = cls.load(tmp_path / "agent.zip")
    with pytest.raises(ValueError, match="needs an env"):
        loaded.learn(10)
    loaded.set_env(gym.make("Pendulum-v1"))
    loaded.learn(40, reset_num_timesteps=False)
    assert loaded.num_timesteps == 160 and loaded._n_updates > updates
