"""The world-model components, their trainers, and the quality each must reach on the ca11 environments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ca11_agents.data import (
    collect_sequence_data,
    collect_world_model_data,
    sample_sequences,
    sample_transitions,
    train_test_split,
)
from ca11_agents.evaluation import evaluate_rssm, evaluate_world_model, memoryless_reward_mse, sequence_reward_variance
from ca11_agents.world_models import (
    LatentDynamicsModel,
    RecurrentStateSpaceModel,
    RewardModel,
    RSSMTrainer,
    RunningMeanStd,
    Trainer,
    VariationalAutoencoder,
    WorldModel,
    WorldModelTrainer,
)
from ca11_gym import ContinuousCartPole, SequenceEnvironment

OBS, ACT, LATENT = 4, 1, 8


def make_world_model(ensemble_size: int = 1, latent_dim: int = LATENT) -> WorldModel:
    return WorldModel(
        VariationalAutoencoder(OBS, latent_dim, [32, 32]),
        LatentDynamicsModel(latent_dim, ACT, [32, 32], stochastic=True, ensemble_size=ensemble_size),
        RewardModel(latent_dim, ACT, [32]),
    )


def test_running_mean_std_matches_numpy_over_batches():
    rms = RunningMeanStd((3,))
    data = np.random.default_rng(0).normal([1.0, -5.0, 100.0], [0.1, 2.0, 30.0], size=(500, 3)).astype(np.float32)
    for chunk in np.array_split(data, 7):
        rms.update(torch.as_tensor(chunk))
    np.testing.assert_allclose(rms.mean.numpy(), data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var.numpy(), data.var(0), rtol=1e-3)
    x = torch.as_tensor(data[:5])
    torch.testing.assert_close(rms.denormalize(rms.normalize(x)), x)


def test_vae_shapes_and_kl():
    vae = VariationalAutoencoder(OBS, LATENT, [32, 16])
    recon, mu, log_var, z = vae(torch.randn(10, OBS))
    assert recon.shape == (10, OBS) and mu.shape == log_var.shape == z.shape == (10, LATENT)
    kl = vae.kl_divergence(mu, log_var)
    assert kl.shape == () and kl >= 0
    assert vae.kl_divergence(torch.zeros(3, LATENT), torch.zeros(3, LATENT)) == 0  # posterior = prior
    with pytest.raises(ValueError, match="observations"):
        vae(torch.randn(10, OBS + 1))


def test_vae_trained_alone_reconstructs_in_observation_units():
    """Observations far from unit scale: the VAE's normaliser makes reconstructions work in the env's units."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    obs = rng.normal([50.0, -3.0, 0.0, 0.01], [10.0, 1.0, 0.5, 0.005], size=(512, OBS)).astype(np.float32)
    vae = VariationalAutoencoder(OBS, LATENT, [64, 64])
    trainer = Trainer(vae, learning_rate=3e-3, device="cpu")
    for _ in range(300):
        trainer.train_step({"observations": obs[rng.integers(len(obs), size=64)]})
    vae.eval()
    with torch.no_grad():
        recon = vae(torch.as_tensor(obs))[0].numpy()
    relative_error = ((recon - obs) ** 2).mean(0) / obs.var(0)
    assert np.all(relative_error < 0.02), relative_error


def test_dynamics_ensemble_shapes_and_members_differ():
    dyn = LatentDynamicsModel(LATENT, ACT, [32], stochastic=True, ensemble_size=5)
    z, a = torch.randn(7, 3, LATENT), torch.randn(7, 3, ACT)  # any leading shape, e.g. (B, T)
    mean, std = dyn.members(z, a)
    assert mean.shape == std.shape == (5, 7, 3, LATENT) and torch.all(std > 0)
    assert dyn(z, a).shape == dyn.sample(z, a).shape == (7, 3, LATENT)
    assert dyn.uncertainty(z, a).shape == (7, 3)
    assert not torch.allclose(mean[0], mean[1])  # independent initialisations
    single = LatentDynamicsModel(LATENT, ACT, [32], stochastic=False)
    assert single.members(z, a)[1] is None
    assert torch.all(single.uncertainty(z, a) == 0)
    torch.testing.assert_close(single.sample(z, a), single(z, a))  # deterministic: sampling is the mean


def test_dynamics_ensemble_state_dict_round_trip_and_device_move():
    dyn = LatentDynamicsModel(LATENT, ACT, [32], ensemble_size=3).to(torch.device("cpu"))
    clone = LatentDynamicsModel(LATENT, ACT, [32], ensemble_size=3)
    clone.load_state_dict(dyn.state_dict())
    z, a = torch.randn(4, LATENT), torch.randn(4, ACT)
    torch.testing.assert_close(clone(z, a), dyn(z, a))


def test_ensemble_disagreement_grows_away_from_the_data():
    """Epistemic uncertainty: members agree where they were trained and disagree far from it."""
    torch.manual_seed(0)
    dyn = LatentDynamicsModel(2, 1, [64, 64], stochastic=True, ensemble_size=5)
    optimizer = torch.optim.Adam(dyn.parameters(), lr=3e-3)
    for _ in range(300):
        z, a = torch.rand(128, 2) * 2 - 1, torch.rand(128, 1) * 2 - 1
        loss = dyn.loss(z, a, z + 0.1 * a).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        inside = dyn.uncertainty(torch.rand(256, 2) * 2 - 1, torch.zeros(256, 1)).mean()
        outside = dyn.uncertainty(torch.full((256, 2), 6.0) + torch.randn(256, 2), torch.zeros(256, 1)).mean()
    assert outside > 5 * inside, (float(inside), float(outside))


def test_reward_model_starts_at_zero_with_batch_shape():
    reward = RewardModel(LATENT, ACT, [16])
    out = reward(torch.randn(6, 2, LATENT), torch.randn(6, 2, ACT))
    assert out.shape == (6, 2) and torch.all(out == 0)
    with pytest.raises(ValueError, match="RewardModel"):
        reward(torch.randn(6, LATENT), torch.randn(5, ACT))


def test_world_model_prediction_and_rollout_agree():
    wm = make_world_model(ensemble_size=2).eval()
    obs, actions = torch.randn(5, OBS), torch.randn(5, 3, ACT)
    next_obs, reward = wm.predict_next_state_and_reward(obs, actions[:, 0])
    assert next_obs.shape == (5, OBS) and reward.shape == (5,)
    obs_pred, rewards = wm.rollout(obs, actions)
    assert obs_pred.shape == (5, 3, OBS) and rewards.shape == (5, 3)
    # The rollout's first step is the one-step prediction.
    torch.testing.assert_close(obs_pred[:, 0], next_obs)
    torch.testing.assert_close(rewards[:, 0], reward)
    latents, _ = wm.imagine(wm.encode_observations(obs), actions)
    assert latents.shape == (5, 3, LATENT)


def test_world_model_rejects_mismatched_parts_and_batches():
    with pytest.raises(ValueError, match="latent sizes differ"):
        WorldModel(VariationalAutoencoder(OBS, 8), LatentDynamicsModel(4, ACT), RewardModel(8, ACT))
    wm = make_world_model()
    batch = {"observations": torch.randn(3, OBS), "actions": torch.randn(3, ACT), "rewards": torch.randn(3)}
    with pytest.raises(ValueError, match="next_observations"):
        wm.loss(batch)
    with pytest.raises(ValueError, match="actions"):
        wm.loss({**batch, "next_observations": torch.randn(3, OBS), "actions": torch.randn(3, 2)})


def test_the_termination_weight_scales_the_continue_loss_of_terminal_steps_only():
    batch = {
        "observations": torch.randn(6, OBS), "actions": torch.randn(6, ACT), "rewards": torch.ones(6),
        "next_observations": torch.randn(6, OBS), "terminated": torch.tensor([0.0, 0, 1, 0, 0, 0]),
    }  # fmt: skip
    losses = {}
    for weight in (1.0, 10.0):
        torch.manual_seed(0)  # the same networks
        wm = WorldModel(
            VariationalAutoencoder(OBS, LATENT, [32]), LatentDynamicsModel(LATENT, ACT, [32]),
            RewardModel(LATENT, ACT, [32]), continue_model=RewardModel(LATENT, ACT, [32]), termination_weight=weight,
        ).eval()  # fmt: skip
        torch.manual_seed(1)  # the same latent draws
        losses[weight] = wm.loss_terms(batch)[1]["continue_loss"].item() * 6
        torch.manual_seed(1)
        z = wm.vae.elbo_terms(batch["observations"]).z
        terminal = torch.nn.functional.softplus(wm.continue_model(z, batch["actions"])[2]).item()  # -log(1 - p)
    assert losses[10.0] - losses[1.0] == pytest.approx(9.0 * terminal, rel=1e-4)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="termination_weight"):
            WorldModel(
                VariationalAutoencoder(OBS, LATENT), LatentDynamicsModel(LATENT, ACT), RewardModel(LATENT, ACT),
                termination_weight=bad,
            )  # fmt: skip


def test_trainer_accepts_numpy_and_tensors_and_records_history():
    wm = make_world_model()
    trainer = WorldModelTrainer(wm, learning_rate=1e-3, device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    numpy_batch = {
        "observations": rng.normal(size=(16, OBS)),
        "actions": rng.uniform(-1, 1, size=(16, ACT)),
        "rewards": rng.normal(size=(16, 1)),  # (N, 1) is accepted too
        "next_observations": rng.normal(size=(16, OBS)),
    }
    metrics = trainer.train_step(numpy_batch)
    trainer.train_step({k: torch.as_tensor(v) for k, v in numpy_batch.items()})
    expected = {"loss", "reconstruction_loss", "kl_loss", "prediction_loss", "latent_loss", "reward_loss", "grad_norm"}
    assert set(metrics) == expected and all(isinstance(v, float) for v in metrics.values())
    assert trainer.num_steps == 2 and all(len(trainer.history[k]) == 2 for k in expected)
    with pytest.raises(ValueError, match="lacks"):
        trainer.train_step({"observations": numpy_batch["observations"]})


def test_trainer_clips_the_gradient_norm():
    wm = make_world_model()
    trainer = WorldModelTrainer(wm, device="auto", max_grad_norm=1e-3)
    batch = {"observations": np.full((8, OBS), 3.0), "actions": np.ones((8, ACT)),
             "rewards": np.full(8, 50.0), "next_observations": np.full((8, OBS), -3.0)}
    trainer.train_step(batch)  # sets the normalisers; the second step sees the same scale
    grads_seen: list[float] = []
    original_step = trainer.optimizer.step

    def step_and_record(*args, **kwargs):
        grads = [p.grad.norm() for p in wm.parameters() if p.grad is not None]
        grads_seen.append(float(torch.linalg.vector_norm(torch.stack(grads))))
        return original_step(*args, **kwargs)

    trainer.optimizer.step = step_and_record
    metrics = trainer.train_step(batch)
    assert metrics["grad_norm"] > 1e-3 and grads_seen[0] == pytest.approx(1e-3, rel=1e-3)


def test_world_model_halves_the_naive_one_step_error_on_cartpole():
    """The notebook's budget: 1,000 random transitions, 80/20 split, 500 steps of batch 64."""
    torch.manual_seed(0)
    data = collect_world_model_data(ContinuousCartPole(), steps=1000, episodes=5, seed=0)
    train, test = train_test_split(data, 0.8)
    wm = WorldModel(
        VariationalAutoencoder(OBS, 32, [128, 64]),
        LatentDynamicsModel(32, ACT, [128, 64], stochastic=True),
        RewardModel(32, ACT, [64, 32]),
    )
    trainer = WorldModelTrainer(wm, learning_rate=1e-3, device="cpu")
    rng = np.random.default_rng(0)
    for _ in range(500):
        trainer.train_step(sample_transitions(train, 64, rng))
    metrics = evaluate_world_model(wm, test, train_data=train)
    assert metrics["observation_mse"] <= 0.5 * metrics["baseline_observation_mse"], metrics
    assert metrics["reward_mse"] < 1e-3  # CartPole's reward is +1 on every step


def test_rssm_trainer_checks_the_sequence_layout():
    rssm = RecurrentStateSpaceModel(2, 1, 16, 32)
    trainer = RSSMTrainer(rssm, device="cpu")
    rng = np.random.default_rng(0)
    batch = {"observations": rng.normal(size=(3, 5, 2)), "actions": rng.uniform(-1, 1, size=(3, 5, 1)),
             "rewards": rng.normal(size=(3, 5, 1)), "is_first": np.zeros((3, 5), dtype=bool)}
    metrics = trainer.train_step(batch)
    assert {"loss", "reconstruction_loss", "reward_loss", "kl_loss", "grad_norm"} <= set(metrics)
    with pytest.raises(ValueError, match=r"\(B, T, O\)"):
        trainer.train_step({k: v[0] for k, v in batch.items()})


def test_rssm_predicts_rewards_better_than_any_memoryless_predictor():
    """SequenceEnvironment scores recalling the cue shown 2 steps earlier, which the observation no longer holds.

    Any predictor of r_t from (o_t, a_t) alone has MSE >= E[Var(r_t | o_t, a_t)] (computed from the reward
    definition by ``memoryless_reward_mse``); the RSSM, which filters the whole history, must go well below it.
    """
    torch.manual_seed(0)
    episodes = collect_sequence_data(SequenceEnvironment(memory_size=2, episode_length=10), episodes=60, seed=0)
    train, test = train_test_split(episodes, 0.8)
    rssm = RecurrentStateSpaceModel(2, 1, 32, 64)
    trainer = RSSMTrainer(rssm, learning_rate=3e-3, device="cpu")
    rng = np.random.default_rng(0)
    for _ in range(600):
        trainer.train_step(sample_sequences(train, 16, 10, rng))
    metrics = evaluate_rssm(rssm, test, train_episodes=train)
    bound = memoryless_reward_mse(test, sequence_reward_variance)
    assert bound > 0.2  # a third of the scored steps' a^2: far from zero
    assert metrics["reward_mse"] < 0.5 * bound, (metrics, bound)
