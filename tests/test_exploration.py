"""Temporally-extended epsilon-greedy exploration (ez-greedy) in the learner loop, and DreamerAgent's use of it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ca11_agents import DreamerAgent
from ca11_agents.common.exploration import RepeatedRandomActions
from ca11_agents.common.spaces import ActionAdapter

TINY = dict(
    learning_starts=20,
    batch_size=2,
    seq_len=4,
    imagination_horizon=3,
    imagination_starts=8,
    train_freq=8,
    policy_kwargs=dict(
        hidden_dim=8, state_dim=8, classes=4, units=8, actor_hidden_dims=[8], critic_hidden_dims=[8], bins=15
    ),
)


def explorer(eps: float, max_steps: int, n_envs: int = 1, mu: float = 2.0, fraction: float = 1.0):
    return RepeatedRandomActions(ActionAdapter(gym.spaces.Discrete(5)), n_envs, eps, max_steps, "cpu", fraction, mu)


def test_repeat_lengths_follow_a_cut_zeta_distribution():
    probs = explorer(0.1, 4)._length_probs
    assert torch.allclose(probs.sum(), torch.tensor(1.0))
    assert torch.allclose(probs / probs[0], torch.tensor([1.0, 1 / 4, 1 / 9, 1 / 16]))  # p(n) ~ n ** -2


def test_a_started_repeat_holds_one_random_action_for_its_length_then_hands_back():
    torch.manual_seed(0)
    ez = explorer(1.0, 50)
    actor = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])
    first = ez(actor, torch.zeros(1))  # eps = 1: a repeat starts at once
    length = int(ez._left) + 1
    ez.eps = 0.0  # no new repeats: the running one plays out, then the actor's actions come back
    taken = [first] + [ez(actor, torch.zeros(1)) for _ in range(length + 3)]
    assert all(torch.equal(step, first) for step in taken[:length])
    assert all(torch.equal(step, actor) for step in taken[length:])
    assert first.sum() == 1.0 and set(first.unique().tolist()) <= {0.0, 1.0}  # a one-hot action


def test_an_episode_start_ends_a_repeat_and_envs_repeat_independently():
    torch.manual_seed(1)
    ez = explorer(1.0, 10_000, n_envs=3, mu=0.0)  # lengths uniform in 1..10,000: nearly surely all long
    actor = torch.zeros(3, 5)
    ez(actor, torch.zeros(3))
    assert bool((ez._left > 0).all())
    ez.eps = 0.0
    taken = ez(actor, torch.tensor([0.0, 1.0, 0.0]))  # env 1's episode restarted
    assert torch.equal(taken[1], actor[1]) and int(ez._left[1]) == 0
    assert taken[0].sum() == 1.0 and taken[2].sum() == 1.0


def test_zero_eps_never_changes_an_action():
    ez = explorer(0.0, 100, n_envs=4)
    actor = torch.eye(5)[:4]
    for _ in range(20):
        assert torch.equal(ez(actor, torch.zeros(4)), actor)


def test_only_the_drawn_share_of_episodes_explores_and_the_draw_is_per_episode():
    torch.manual_seed(2)
    ez = explorer(1.0, 1, n_envs=2000, fraction=0.25)  # eps 1, repeats of 1 step: an exploring env never acts its own
    actor = torch.zeros(2000, 5)
    exploring = ez(actor, torch.zeros(2000)).sum(-1) == 1.0
    assert 0.2 < float(exploring.float().mean()) < 0.3
    assert torch.equal(ez(actor, torch.zeros(2000)).sum(-1) == 1.0, exploring)  # the same envs, the same episode
    redrawn = ez(actor, torch.ones(2000)).sum(-1) == 1.0  # every episode starts again: a new draw
    assert not torch.equal(redrawn, exploring) and 0.2 < float(redrawn.float().mean()) < 0.3
    assert not bool(explorer(1.0, 1, n_envs=50, fraction=0.0)(torch.zeros(50, 5), torch.zeros(50)).any())


def test_dreamer_explores_by_default_on_discrete_actions_only():
    discrete = DreamerAgent("MlpPolicy", "CartPole-v1", seed=0, **TINY)
    continuous = DreamerAgent("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    assert discrete.explore_eps == 0.3 and continuous.explore_eps == 0.0
    assert discrete._make_explorer(1) is not None and continuous._make_explorer(1) is None
    with pytest.raises(ValueError, match="explore_eps"):
        DreamerAgent("MlpPolicy", "CartPole-v1", explore_eps=1.5)
    with pytest.raises(ValueError, match="explore_max_steps"):
        DreamerAgent("MlpPolicy", "CartPole-v1", explore_max_steps=0)
    with pytest.raises(ValueError, match="explore_fraction"):
        DreamerAgent("MlpPolicy", "CartPole-v1", explore_fraction=-0.1)


def test_the_replay_stores_the_actions_the_env_was_given():
    """The world model must learn from what was done: with every step exploring in long repeats, the actions stored
    after the warm-up are constant within an episode, not the actor's samples."""
    agent = DreamerAgent("MlpPolicy", "CartPole-v1", seed=0, explore_eps=1.0, **TINY)
    agent._make_explorer = lambda n: RepeatedRandomActions(agent.policy.actions, n, 1.0, 10_000, agent.device, mu=0.0)
    agent.learn(60)
    stored = agent.replay_buffer.data["actions"][0, :60].argmax(-1)
    first = agent.replay_buffer.data["is_first"][0, :60].astype(bool)
    after = range(TINY["learning_starts"] + 1, 60)
    changes = [t for t in after if stored[t] != stored[t - 1] and not first[t]]
    assert first[TINY["learning_starts"] :].sum() >= 1 and not changes


def test_seeded_runs_explore_alike_and_old_checkpoints_load_without_exploration(tmp_path, checkpoint_without):
    runs = [DreamerAgent("MlpPolicy", "CartPole-v1", seed=3, **TINY).learn(50) for _ in range(2)]
    assert np.array_equal(runs[0].replay_buffer.data["actions"], runs[1].replay_buffer.data["actions"])
    runs[0].save(tmp_path / "new.zip")
    assert DreamerAgent.load(tmp_path / "new.zip").explore_eps == 0.3
    assert DreamerAgent.load(checkpoint_without(tmp_path / "new.zip", "explore_eps")).explore_eps == 0.0
