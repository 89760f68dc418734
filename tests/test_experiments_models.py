"""The notebook's section 4 entry points (ca11_agents.experiments.models): configs and presets, the notebook's dict,
run folders (config.json, metrics.json, figures, TensorBoard scalars) and seeding. Tiny budgets: seconds each."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ca11_agents.experiments import (
    RSSM_PRESETS,
    WORLD_MODEL_PRESETS,
    ConfigError,
    RSSMConfig,
    WorldModelConfig,
    run_rssm_experiment,
    run_world_model_experiment,
)
from ca11_agents.experiments.config import field_docs
from ca11_agents.experiments.models import resolve_config
from ca11_agents.world_models import (
    LatentDynamicsModel,
    RecurrentStateSpaceModel,
    RewardModel,
    RSSMTrainer,
    WorldModel,
    WorldModelTrainer,
)

#: The notebook's section 4 cell, as written there.
NOTEBOOK = {
    "env_name": "continuous_cartpole", "latent_dim": 32, "vae_hidden_dims": [128, 64],
    "dynamics_hidden_dims": [128, 64], "reward_hidden_dims": [64, 32], "stochastic_dynamics": True,
    "learning_rate": 1e-3, "batch_size": 64, "train_steps": 1000, "data_collection_steps": 5000,
    "data_collection_episodes": 20, "rollout_steps": 50,
}  # fmt: skip
WORLD_MODEL_FIGURES = ["vae_training.png", "vae_reconstructions.png", "world_model_training.png",
                       "world_model_predictions.png", "world_model_rollout.png", "world_model_horizon_errors.png"]
RSSM_FIGURES = ["rssm_training.png", "rssm_predictions.png", "rssm_open_loop.png", "rssm_horizon_errors.png"]
TINY_WM = WORLD_MODEL_PRESETS["tiny"].replace(device="cpu")
TINY_RSSM = RSSM_PRESETS["tiny"].replace(device="cpu")


def n_params(module) -> int:  # noqa: ANN001
    return sum(p.numel() for p in module.parameters())


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar written under ``run/tb``, as ``tag -> [(step, value), ...]``."""
    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted((run / "tb").glob("events.out.tfevents*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_presets_are_the_notebook_and_walkthrough_sizes() -> None:
    assert WORLD_MODEL_PRESETS["notebook"] == WorldModelConfig.from_dict(NOTEBOOK) == WorldModelConfig()
    assert resolve_config(None, WorldModelConfig, WORLD_MODEL_PRESETS, "notebook") == WorldModelConfig()
    full, tiny = WORLD_MODEL_PRESETS["full"], WORLD_MODEL_PRESETS["tiny"]
    # scripts/walkthrough.py's Budget("full") and Budget("tiny") before the move, field for field.
    sizes = ("data_collection_steps", "data_collection_episodes", "vae_steps", "train_steps", "batch_size",
             "rollout_steps")
    assert tuple(getattr(full, k) for k in sizes) == (1000, 5, 1000, 2000, 64, 30)
    assert tuple(getattr(tiny, k) for k in sizes) == (200, 2, 10, 20, 32, 5)
    rssm_sizes = ("episodes", "episode_length", "train_steps", "batch_size", "seq_len", "hidden_dim",
                  "learning_rate", "context", "state_dim", "memory_size")
    assert tuple(getattr(RSSM_PRESETS["full"], k) for k in rssm_sizes) == (100, 20, 2000, 16, 20, 128, 3e-3, 10, 32, 5)
    assert tuple(getattr(RSSM_PRESETS["tiny"], k) for k in rssm_sizes) == (10, 12, 10, 5, 4, 32, 3e-3, 6, 32, 5)
    assert RSSM_PRESETS["full"] == RSSMConfig() and RSSM_PRESETS["notebook"].learning_rate == 1e-3
    for cls in (WorldModelConfig, RSSMConfig):  # every field is documented, so describe() explains it
        docs = field_docs(cls)
        assert all(docs.get(f.name) for f in dataclasses.fields(cls)), cls
        assert all(f"  {f.name} (" in cls.describe() for f in dataclasses.fields(cls))


def test_env_names_short_and_gymnasium_ids() -> None:
    assert WorldModelConfig().env_id == "CA11/ContinuousCartPole-v0"
    assert WorldModelConfig(env_name="continuous_pendulum").env_id == "CA11/ContinuousPendulum-v0"
    assert WorldModelConfig(env_name="CA11/ContinuousPendulum-v0").env_id == "CA11/ContinuousPendulum-v0"
    assert RSSMConfig(env_name="sequence_environment").env_id == RSSMConfig().env_id == "CA11/SequenceEnvironment-v0"


@pytest.mark.parametrize(
    ("run", "config", "named"),
    [
        (run_world_model_experiment, {**NOTEBOOK, "latent_size": 8}, ["'latent_size'", "latent_dim", "vae_steps"]),
        (run_world_model_experiment, {"latent_dim": "32"}, ["latent_dim", "an integer"]),
        (run_world_model_experiment, {"stochastic_dynamics": 1}, ["stochastic_dynamics", "true or false"]),
        (run_world_model_experiment, {"vae_hidden_dims": [128, "64"]}, ["vae_hidden_dims"]),
        (run_world_model_experiment, {"env_name": "cartpole"},
         ["'cartpole'", "continuous_cartpole", "continuous_pendulum", "CA11/ContinuousCartPole-v0"]),
        (run_world_model_experiment, {"env_name": "CA11/SequenceEnvironment-v0"}, ["SequenceEnvironment"]),
        (run_world_model_experiment, {"batch_size": 0}, ["batch_size", "> 0"]),
        (run_world_model_experiment, {"vae_steps": -1}, ["vae_steps", ">= 0"]),
        (run_world_model_experiment, {"dynamics_hidden_dims": [64, 0]}, ["dynamics_hidden_dims"]),
        (run_world_model_experiment, "huge", ["'huge'", "notebook", "tiny", "full"]),
        (run_world_model_experiment, 32, ["WorldModelConfig", "int"]),
        (run_rssm_experiment, {"hidden": 8}, ["'hidden'", "hidden_dim"]),
        (run_rssm_experiment, {"learning_rate": "fast"}, ["learning_rate", "a number"]),
        (run_rssm_experiment, {"env_name": "continuous_cartpole"}, ["continuous_cartpole", "sequence_environment"]),
        (run_rssm_experiment, {"seq_len": 30}, ["seq_len", "episode_length=20"]),
    ],
)
def test_bad_configs_raise_config_error_naming_the_key(run, config, named, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError) as err:
        run(config, out=tmp_path / "run")
    assert all(name in str(err.value) for name in named), str(err.value)
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_notebook_dict_builds_the_configured_world_model(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    config = {**NOTEBOOK, "latent_dim": 8, "vae_hidden_dims": [16], "dynamics_hidden_dims": [24, 12],
              "reward_hidden_dims": [10], "stochastic_dynamics": False, "learning_rate": 2e-3, "batch_size": 16,
              "train_steps": 6, "vae_steps": 3, "data_collection_steps": 200, "data_collection_episodes": 2,
              "rollout_steps": 4, "device": "cpu"}  # fmt: skip
    world_model, trainer = run_world_model_experiment(config)
    assert isinstance(world_model, WorldModel) and isinstance(trainer, WorldModelTrainer)
    assert trainer.model is world_model and world_model.vae.latent_dim == 8
    assert [m.out_features for m in world_model.vae.encoder.modules() if hasattr(m, "out_features")] == [16, 16]
    assert not world_model.dynamics.stochastic
    assert n_params(world_model.dynamics) == n_params(LatentDynamicsModel(8, 1, [24, 12], stochastic=False))
    assert n_params(world_model.reward_model) == n_params(RewardModel(8, 1, [10]))
    assert trainer.optimizer.param_groups[0]["lr"] == 2e-3 and trainer.num_steps == len(trainer.history["loss"]) == 6
    one_step, horizon = trainer.metrics["one_step"], trainer.metrics["horizon"]
    assert {"observation_mse", "reward_mse", "baseline_observation_mse", "baseline_reward_mse"} <= set(one_step)
    assert all(math.isfinite(v) for v in one_step.values())
    assert horizon["horizon"] == [1, 2, 3, 4] and len(horizon["observation_mse"]) == 4
    assert list(tmp_path.iterdir()) == []  # no out: nothing written


def test_world_model_run_folder(tmp_path) -> None:  # noqa: ANN001
    run = tmp_path / "run"
    _, trainer = run_world_model_experiment(TINY_WM, out=str(run))
    assert WorldModelConfig.load(run / "config.json") == TINY_WM
    assert resolve_config(run / "config.json", WorldModelConfig, WORLD_MODEL_PRESETS, "notebook") == TINY_WM
    assert json.loads((run / "metrics.json").read_text()) == json.loads(json.dumps(trainer.metrics))
    for name in WORLD_MODEL_FIGURES:
        assert (run / name).read_bytes()[:4] == b"\x89PNG", name
    logged = scalars(run)
    assert [step for step, _ in logged["vae/loss"]] == list(range(1, TINY_WM.vae_steps + 1))
    assert [step for step, _ in logged["world_model/reward_loss"]] == list(range(1, TINY_WM.train_steps + 1))
    assert [v for _, v in logged["world_model/loss"]] == pytest.approx(trainer.history["loss"], rel=1e-6)
    one_step, horizon = trainer.metrics["one_step"]["observation_mse"], trainer.metrics["horizon"]
    assert logged["world_model/eval/one_step/observation_mse"] == [(TINY_WM.train_steps, pytest.approx(one_step))]
    curve = logged["world_model/eval/horizon/observation_mse"]
    assert [step for step, _ in curve] == horizon["horizon"]
    assert [v for _, v in curve] == pytest.approx(horizon["observation_mse"])


def test_world_model_same_seed_same_metrics_with_or_without_a_folder(tmp_path) -> None:  # noqa: ANN001
    first = run_world_model_experiment(TINY_WM)[1].metrics
    assert run_world_model_experiment(TINY_WM.to_dict(), out=tmp_path)[1].metrics == first
    assert run_world_model_experiment(TINY_WM.replace(seed=7))[1].metrics != first


def test_pendulum_world_model(tmp_path) -> None:  # noqa: ANN001
    config = TINY_WM.replace(env_name="continuous_pendulum", train_steps=5, vae_steps=2)
    world_model, trainer = run_world_model_experiment(config, out=tmp_path)
    assert world_model.vae.obs_dim == 3 and len(trainer.metrics["horizon"]["horizon"]) == config.rollout_steps
    assert (tmp_path / "world_model_rollout.png").read_bytes()[:4] == b"\x89PNG"


def test_rssm_experiment(tmp_path) -> None:  # noqa: ANN001
    config = TINY_RSSM.replace(hidden_dim=24, state_dim=16)
    rssm, trainer = run_rssm_experiment(config.to_dict(), out=tmp_path)
    assert isinstance(rssm, RecurrentStateSpaceModel) and isinstance(trainer, RSSMTrainer) and trainer.model is rssm
    assert (rssm.hidden_dim, rssm.state_dim) == (24, 16) and trainer.optimizer.param_groups[0]["lr"] == 3e-3
    assert RSSMConfig.load(tmp_path / "config.json") == config
    metrics = trainer.metrics
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["one_step"]["memoryless_reward_mse_bound"] > 0
    assert all(math.isfinite(v) for v in metrics["one_step"].values())
    assert len(metrics["horizon"]["reward_mse"]) == config.episode_length - config.context + 1
    for name in RSSM_FIGURES:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    logged = scalars(tmp_path)
    assert [step for step, _ in logged["rssm/loss"]] == list(range(1, config.train_steps + 1))
    assert {"rssm/kl_loss", "rssm/reward_loss", "rssm/grad_norm", "rssm/eval/one_step/reward_mse",
            "rssm/eval/horizon/reward_mse"} <= set(logged)
    # Same config, no folder: the same metrics (the figures' predictions sample too, and run either way).
    assert run_rssm_experiment(config)[1].metrics == metrics
    assert run_rssm_experiment(config.replace(seed=3))[1].metrics != metrics
