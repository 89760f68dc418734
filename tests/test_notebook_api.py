"""The course notebook's calls (sections 1-3), with its names and signatures, run against the package."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch

from ca11_agents import DreamerAgent, LatentActor, LatentCritic
from ca11_agents.data import collect_sequence_data, collect_world_model_data
from ca11_agents.visualization import plot_rssm_training, plot_world_model_training
from ca11_agents.world_models import (
    LatentDynamicsModel,
    RecurrentStateSpaceModel,
    RewardModel,
    RSSMTrainer,
    VariationalAutoencoder,
    WorldModel,
    WorldModelTrainer,
)
from ca11_gym import ContinuousCartPole, SequenceEnvironment


def test_section_1_world_model_calls():
    env = ContinuousCartPole()
    assert env.name == "ContinuousCartPole"
    data = collect_world_model_data(env, steps=300, episodes=5)
    assert len(data["observations"]) == 300 and data["observations"][0].shape == (4,)
    vae = VariationalAutoencoder(4, 8, [32, 16])
    recon, mu, log_var, z = vae(torch.randn(10, 4))
    assert recon.shape == (10, 4) and z.shape == (10, 8) and vae.kl_divergence(mu, log_var).item() >= 0.0
    world_model = WorldModel(vae, LatentDynamicsModel(8, 1, [32], stochastic=True), RewardModel(8, 1, [16]))
    next_obs, reward = world_model.predict_next_state_and_reward(torch.randn(5, 4), torch.randn(5, 1))
    assert next_obs.shape == (5, 4) and reward.shape[0] == 5
    trainer = WorldModelTrainer(world_model, learning_rate=1e-3, device=torch.device("cpu"))
    train = {k: torch.FloatTensor(data[k]) for k in ("observations", "actions", "rewards", "next_observations")}
    for _ in range(5):
        index = torch.randperm(300)[:64]
        losses = trainer.train_step({k: v[index] for k, v in train.items()})
    assert all(np.isfinite(v) for v in losses.values())
    assert plot_world_model_training(trainer, "World Model Training Demo") is not None


def test_section_2_rssm_calls():
    env = SequenceEnvironment(memory_size=5)
    assert env.name == "SequenceEnvironment"
    episodes = collect_sequence_data(env, episodes=4, episode_length=20)
    assert len(episodes) == 4 and len(episodes[0]["observations"]) == 20
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    rssm = RecurrentStateSpaceModel(obs_dim, action_dim, 32, 64)
    obs, action = torch.randn(1, 1, obs_dim), torch.randn(1, 1, action_dim)
    next_obs, reward, hidden = rssm.imagine(obs, action, torch.zeros(1, 64))
    assert next_obs.shape == (1, 1, obs_dim) and reward.shape == (1, 1) and hidden.shape == (1, 64)
    trainer = RSSMTrainer(rssm, learning_rate=1e-3, device="cpu")
    for episode in episodes:
        batch = {k: torch.FloatTensor(episode[k][:15]).unsqueeze(0) for k in ("observations", "actions", "rewards")}
        losses = trainer.train_step(batch)
    assert np.isfinite(losses["loss"])
    assert plot_rssm_training(trainer, "RSSM Training Demo") is not None


def test_section_3_actor_critic_and_imagination():
    actor, critic = LatentActor(32, 1, hidden_dims=[128, 64]), LatentCritic(32, hidden_dims=[128, 64])
    assert actor.act(torch.randn(3, 32)).shape == (3, 1) and critic(torch.randn(3, 32)).shape == (3,)
    agent = DreamerAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=0)
    obs, _ = ContinuousCartPole().reset(seed=0)
    states, rewards, actions = agent.imagine_trajectory(obs, steps=10)
    assert len(states) == 11 and len(rewards) == 10 and actions.shape == (10, 1)
