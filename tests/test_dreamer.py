"""DreamerAgent keeps Stable-Baselines3's contract: tools, callbacks, recurrent predict, safe checkpoints."""

from __future__ import annotations

import os
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import (
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnMaxEpisodes,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor

import ca11_gym  # noqa: F401  (registers the CA11 environments)
from ca11_agents import DREAMER_PRESETS, DreamerAgent

TINY = dict(
    learning_starts=50,
    batch_size=4,
    seq_len=8,
    imagination_horizon=5,
    imagination_starts=16,
    train_freq=4,
    policy_kwargs=dict(
        hidden_dim=16, state_dim=16, classes=4, units=16, actor_hidden_dims=[16], critic_hidden_dims=[16], bins=31
    ),
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> DreamerAgent:
    agent = DreamerAgent("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    return agent.learn(300)


def rollout_actions(agent: DreamerAgent, seed: int = 3, steps: int = 20) -> np.ndarray:
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=seed)
    state, start, actions = None, np.ones(1, bool), []
    for _ in range(steps):
        action, state = agent.predict(obs, state, start, deterministic=True)
        start = np.zeros(1, bool)
        actions.append(action)
        obs, *_ = env.step(action)
    return np.array(actions)


def test_learn_counts_steps_and_trains(trained):
    assert trained.num_timesteps == 300
    assert trained._n_updates == (300 - 50 + 1) // 4  # one update per 4 steps from the 50th on


def test_actions_respect_the_env_bounds(trained):
    # Pendulum-v1's torque is in [-2, 2]: the agent's [-1, 1] actions are rescaled at the boundary.
    actions = rollout_actions(trained)
    assert actions.shape == (20, 1) and np.abs(actions).max() <= 2.0
    action, state = trained.predict(np.array([1.0, 0.0, 0.0], np.float32), deterministic=True)
    normalised = state[2][0]  # the state carries the previous action in [-1, 1]
    assert np.allclose(action, 2.0 * normalised, atol=1e-6)


def test_evaluate_policy_works(trained):
    mean, std = evaluate_policy(trained, gym.make("Pendulum-v1"), n_eval_episodes=2, deterministic=True, warn=False)
    assert np.isfinite(mean) and np.isfinite(std)


def test_predict_single_and_batched_with_episode_start_resets(trained):
    obs = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.3]], np.float32)
    batch_actions, state = trained.predict(obs, deterministic=True)
    assert batch_actions.shape == (2, 1) and state[0].shape[0] == 2
    single, _ = trained.predict(obs[1], deterministic=True)
    assert single.shape == (1,) and np.allclose(single, batch_actions[1], atol=1e-5)
    # Carry the state for one step, then reset env 0 only: env 0 acts as from scratch, env 1 does not.
    _, state = trained.predict(obs, state, np.zeros(2, bool), deterministic=True)
    reset_actions, _ = trained.predict(obs, state, np.array([True, False]), deterministic=True)
    fresh, _ = trained.predict(obs, deterministic=True)
    assert np.allclose(reset_actions[0], fresh[0], atol=1e-5)


def test_several_envs_and_callback_that_stops_training():
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    agent = DreamerAgent("MlpPolicy", env, seed=0, **TINY)
    agent.learn(10_000, callback=StopTrainingOnMaxEpisodes(max_episodes=1))
    # Each env finishes its first 200-step episode together: training stops there, not at 10,000 steps.
    assert agent.num_timesteps == 400
    assert np.isfinite(agent.replay_buffer.data["returns"][:, :200]).all()  # both episodes' returns are stored
    actions, _ = agent.predict(env.reset(), deterministic=True)
    assert actions.shape == (2, 1)


def test_logger_eval_and_checkpoint_callbacks(tmp_path):
    agent = DreamerAgent("MlpPolicy", "Pendulum-v1", seed=1, **TINY)
    agent.set_logger(configure(str(tmp_path / "log"), ["csv"]))
    eval_cb = EvalCallback(
        Monitor(gym.make("Pendulum-v1")), eval_freq=200, n_eval_episodes=1, log_path=str(tmp_path / "eval"),
        best_model_save_path=str(tmp_path / "best"),
    )
    ckpt_cb = CheckpointCallback(save_freq=200, save_path=str(tmp_path / "ckpt"), save_replay_buffer=True)
    agent.learn(400, callback=[eval_cb, ckpt_cb], log_interval=1)
    assert np.load(tmp_path / "eval" / "evaluations.npz")["timesteps"].tolist() == [200, 400]
    saved = sorted(os.listdir(tmp_path / "ckpt"))
    assert "rl_model_400_steps.zip" in saved and "rl_model_replay_buffer_400_steps.pkl" in saved
    header = (tmp_path / "log" / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("train/world_model/loss", "train/actor/loss", "train/critic/loss", "train/critic/mc_loss",
                "rollout/ep_rew_mean", "time/fps", "time/updates_per_s"):
        assert key in header
    reloaded = DreamerAgent.load(tmp_path / "ckpt" / "rl_model_400_steps.zip")
    assert reloaded.num_timesteps == 400
    best = DreamerAgent.load(tmp_path / "best" / "best_model.zip")  # EvalCallback keeps the best policy
    assert best.num_timesteps in (200, 400)


def test_tensorboard_log_is_written(tmp_path):
    agent = DreamerAgent("MlpPolicy", "Pendulum-v1", seed=0, tensorboard_log=str(tmp_path), **TINY)
    agent.learn(200, log_interval=1)
    events = [f for _, _, files in os.walk(tmp_path) for f in files if f.startswith("events.out.tfevents")]
    assert events


def test_a_name_without_extension_gets_zip_as_in_sb3(trained, tmp_path):
    trained.save(tmp_path / "agent")  # what SB3's EvalCallback does with best_model
    assert os.listdir(tmp_path) == ["agent.zip"]
    for name in ("agent", "agent.zip"):
        assert np.array_equal(rollout_actions(DreamerAgent.load(tmp_path / name)), rollout_actions(trained))


def test_save_load_parity_and_resume(trained, tmp_path):
    path = tmp_path / "agent.zip"
    trained.save(path)
    loaded = DreamerAgent.load(path, env="Pendulum-v1")
    assert np.array_equal(rollout_actions(trained), rollout_actions(loaded))
    # Resume: the replay buffer and counters come back, and learn(reset_num_timesteps=False) goes on.
    trained.save_replay_buffer(tmp_path / "replay.npz")
    loaded.load_replay_buffer(tmp_path / "replay.npz")
    assert len(loaded.replay_buffer) == len(trained.replay_buffer) == 300
    loaded.learn(100, reset_num_timesteps=False)
    assert loaded.num_timesteps == 400 and len(loaded.replay_buffer) == 400


def test_tampered_checkpoint_never_runs_code(trained, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import pickle

    good = tmp_path / "good.zip"
    trained.save(good)
    for members in (
        {"data": pickle.dumps(Exploit())},  # an SB3-style archive with a pickled payload
        {"config.json": b"{}", "tensors.safetensors": pickle.dumps(Exploit())},
        {"config.json": zipfile.ZipFile(good).read("config.json"), "tensors.safetensors": pickle.dumps(Exploit())},
    ):
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        with pytest.raises(ValueError, match="bad.zip"):
            DreamerAgent.load(bad)
        assert not marker.exists()


def test_corrupted_truncated_and_mismatched_checkpoints_are_named(trained, tmp_path):
    path = tmp_path / "agent.zip"
    trained.save(path)
    data = path.read_bytes()
    (tmp_path / "truncated.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.zip"):
        DreamerAgent.load(tmp_path / "truncated.zip")
    (tmp_path / "garbage.zip").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="garbage.zip"):
        DreamerAgent.load(tmp_path / "garbage.zip")
    with pytest.raises(ValueError, match="observation space"):
        DreamerAgent.load(path, env="MountainCarContinuous-v0")
    with pytest.raises(FileNotFoundError):
        DreamerAgent.load(tmp_path / "missing.zip")


def test_interrupted_save_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    path = tmp_path / "agent.zip"
    trained.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        trained.save(path)
    with pytest.raises(KeyboardInterrupt):
        trained.save_replay_buffer(tmp_path / "agent.zip")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["agent.zip"]  # no temporary files left behind


def test_replay_windows_have_batch_major_shapes_and_is_first(trained):
    batch = trained.replay_buffer.sample(6, 8)
    assert batch["observations"].shape == (6, 8, 3)
    assert batch["actions"].shape == (6, 8, 1)
    assert batch["rewards"].shape == batch["is_first"].shape == batch["terminated"].shape == (6, 8)
    # Pendulum episodes are 200 steps: is_first marks steps 0 and 200 of the stream, and nothing else.
    flags = trained.replay_buffer.data["is_first"][0, :300]
    assert np.flatnonzero(flags).tolist() == [0, 200]


def test_replay_holds_the_returns_of_finished_episodes(trained):
    # Pendulum-v1 is cut at 200 steps: the first episode's returns are filled in (bootstrapped from the critic at
    # the cut), the running second episode's are not known yet.
    data, gamma = trained.replay_buffer.data, trained.gamma
    returns, rewards = data["returns"][0], data["rewards"][0]
    assert np.isfinite(returns[:200]).all() and np.isnan(returns[200:300]).all()
    np.testing.assert_allclose(returns[:199], rewards[:199] + gamma * returns[1:200], rtol=1e-5, atol=1e-4)


def test_imagine_trajectory_demo(trained):
    states, rewards, actions = trained.imagine_trajectory(np.array([1.0, 0.0, 0.0], np.float32), steps=10)
    assert states.shape == (11, trained.policy.rssm.feature_dim)
    assert rewards.shape == (10,) and actions.shape == (10, 1)
    assert np.all(np.abs(actions) <= 1.0)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="seq_len"):
        DreamerAgent("MlpPolicy", "Pendulum-v1", seq_len=0)
    with pytest.raises(ValueError, match="actor_grad"):
        DreamerAgent("MlpPolicy", "Pendulum-v1", actor_grad="backprop")
    with pytest.raises(ValueError, match="replay_value_coef"):
        DreamerAgent("MlpPolicy", "Pendulum-v1", replay_value_coef=-1.0)
    with pytest.raises(ValueError, match="mc_value_coef"):
        DreamerAgent("MlpPolicy", "Pendulum-v1", mc_value_coef=-0.5)


@pytest.mark.parametrize("actor_grad", ["reinforce", "dynamics"])
@pytest.mark.parametrize("value_losses", [{}, {"replay_value_coef": 0.3}, {"mc_value_coef": 0.0}])
def test_each_actor_gradient_trains_actor_and_critic(actor_grad, value_losses):
    env_id = "CA11/ContinuousCartPole-v0"
    agent = DreamerAgent("MlpPolicy", env_id, seed=0, actor_grad=actor_grad, **value_losses, **TINY)
    agent.learn(60)  # fills the buffer past learning_starts, with finished (random) episodes
    nets = {"actor": agent.policy.actor, "critic": agent.policy.critic, "slow_critic": agent.policy.slow_critic}
    before = {name: torch.nn.utils.parameters_to_vector(net.parameters()).clone() for name, net in nets.items()}
    terms = agent.train()
    assert all(torch.isfinite(value).all() for value in terms.values())
    assert ("critic/mc_loss" in terms) == (agent.mc_value_coef > 0)  # the default has it
    assert ("critic/replay_loss" in terms) == (agent.replay_value_coef > 0)
    for name, net in nets.items():
        assert not torch.equal(torch.nn.utils.parameters_to_vector(net.parameters()), before[name]), name


def test_mc_max_age_leaves_the_returns_of_older_steps_out_of_the_value_loss(mc_max_age_masks_old_returns):
    agent = DreamerAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=0, **TINY)
    agent.learn(60)  # random episodes of about 20 steps: many have finished, with returns stored
    mc_max_age_masks_old_returns(agent)
    with pytest.raises(ValueError, match="mc_max_age"):
        DreamerAgent("MlpPolicy", "Pendulum-v1", mc_max_age=0)


def test_a_checkpoint_from_before_mc_max_age_loads_with_every_return(trained, tmp_path, checkpoint_without):
    trained.save(tmp_path / "new.zip")
    assert DreamerAgent.load(checkpoint_without(tmp_path / "new.zip", "mc_max_age")).mc_max_age is None


def test_world_model_learns_during_a_short_run():
    agent = DreamerAgent("MlpPolicy", "Pendulum-v1", seed=0, **{**TINY, "train_freq": 1})
    agent.learn(60)
    torch.manual_seed(0)
    before = agent.policy.rssm.loss(agent.replay_buffer.sample(16, 8))[1]
    agent.learn(400, reset_num_timesteps=False)
    torch.manual_seed(0)
    after = agent.policy.rssm.loss(agent.replay_buffer.sample(16, 8))[1]
    assert after["reconstruction_loss"] < 0.5 * before["reconstruction_loss"]
    assert after["reward_loss"] < before["reward_loss"]


@pytest.mark.parametrize("preset", sorted(DREAMER_PRESETS))
def test_every_preset_builds_and_acts(preset):
    agent = DreamerAgent("MlpPolicy", "CA11/ContinuousPendulum-v0", seed=0, **DREAMER_PRESETS[preset])
    action, state = agent.predict(np.zeros(3, np.float32), deterministic=True)
    assert action.shape == (1,) and state[0].shape == (1, agent.policy.rssm.hidden_dim)


def test_load_then_set_env_then_learn_as_in_sb3(trained, tmp_path):
    trained.save(tmp_path / "agent.zip")
    agent = DreamerAgent.load(tmp_path / "agent.zip")
    with pytest.raises(ValueError, match="needs an env"):
        agent.learn(10)
    agent.set_env(gym.make("Pendulum-v1"))
    agent.learn(60, reset_num_timesteps=False)
    assert agent.num_timesteps == 360 and agent._n_updates > trained._n_updates


def test_saturation_counts_only_means_beyond_the_bound():
    from ca11_agents import LatentActor

    actor = LatentActor(latent_dim=3, action_dim=2, hidden_dims=[8])
    feats = torch.randn(5, 3)
    with torch.no_grad():
        mean, _ = actor._params(feats)
    expected = torch.relu(mean.abs() - actor.saturation_bound).pow(2).sum(-1)
    torch.testing.assert_close(actor.saturation(feats), expected)
    assert (expected == 0).all()  # a fresh actor's means sit well inside +-2
    with torch.no_grad():
        actor.net[-1].bias[:2] = torch.tensor([3.0, -5.0])  # means pushed deep into tanh's tails
        mean, _ = actor._params(feats)
    torch.testing.assert_close(actor.saturation(feats), (mean.abs() - 2.0).pow(2).sum(-1))


def test_the_saturation_penalty_pulls_a_saturated_actor_back():
    grads, terms = {}, {}
    for coef in (0.0, 1.0):
        agent = DreamerAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=0, saturation_coef=coef, **TINY)
        agent.learn(60)
        bias = agent.policy.actor.net[-1].bias
        with torch.no_grad():
            bias[0] = 6.0  # a bang-bang actor: tanh(6) = 0.99999, a 6,000th of a gradient gets through
        agent.actor_optimizer.step = lambda: grads.__setitem__(coef, bias.grad[0].item())  # what the update applies
        torch.manual_seed(1)
        terms[coef] = agent.train()
    assert "actor/saturation" not in terms[0.0]
    assert terms[1.0]["actor/saturation"] > 9.0  # (|mean| - 2)^2 with means near 6
    # Everything else equal (same agent, same batch, same draws), the penalty's gradient 2 (|mean| - 2) is added:
    # descent lowers the saturated mean.
    assert grads[1.0] - grads[0.0] > 4.0, grads


def test_a_checkpoint_from_before_the_saturation_penalty_loads_without_it(trained, tmp_path, checkpoint_without):
    trained.save(tmp_path / "new.zip")
    assert DreamerAgent.load(checkpoint_without(tmp_path / "new.zip", "saturation_coef")).saturation_coef == 0.0
    with pytest.raises(ValueError, match="saturation_coef"):
        DreamerAgent("MlpPolicy", "Pendulum-v1", saturation_coef=-1.0)
    with pytest.raises(ValueError, match="saturation_coef=1.0.*Discrete"):  # no squashed means to penalise
        DreamerAgent("MlpPolicy", "CartPole-v1", saturation_coef=1.0)
