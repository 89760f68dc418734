"""Experiments: typed configurations (:mod:`~ca11_agents.experiments.config`) and the course notebook's
section 4 entry points.

- :func:`run_world_model_experiment` and :func:`run_rssm_experiment` (:mod:`~ca11_agents.experiments.models`), with
  :class:`WorldModelConfig`, :class:`RSSMConfig` and their presets.
- :func:`run_dreamer_experiment`, and for every learner and baseline :func:`train_run` / :func:`resume_run` into a
  run folder (:mod:`~ca11_agents.experiments.runs`), configured by :class:`RunConfig`
  (:mod:`~ca11_agents.experiments.runconfig`, named configs in :data:`PRESETS`); :func:`load_run`,
  :func:`evaluate_run` and :func:`render_run` (:mod:`~ca11_agents.experiments.media`) read a run folder back.
- :func:`dream` (:mod:`~ca11_agents.experiments.dream`): the real episode beside the world model's imagination.

The ``ca11`` command (:mod:`ca11_agents.cli`) calls these functions.
"""

from ca11_agents.experiments.config import Config, ConfigError
from ca11_agents.experiments.models import (
    RSSM_PRESETS,
    WORLD_MODEL_PRESETS,
    RSSMConfig,
    WorldModelConfig,
    run_rssm_experiment,
    run_world_model_experiment,
)
from ca11_agents.experiments.dream import DreamResult, dream, plot_dream, write_dream_video
from ca11_agents.experiments.media import evaluate_run, render_run, write_video
from ca11_agents.experiments.runconfig import PRESETS, EnvConfig, RunConfig, TrainConfig, config_class
from ca11_agents.experiments.runs import Run, load_run, resume_run, run_dreamer_experiment, train_run

__all__ = [
    "Config",
    "ConfigError",
    "WorldModelConfig",
    "RSSMConfig",
    "WORLD_MODEL_PRESETS",
    "RSSM_PRESETS",
    "run_world_model_experiment",
    "run_rssm_experiment",
    "PRESETS",
    "EnvConfig",
    "RunConfig",
    "TrainConfig",
    "config_class",
    "Run",
    "train_run",
    "resume_run",
    "load_run",
    "run_dreamer_experiment",
    "evaluate_run",
    "render_run",
    "write_video",
    "DreamResult",
    "dream",
    "plot_dream",
    "write_dream_video",
]
