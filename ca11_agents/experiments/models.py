"""The course notebook's section 4 experiments: a world model (section 1) and an RSSM (section 2), end to end.

:func:`run_world_model_experiment` collects random ContinuousCartPole (or ContinuousPendulum) transitions, pre-trains
the VAE, trains the world model (VAE, latent dynamics and reward model together) and evaluates it on held-out
transitions: one-step errors, an open-loop rollout against reality and the error against horizon, each next to the
"nothing changes" baseline. :func:`run_rssm_experiment` trains the RSSM on random SequenceEnvironment episodes (a
memory task) and compares its reward error with the smallest error any memoryless predictor can reach::

    from ca11_agents.experiments import run_world_model_experiment
    world_model, trainer = run_world_model_experiment({"env_name": "continuous_cartpole", "latent_dim": 32})
    trainer.metrics["one_step"]["observation_mse"]
    run_world_model_experiment("tiny", out="runs/wm")     # a preset; writes a run folder

Each takes a config (:class:`WorldModelConfig`, :class:`RSSMConfig`), a plain dict of its fields (the notebook's),
a preset name (:data:`WORLD_MODEL_PRESETS`, :data:`RSSM_PRESETS`), a path to a ``config.json``, or ``None``. With
``out`` it writes ``config.json``, ``metrics.json``, PNG figures and TensorBoard scalars under ``out/tb``
(``tensorboard --logdir out/tb``): every training metric of every step as ``vae/*``, ``world_model/*`` or ``rssm/*``
(the trainer's ``history`` keys: ``loss``, its terms, ``grad_norm``) and the final metrics as ``<model>/eval/*``.
Runs with one seed give the same metrics, with or without ``out``. The "full" presets are the sizes
``scripts/walkthrough.py`` has always run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.utils import set_random_seed
from tqdm.auto import tqdm

import ca11_gym  # noqa: F401  (registers the CA11/ environment ids)
from ca11_agents.data import (
    collect_sequence_data,
    collect_world_model_data,
    sample_sequences,
    sample_transitions,
    train_test_split,
)
from ca11_agents.evaluation import (
    evaluate_rssm,
    evaluate_world_model,
    memoryless_reward_mse,
    rssm_horizon_errors,
    rssm_one_step_predictions,
    rssm_open_loop_predictions,
    sequence_reward_variance,
    transition_windows,
    world_model_calibration,
    world_model_horizon_errors,
)
from ca11_agents.experiments.config import Config, ConfigError, check_device
from ca11_agents.visualization import (
    plot_horizon_errors,
    plot_predictions,
    plot_rollout,
    plot_rssm_training,
    plot_world_model_training,
)
from ca11_agents.world_models import (
    DYNAMICS_CORES,
    REPRESENTATIONS,
    LatentDynamicsModel,
    RecurrentStateSpaceModel,
    RewardModel,
    RSSMTrainer,
    Trainer,
    VariationalAutoencoder,
    WorldModel,
    WorldModelTrainer,
)

C = TypeVar("C", bound=Config)

#: The notebook's environment names and the Gymnasium ids they stand for (either is accepted as ``env_name``).
ENV_NAMES: dict[str, str] = {
    "continuous_cartpole": "CA11/ContinuousCartPole-v0",
    "continuous_pendulum": "CA11/ContinuousPendulum-v0",
    "sequence_environment": "CA11/SequenceEnvironment-v0",
}
#: Observation dimensions by environment id, for the figures' panel titles.
DIM_NAMES: dict[str, tuple[str, ...]] = {
    "CA11/ContinuousCartPole-v0": ("cart position", "cart velocity", "pole angle", "pole angular velocity"),
    "CA11/ContinuousPendulum-v0": ("cos(angle)", "sin(angle)", "angular velocity"),
    "CA11/SequenceEnvironment-v0": ("cue", "recall flag"),
}
#: Transitions (episodes for the RSSM) used for training; the rest, from later episodes, are held out.
TRAIN_FRACTION = 0.8


def env_id(name: str, allowed: tuple[str, ...]) -> str:
    """The Gymnasium id of ``name`` (a short name of :data:`ENV_NAMES` or an id among ``allowed``), or
    :class:`ConfigError` listing the allowed names."""
    resolved = ENV_NAMES.get(name, name)
    if resolved not in allowed:
        names = [short for short, id_ in ENV_NAMES.items() if id_ in allowed] + list(allowed)
        raise ConfigError(f"env_name {name!r} is not allowed; allowed: {', '.join(names)}")
    return resolved


def _check_positive(config: Config, names: tuple[str, ...], nonnegative: tuple[str, ...] = ("seed",)) -> None:
    """:class:`ConfigError` unless every field of ``names`` (every item of a tuple) is > 0 and of ``nonnegative``
    is >= 0."""
    for name in names + nonnegative:
        value = getattr(config, name)
        values = value if isinstance(value, tuple) else (value,)
        if not all(v > 0 or (v == 0 and name in nonnegative) for v in values):
            raise ConfigError(f"{name} must be {'>=' if name in nonnegative else '>'} 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class WorldModelConfig(Config):
    """One world-model experiment (the notebook's section 4 dict; its defaults are the notebook's values)."""

    env_name: str = "continuous_cartpole"
    """Environment: 'continuous_cartpole', 'continuous_pendulum' or their Gymnasium ids ('CA11/...-v0')."""
    latent_dim: int = 32
    """Size of the VAE's latent space, in which the dynamics and reward models work."""
    vae_hidden_dims: tuple[int, ...] = (128, 64)
    """Hidden layer sizes of the VAE's encoder (the decoder mirrors them)."""
    dynamics_hidden_dims: tuple[int, ...] = (128, 64)
    """Hidden layer sizes of the latent dynamics model."""
    reward_hidden_dims: tuple[int, ...] = (64, 32)
    """Hidden layer sizes of the reward model."""
    stochastic_dynamics: bool = True
    """Gaussian latent dynamics (true) or a deterministic next latent (false)."""
    ensemble_size: int = 1
    """Members of the latent dynamics ensemble (PETS uses 5); their disagreement is the epistemic uncertainty."""
    learning_rate: float = 1e-3
    """Adam step size of the VAE pre-training and of the world model."""
    batch_size: int = 64
    """Transitions per gradient step."""
    train_steps: int = 1000
    """Gradient steps of world-model training (VAE, dynamics and reward model together)."""
    vae_steps: int = 1000
    """Gradient steps of VAE pre-training before the world model (notebook section 1.2); 0 skips it."""
    data_collection_steps: int = 5000
    """Transitions collected with random actions (80% train, 20% held out)."""
    data_collection_episodes: int = 20
    """Episodes the transitions are spread over (``collect_world_model_data``'s ``episodes``)."""
    rollout_steps: int = 50
    """Longest open-loop horizon evaluated (capped by the held-out transitions)."""
    seed: int = 42
    """Seeds data collection, batch sampling and the networks' initialisation."""
    device: str = "auto"
    """Torch device: 'auto' (CUDA when available), 'cpu', 'cuda', ..."""

    def __post_init__(self) -> None:
        self.env_id  # noqa: B018  (checks env_name)
        _check_positive(self, ("latent_dim", "vae_hidden_dims", "dynamics_hidden_dims", "reward_hidden_dims",
                               "learning_rate", "batch_size", "train_steps", "ensemble_size", "data_collection_steps",
                               "data_collection_episodes", "rollout_steps"), ("vae_steps", "seed"))
        check_device("device", self.device)

    @property
    def env_id(self) -> str:
        """The Gymnasium id of :attr:`env_name`."""
        return env_id(self.env_name, ("CA11/ContinuousCartPole-v0", "CA11/ContinuousPendulum-v0"))


@dataclasses.dataclass(frozen=True)
class RSSMConfig(Config):
    """One RSSM experiment on the SequenceEnvironment memory task (defaults: the walkthrough's full budget)."""

    env_name: str = "CA11/SequenceEnvironment-v0"
    """Environment: 'sequence_environment' or 'CA11/SequenceEnvironment-v0' (the memoryless bound is its own)."""
    memory_size: int = 5
    """Steps between a cue and its recall in SequenceEnvironment (the notebook's 5)."""
    episodes: int = 100
    """Episodes collected with random actions (80% train, 20% held out)."""
    episode_length: int = 20
    """Steps per episode (the notebook's 20)."""
    state_dim: int = 32
    """Size of the RSSM's stochastic latent."""
    hidden_dim: int = 128
    """Size of the RSSM's deterministic (recurrent) state."""
    core: str = "gru"
    """The RSSM's dynamics core: 'gru' or 'transformer' (attention over the last 16 steps)."""
    representation: str = "reconstruction"
    """The RSSM's representation loss: 'reconstruction', 'contrastive' or 'redundancy' (decoder-free)."""
    learning_rate: float = 3e-3
    """Adam step size (3e-3 learns the memory task in far fewer steps than the notebook's 1e-3)."""
    batch_size: int = 16
    """Sequences per gradient step."""
    seq_len: int = 20
    """Steps per training sequence (at most episode_length)."""
    train_steps: int = 2000
    """RSSM gradient steps."""
    context: int = 10
    """Steps the RSSM observes before predicting open loop to the episode's end (at most episode_length)."""
    seed: int = 42
    """Seeds data collection, batch sampling and the networks' initialisation."""
    device: str = "auto"
    """Torch device: 'auto' (CUDA when available), 'cpu', 'cuda', ..."""

    def __post_init__(self) -> None:
        self.env_id  # noqa: B018  (checks env_name)
        _check_positive(self, ("memory_size", "episodes", "episode_length", "state_dim", "hidden_dim",
                               "learning_rate", "batch_size", "seq_len", "train_steps", "context"))
        check_device("device", self.device)
        for name, valid in (("core", DYNAMICS_CORES), ("representation", REPRESENTATIONS)):
            if getattr(self, name) not in valid:
                raise ConfigError(f"{name} must be one of {sorted(valid)}, got {getattr(self, name)!r}")
        for name in ("seq_len", "context"):
            if getattr(self, name) > self.episode_length:
                raise ConfigError(f"{name} must be <= episode_length={self.episode_length}, "
                                  f"got {getattr(self, name)}")

    @property
    def env_id(self) -> str:
        """The Gymnasium id of :attr:`env_name`."""
        return env_id(self.env_name, ("CA11/SequenceEnvironment-v0",))


#: The notebook's section 4 config dict, verbatim.
NOTEBOOK_WORLD_MODEL_CONFIG: dict[str, Any] = {
    "env_name": "continuous_cartpole", "latent_dim": 32, "vae_hidden_dims": [128, 64],
    "dynamics_hidden_dims": [128, 64], "reward_hidden_dims": [64, 32], "stochastic_dynamics": True,
    "learning_rate": 1e-3, "batch_size": 64, "train_steps": 1000, "data_collection_steps": 5000,
    "data_collection_episodes": 20, "rollout_steps": 50,
}  # fmt: skip
#: Named world-model configs: "notebook" (section 4's dict), "tiny" (a smoke test, seconds), "full" (the
#: walkthrough's budget, a few minutes on CPU).
WORLD_MODEL_PRESETS: dict[str, WorldModelConfig] = {
    "notebook": WorldModelConfig.from_dict(NOTEBOOK_WORLD_MODEL_CONFIG),
    "tiny": WorldModelConfig(batch_size=32, train_steps=20, vae_steps=10, data_collection_steps=200,
                             data_collection_episodes=2, rollout_steps=5),
    "full": WorldModelConfig(batch_size=64, train_steps=2000, vae_steps=1000, data_collection_steps=1000,
                             data_collection_episodes=5, rollout_steps=30),
}
#: Named RSSM configs: "notebook" (section 2's cells: 50 episodes, 500 steps at 1e-3), "tiny" (seconds), "full"
#: (the walkthrough's budget, the defaults).
RSSM_PRESETS: dict[str, RSSMConfig] = {
    "notebook": RSSMConfig(episodes=50, learning_rate=1e-3, batch_size=8, seq_len=15, train_steps=500),
    "tiny": RSSMConfig(episodes=10, episode_length=12, hidden_dim=32, batch_size=5, seq_len=4, train_steps=10,
                       context=6),
    "full": RSSMConfig(),
}


def resolve_config(config: C | Mapping[str, Any] | str | Path | None, cls: type[C], presets: Mapping[str, C],
                   default: str) -> C:
    """``config`` as a ``cls``: an instance as is, a mapping checked by :meth:`Config.from_dict`, a preset name, a
    :class:`~pathlib.Path` to a JSON file, or ``None`` for ``presets[default]``."""
    if config is None:
        return presets[default]
    if isinstance(config, cls):
        return config
    if isinstance(config, str):
        if config not in presets:
            raise ConfigError(f"unknown {cls.__name__} preset {config!r}; allowed: {', '.join(presets)}")
        return presets[config]
    if isinstance(config, Path):
        return cls.load(config)
    if isinstance(config, Mapping):
        return cls.from_dict(config)
    raise ConfigError(f"config must be a {cls.__name__}, a mapping, a preset name ({', '.join(presets)}) or a "
                      f"path, got {type(config).__name__}")


class RunOutput:
    """A run folder: ``config.json`` at once, TensorBoard scalars under ``tb/`` as training goes, figures, and
    ``metrics.json`` with the final metrics (:meth:`close`). With ``out=None`` every method does nothing."""

    def __init__(self, out: str | Path | None, config: Config) -> None:
        self.dir = None if out is None else Path(out)
        self.writer: Any = None
        if self.dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # imported here: only run folders need it

            self.dir.mkdir(parents=True, exist_ok=True)
            config.save(self.dir / "config.json")
            self.writer = SummaryWriter(str(self.dir / "tb"))
            self.writer.add_text("config", f"```\n{json.dumps(config.to_dict(), indent=2)}\n```")

    def path(self, name: str) -> Path | None:
        """Where the figure ``name`` goes, or ``None`` (no figures) without a run folder."""
        return None if self.dir is None else self.dir / name

    def log(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        """One TensorBoard scalar ``prefix/key`` per value at ``step``."""
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def close(self, metrics: dict[str, Any], prefix: str, step: int) -> None:
        """Write ``metrics.json`` and log the metrics under ``prefix/eval/`` (one-step errors at ``step``, horizon
        curves by horizon; the prefix keeps two experiments apart in one folder, as the walkthrough writes)."""
        if self.dir is None:
            return
        (self.dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        self.log(f"{prefix}/eval/one_step", metrics["one_step"], step)
        horizon = metrics["horizon"]
        for key, values in horizon.items():
            if isinstance(values, list) and key != "horizon":
                for h, value in zip(horizon["horizon"], values):
                    self.writer.add_scalar(f"{prefix}/eval/horizon/{key}", value, h)
        self.writer.close()


def _train(trainer: Trainer, steps: int, sample: Callable[[], Any], output: RunOutput, prefix: str, bar: tqdm) -> None:
    """``steps`` gradient steps on ``sample()`` batches, each step's losses logged under ``prefix``."""
    bar.set_description(prefix)
    for _ in range(steps):
        output.log(prefix, trainer.train_step(sample()), trainer.num_steps)
        bar.update()


def _short(id_: str) -> str:
    """``"CA11/ContinuousCartPole-v0" -> "ContinuousCartPole"`` (for figure titles)."""
    return id_.split("/")[-1].rsplit("-v", 1)[0]


def _as_lists(result: Mapping[str, Any]) -> dict[str, Any]:
    return {key: np.asarray(value).tolist() for key, value in result.items()}


def run_world_model_experiment(
    config: WorldModelConfig | Mapping[str, Any] | str | Path | None = None, out: str | Path | None = None
) -> tuple[WorldModel, WorldModelTrainer]:
    """Collect data, pre-train the VAE, train and evaluate a world model (the notebook's section 1, see the module
    docstring); returns the trained model and its trainer, whose ``metrics`` attribute holds what ``metrics.json``
    does: ``one_step`` errors (:func:`~ca11_agents.evaluation.evaluate_world_model`) and ``horizon`` curves
    (:func:`~ca11_agents.evaluation.world_model_horizon_errors`), next to their baselines.

    Args:
        config: see :func:`resolve_config`; ``None`` is the notebook's config. Unknown keys and values of the
            wrong type raise :class:`ConfigError` naming them.
        out: a run folder to write ``config.json``, ``metrics.json``, figures and ``tb/`` into (created); ``None``
            writes nothing and draws no figures.
    """
    config = resolve_config(config, WorldModelConfig, WORLD_MODEL_PRESETS, "notebook")
    output, dims = RunOutput(out, config), DIM_NAMES[config.env_id]
    set_random_seed(config.seed)
    env = gym.make(config.env_id)
    data = collect_world_model_data(env, steps=config.data_collection_steps, episodes=config.data_collection_episodes,
                                    seed=config.seed)
    env.close()
    train, test = train_test_split(data, TRAIN_FRACTION)
    rng = np.random.default_rng(config.seed)
    obs_dim, action_dim = data["observations"].shape[1], data["actions"].shape[1]
    tqdm.write(f"[1.1] collected {len(data['rewards'])} transitions; {len(train['rewards'])} train, "
               f"{len(test['rewards'])} held out")

    vae = VariationalAutoencoder(obs_dim, config.latent_dim, list(config.vae_hidden_dims))
    vae_trainer = Trainer(vae, learning_rate=config.learning_rate, device=config.device)
    with tqdm(total=config.vae_steps + config.train_steps, unit="step") as bar:
        # 1.2: the VAE alone (the generic Trainer trains any module with a loss(batch) method).
        _train(vae_trainer, config.vae_steps, lambda: {"observations": sample_transitions(
            train, config.batch_size, rng)["observations"]}, output, "vae", bar)  # fmt: skip
        if output.dir is not None and config.vae_steps:
            plot_world_model_training(vae_trainer, "VAE pre-training", save_path=output.path("vae_training.png"))
        if output.dir is not None:
            vae.eval()
            with torch.no_grad():
                recon = vae(torch.as_tensor(test["observations"], device=vae_trainer.device))[0].cpu().numpy()
            plot_predictions(test["observations"], recon, dim_names=dims, title="VAE reconstructions (held out)",
                             save_path=output.path("vae_reconstructions.png"))

        # 1.3: dynamics and reward model on top of the pre-trained VAE, all trained together (see WorldModel).
        world_model = WorldModel(
            vae,
            LatentDynamicsModel(config.latent_dim, action_dim, list(config.dynamics_hidden_dims),
                                stochastic=config.stochastic_dynamics, ensemble_size=config.ensemble_size),
            RewardModel(config.latent_dim, action_dim, list(config.reward_hidden_dims)),
        )
        trainer = WorldModelTrainer(world_model, learning_rate=config.learning_rate, device=config.device)
        _train(trainer, config.train_steps, lambda: sample_transitions(train, config.batch_size, rng), output,
               "world_model", bar)
    if output.dir is not None:
        plot_world_model_training(trainer, "World model training", save_path=output.path("world_model_training.png"))

    # 1.4: evaluation on held-out transitions.
    one_step = evaluate_world_model(world_model, test, train_data=train)
    horizon = min(config.rollout_steps, len(test["rewards"]))
    while horizon > 1 and len(transition_windows(test, horizon)) == 0:  # capped by the held-out episodes' lengths
        horizon -= 1
    horizons = world_model_horizon_errors(world_model, test, horizon, train_data=train)
    if output.dir is not None:
        device = trainer.device
        with torch.no_grad():
            next_obs, _ = world_model.predict_next_state_and_reward(
                torch.as_tensor(test["observations"], device=device), torch.as_tensor(test["actions"], device=device))
        plot_predictions(test["next_observations"], next_obs.cpu().numpy(), reference=test["observations"],
                         dim_names=dims, title="One-step predictions: change of each variable (held out)",
                         save_path=output.path("world_model_predictions.png"))
        start = int(transition_windows(test, horizon)[0])
        with torch.no_grad():
            obs_pred, reward_pred = world_model.rollout(
                torch.as_tensor(test["observations"][start : start + 1], device=device),
                torch.as_tensor(test["actions"][None, start : start + horizon], device=device),
            )
        steps = slice(start, start + horizon)
        plot_rollout(test["next_observations"][steps], obs_pred[0].cpu().numpy(), test["rewards"][steps],
                     reward_pred[0].cpu().numpy(), dim_names=dims, title="World model: open-loop rollout against "
                     "reality", save_path=output.path("world_model_rollout.png"))  # fmt: skip
        plot_horizon_errors({"world model": horizons},
                            f"World model ({_short(config.env_id)}): error against horizon",
                            save_path=output.path("world_model_horizon_errors.png"))
    tqdm.write(f"[1.4] one-step observation MSE {one_step['observation_mse']:.2e} "
               f"(baseline next = current: {one_step['baseline_observation_mse']:.2e})")
    calibration = world_model_calibration(world_model, test)
    if calibration:
        tqdm.write("[1.4] calibration, held-out latents inside the predicted 68/95% intervals: " + ", ".join(
            f"{kind} {c['68']:.2f}/{c['95']:.2f}" for kind, c in calibration.items()))
    trainer.metrics = {"one_step": one_step, "horizon": _as_lists(horizons), "calibration": calibration}
    output.close(trainer.metrics, "world_model", trainer.num_steps)
    return world_model, trainer


def run_rssm_experiment(
    config: RSSMConfig | Mapping[str, Any] | str | Path | None = None, out: str | Path | None = None
) -> tuple[RecurrentStateSpaceModel, RSSMTrainer]:
    """Train and evaluate an RSSM on SequenceEnvironment (the notebook's section 2: recall the cue shown
    ``memory_size`` steps ago); returns the model and its trainer, whose ``metrics`` attribute holds what
    ``metrics.json`` does: ``one_step`` errors (:func:`~ca11_agents.evaluation.evaluate_rssm`, with
    ``memoryless_reward_mse_bound``, the error no predictor without memory can beat) and open-loop ``horizon``
    curves after ``context`` observed steps (:func:`~ca11_agents.evaluation.rssm_horizon_errors`).

    Args:
        config: see :func:`resolve_config`; ``None`` is :class:`RSSMConfig`'s defaults (the "full" preset).
        out: as :func:`run_world_model_experiment`.
    """
    config = resolve_config(config, RSSMConfig, RSSM_PRESETS, "full")
    output, dims = RunOutput(out, config), DIM_NAMES[config.env_id]
    set_random_seed(config.seed)
    # The environment's episodes (25 steps by default) are cut at episode_length by the collector (truncated).
    env = gym.make(config.env_id, memory_size=config.memory_size, episode_length=max(25, config.episode_length))
    episodes = collect_sequence_data(env, episodes=config.episodes, episode_length=config.episode_length,
                                     seed=config.seed)
    env.close()
    train, test = train_test_split(episodes, TRAIN_FRACTION)
    rng = np.random.default_rng(config.seed)
    obs_dim, action_dim = episodes[0]["observations"].shape[1], episodes[0]["actions"].shape[1]
    tqdm.write(f"[2.1] collected {len(episodes)} episodes of {config.episode_length} steps")

    rssm = RecurrentStateSpaceModel(obs_dim, action_dim, config.state_dim, config.hidden_dim, core=config.core,
                                    representation=config.representation)
    trainer = RSSMTrainer(rssm, learning_rate=config.learning_rate, device=config.device)
    with tqdm(total=config.train_steps, unit="step") as bar:
        _train(trainer, config.train_steps, lambda: sample_sequences(train, config.batch_size, config.seq_len, rng),
               output, "rssm", bar)

    one_step = evaluate_rssm(rssm, test, train_episodes=train)
    # No predictor that sees only (o_t, a_t) can have a reward MSE below this: the RSSM's memory must beat it.
    one_step["memoryless_reward_mse_bound"] = memoryless_reward_mse(test, sequence_reward_variance)
    # Computed with or without a run folder: they draw samples, so skipping them would change the metrics below.
    filtered, episode = rssm_one_step_predictions(rssm, test[:1]), test[0]
    context, horizon = config.context, config.episode_length - config.context + 1
    open_loop = rssm_open_loop_predictions(rssm, test[:1], context, horizon)
    horizons = rssm_horizon_errors(rssm, test, context, horizon, train_episodes=train)
    if output.dir is not None:
        plot_rssm_training(trainer, "RSSM training", save_path=output.path("rssm_training.png"))
        plot_rollout(episode["next_observations"], filtered["next_observations"][0], episode["rewards"],
                     filtered["rewards"][0], dim_names=dims,
                     title="RSSM one-step predictions along a held-out episode, after filtering every step before",
                     xlabel="step t + 1 (predicting o_{t+1} and r_t)", save_path=output.path("rssm_predictions.png"))
        steps = slice(context - 1, context - 1 + horizon)
        plot_rollout(episode["next_observations"][steps], open_loop["observations"][0], episode["rewards"][steps],
                     open_loop["rewards"][0], dim_names=dims,
                     title=f"RSSM: open loop after observing {context} steps, against reality",
                     save_path=output.path("rssm_open_loop.png"))
        plot_horizon_errors({"RSSM": horizons},
                            f"RSSM ({_short(config.env_id)}): open-loop error after {context} steps",
                            save_path=output.path("rssm_horizon_errors.png"))
    tqdm.write(f"[2.2] one-step reward MSE {one_step['reward_mse']:.3f} (best memoryless predictor: "
               f"{one_step['memoryless_reward_mse_bound']:.3f}, training mean: {one_step['baseline_reward_mse']:.3f})")
    trainer.metrics = {"one_step": one_step, "horizon": _as_lists(horizons)}
    output.close(trainer.metrics, "rssm", trainer.num_steps)
    return rssm, trainer
