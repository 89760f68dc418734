"""Prediction-error evaluation (ca11_agents.evaluation) and the figures (ca11_agents.visualization)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ca11_agents.data import collect_sequence_data, collect_world_model_data  # noqa: E402
from ca11_agents.evaluation import (  # noqa: E402
    evaluate_rssm,
    evaluate_world_model,
    memoryless_reward_mse,
    rssm_horizon_errors,
    rssm_open_loop_predictions,
    sequence_reward_variance,
    transition_windows,
    world_model_horizon_errors,
)
from ca11_agents.visualization import (  # noqa: E402
    plot_horizon_errors,
    plot_predictions,
    plot_rollout,
    plot_rssm_training,
    plot_world_model_training,
)
from ca11_agents.world_models import (  # noqa: E402
    LatentDynamicsModel,
    RecurrentStateSpaceModel,
    RewardModel,
    VariationalAutoencoder,
    WorldModel,
    WorldModelTrainer,
)
from ca11_gym import ContinuousCartPole, SequenceEnvironment  # noqa: E402


@pytest.fixture(scope="module")
def cartpole_data() -> dict[str, np.ndarray]:
    return collect_world_model_data(ContinuousCartPole(), steps=300, seed=0)


@pytest.fixture(scope="module")
def world_model() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(VariationalAutoencoder(4, 8, [32]), LatentDynamicsModel(8, 1, [32]), RewardModel(8, 1, [32]))


@pytest.fixture(scope="module")
def sequence_episodes() -> list[dict[str, np.ndarray]]:
    return collect_sequence_data(SequenceEnvironment(memory_size=2, episode_length=8), episodes=6, seed=0)


def test_transition_windows_stay_inside_episodes():
    obs = np.arange(8, dtype=np.float32)[:, None]
    data = {
        "observations": obs,
        "next_observations": obs + 1,
        "terminated": np.array([0, 0, 1, 0, 0, 0, 0, 0], dtype=bool),  # episodes: rows 0-2 and 3-7
        "truncated": np.zeros(8, dtype=bool),
    }
    np.testing.assert_array_equal(transition_windows(data, 1), np.arange(8))
    np.testing.assert_array_equal(transition_windows(data, 3), [0, 3, 4, 5])
    data["next_observations"][5] = 99.0  # a broken link (shuffled or split data) also ends a window
    np.testing.assert_array_equal(transition_windows(data, 3), [0, 3])


def test_world_model_errors_and_baselines(cartpole_data, world_model):
    train = {k: v[:200] for k, v in cartpole_data.items()}
    test = {k: v[200:] for k, v in cartpole_data.items()}
    metrics = evaluate_world_model(world_model, test, train_data=train)
    naive = ((test["observations"] - test["next_observations"]) ** 2).mean()
    assert metrics["baseline_observation_mse"] == pytest.approx(naive)
    assert metrics["baseline_reward_mse"] == pytest.approx(((test["rewards"] - train["rewards"].mean()) ** 2).mean())
    assert metrics["observation_rmse"] == pytest.approx(np.sqrt(metrics["observation_mse"]))

    horizons = world_model_horizon_errors(world_model, test, 4, train_data=train)
    assert all(horizons[k].shape == (4,) for k in ("horizon", "observation_mse", "reward_mse"))
    # Horizon 1 of the rollout is the one-step prediction, scored on the windows' first transitions.
    starts = transition_windows(test, 4)
    first = evaluate_world_model(world_model, {k: v[starts] for k, v in test.items()}, train_data=train)
    assert horizons["observation_mse"][0] == pytest.approx(first["observation_mse"], rel=1e-5)
    assert horizons["baseline_observation_mse"][0] == pytest.approx(first["baseline_observation_mse"])
    assert int(horizons["windows"]) == len(starts)
    with pytest.raises(ValueError, match="consecutive"):
        world_model_horizon_errors(world_model, test, 1000)


def test_memoryless_bound_is_the_error_of_the_best_memoryless_predictor():
    """In SequenceEnvironment, E[r | o, a] = flag * (1 - a^2) / 2; its error on real episodes equals the bound."""
    episodes = collect_sequence_data(SequenceEnvironment(memory_size=3), episodes=40, seed=1)
    obs = np.concatenate([ep["observations"] for ep in episodes])
    actions = np.concatenate([ep["actions"] for ep in episodes])
    rewards = np.concatenate([ep["rewards"] for ep in episodes])
    best_memoryless = obs[:, 1] * (1.0 - actions[:, 0] ** 2) / 2.0
    bound = memoryless_reward_mse(episodes, sequence_reward_variance)
    assert bound == pytest.approx(((rewards - best_memoryless) ** 2).mean(), rel=1e-5)
    assert bound == pytest.approx(memoryless_reward_mse({"observations": obs, "actions": actions},
                                                        sequence_reward_variance))
    # A uniformly random policy: a third of the scored steps' a^2 on average, 22/25 steps scored.
    assert bound == pytest.approx(22 / 25 / 3, rel=0.1)


def test_rssm_evaluation_layout_and_baselines(sequence_episodes):
    torch.manual_seed(0)
    rssm = RecurrentStateSpaceModel(2, 1, 16, 32)
    train, test = sequence_episodes[:4], sequence_episodes[4:]
    metrics = evaluate_rssm(rssm, test, train_episodes=train, num_samples=4)
    rewards = np.concatenate([ep["rewards"] for ep in test])
    train_mean = np.concatenate([ep["rewards"] for ep in train]).mean()
    assert metrics["baseline_reward_mse"] == pytest.approx(((rewards - train_mean) ** 2).mean())
    assert np.isfinite(list(metrics.values())).all()

    pred = rssm_open_loop_predictions(rssm, test, context=3, horizon=6, num_samples=4)
    assert pred["observations"].shape == (2, 6, 2) and pred["rewards"].shape == (2, 6)
    horizons = rssm_horizon_errors(rssm, test, context=3, horizon=6, train_episodes=train, num_samples=4)
    last_seen = np.stack([ep["observations"][2] for ep in test])
    assert horizons["baseline_observation_mse"][0] == pytest.approx(
        ((last_seen - np.stack([ep["observations"][3] for ep in test])) ** 2).mean()
    )
    with pytest.raises(ValueError, match="no episode"):
        rssm_horizon_errors(rssm, test, context=5, horizon=6)


def test_training_plots_from_a_trainer_or_a_history(tmp_path):
    wm = WorldModel(VariationalAutoencoder(4, 8, [32]), LatentDynamicsModel(8, 1, [32]), RewardModel(8, 1, [32]))
    trainer = WorldModelTrainer(wm, device="cpu")
    batch = {k: v[:32] for k, v in collect_world_model_data(ContinuousCartPole(), steps=32, seed=0).items()}
    for _ in range(3):
        trainer.train_step(batch)
    fig = plot_world_model_training(trainer, "demo", save_path=tmp_path / "wm.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 4 and fig.get_suptitle() == "demo"
    assert (tmp_path / "wm.png").read_bytes()[:4] == b"\x89PNG"
    rssm_history = {"loss": [3.0, 2.0, 1.0], "reward_loss": [1.0, 0.5, 0.2]}  # panels without data are left out
    assert len(plot_rssm_training(rssm_history).axes) == 2
    with pytest.raises(ValueError, match="none of the metrics"):
        plot_rssm_training({"unrelated": [1.0]})


def test_prediction_rollout_and_horizon_figures(tmp_path):
    rng = np.random.default_rng(0)
    true, pred, ref = rng.normal(size=(20, 3)), rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    fig = plot_predictions(true, pred, reference=ref, dim_names=["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets(), np.c_[true[:, 0] - ref[:, 0],
                                                                               pred[:, 0] - ref[:, 0]])
    assert len(plot_rollout(true, pred, true[:, 0], pred[:, 0]).axes) == 4  # 3 dimensions and the reward
    with pytest.raises(ValueError, match="must both be"):
        plot_rollout(true, pred[:5])
    errors = {"horizon": np.arange(1, 4), "observation_mse": np.ones(3), "reward_mse": np.zeros(3),
              "baseline_observation_mse": np.ones(3), "baseline_reward_mse": np.ones(3)}
    plot_horizon_errors({"m": errors}, save_path=tmp_path / "sub" / "h.png")
    assert (tmp_path / "sub" / "h.png").stat().st_size > 0
