"""What one training run is: the environment, the budget, the learner and its hyperparameters (:class:`RunConfig`),
the typed hyperparameters of each ca11 learner (:func:`learner_config`) and the named run presets (:data:`PRESETS`).

A run's hyperparameters are resolved in layers, each overriding the one before (``policy_kwargs`` merged key by
key, as :func:`benchmarks.algos.merge_hyperparams` does):

1. the benchmark registry's settings for the learner on the env's family (``benchmarks/algos.py``: the zoo's tuned
   values for SB3's baselines, the learner's defaults for ca11's);
2. the learner preset (``RunConfig.preset``: :data:`ca11_agents.DREAMER_PRESETS` for Dreamer);
3. ``RunConfig.hyperparams`` (the command line's ``--set hyperparams.KEY=VALUE`` or ``--set KEY=VALUE``).

ca11 learners' hyperparameters are checked against their typed configs (:data:`LEARNER_CONFIGS`: one field per
constructor argument, documented by the class's ``Args``), the baselines' against their constructors' signatures.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ca11_agents.experiments.config import Config, ConfigError, check_device, check_value

#: Constructor arguments a run sets itself (from :class:`TrainConfig` and :class:`EnvConfig`), not hyperparameters.
RUN_LEVEL_ARGS = frozenset({"self", "policy", "env", "tensorboard_log", "verbose", "seed", "device",
                            "_init_setup_model"})  # fmt: skip
#: rl-baselines3-zoo's keys that are not constructor arguments (see :func:`benchmarks.adapters.sb3_kwargs`).
ZOO_KEYS = frozenset({"n_envs", "policy", "normalize", "noise_type", "noise_std", "n_timesteps"})
#: The zoo keys ca11 learners take (they normalise nothing and explore by their own actor).
CA11_ZOO_KEYS = frozenset({"n_envs", "policy"})
#: SB3 constructor arguments that take Python objects, which a JSON config cannot hold (``noise_type`` and
#: ``noise_std`` build the action noise).
OBJECT_ARGS = frozenset({"action_noise", "replay_buffer_class", "rollout_buffer_class"})


@dataclasses.dataclass(frozen=True)
class EnvConfig(Config):
    """The environment a run trains and evaluates on."""

    id: str = "CA11/ContinuousPendulum-v0"
    """A Gymnasium id: ca11's (``CA11/ContinuousPendulum-v0``, ``CA11/ContinuousCartPole-v0``,
    ``CA11/SequenceEnvironment-v0``, ``CA11/PixelPendulum-v0``), Gymnasium's, or ``module:Id``."""
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Keyword arguments of ``gym.make`` (e.g. ``{"memory_size": 5}``)."""
    n_envs: int | None = None
    """Training envs stepped together; ``None``: the registry's setting for the learner (1 for ca11's)."""

    def __post_init__(self) -> None:
        if self.n_envs is not None and self.n_envs < 1:
            raise ValueError(f"env.n_envs must be a positive integer or null, got {self.n_envs}")
        if not self.id:
            raise ValueError("env.id must name a Gymnasium environment")


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """The budget and bookkeeping of a run."""

    steps: int = 3000
    """Environment steps to train for (all training envs together)."""
    seed: int = 0
    """Seeds the learner and the training envs; evaluation envs get ``seed + 10000``."""
    device: str = "auto"
    """Torch device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``..."""
    eval_every: int = 500
    """Environment steps between evaluations (there is one before training and one at the end too)."""
    eval_episodes: int = 5
    """Deterministic episodes per evaluation."""
    checkpoint_every: int = 1000
    """Environment steps between saves of ``last.zip`` and the replay buffer (and at the end, and on Ctrl-C)."""
    save_replay: bool = True
    """Save the replay buffer beside ``last.zip`` so that ``ca11 train --resume`` continues with it."""
    progress_bar: bool = True
    """Show a progress bar (tqdm/rich, as SB3's)."""
    threads: int | None = None
    """Torch CPU threads; ``None``: ca11's policy (one per run, ``CA11_NUM_THREADS`` to change it)."""

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be a positive integer, got {getattr(self, name)}")
        if self.seed < 0 or (self.threads is not None and self.threads < 1):
            raise ValueError("train.seed must be >= 0 and train.threads positive or null")
        check_device("train.device", self.device)


@dataclasses.dataclass(frozen=True)
class RunConfig(Config):
    """One training run: ``ca11 train ALGO --env ID`` writes it as ``config.json`` into the run folder."""

    algo: str = "dreamer"
    """A learner of the benchmark registry: ``dreamer``, ``world_model_agent``, ``rssm_agent``, ``sb3_sac`` (or
    ``sac``), ``sb3_td3``, ``sb3_ppo``, ``sb3_dqn``, ``recurrent_ppo``, ``tianshou_sac``."""
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    """The environment."""
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    """The budget."""
    policy: str | None = None
    """``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``; ``None``: chosen from the observation space."""
    preset: str | None = None
    """A named set of the learner's hyperparameters (``ca11 train --help`` lists them)."""
    hyperparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Constructor arguments of the learner (and rl-baselines3-zoo's keys for the baselines), over the preset."""

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a run's ``config.json``. A config comes from a file that may not be yours: an ``env.id`` of the form
        ``module:Id`` (Gymnasium imports ``module`` to make it, i.e. runs its code) is refused unless the
        environment variable ``CA11_TRUST_ENV_MODULES=1`` says you trust the file."""
        config = super().load(path)
        if ":" in config.env.id and os.environ.get("CA11_TRUST_ENV_MODULES") != "1":
            module = config.env.id.split(":")[0]
            raise ConfigError(f"{path}: env.id {config.env.id!r} would import the module {module!r} (and run its code) "
                              "to make the env; set CA11_TRUST_ENV_MODULES=1 if you trust this file")  # fmt: skip
        return config


# ---------------------------------------------------------------------------------------------- learner configs
def _arg_docs(cls: type) -> dict[str, str]:
    """The ``Args:`` entries of ``cls``'s docstring (Google style), by argument name."""
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Args:", 1)[1] if "Args:" in doc else ""
    docs: dict[str, str] = {}
    entry = r"^\s{4}(\w+(?:, \w+)*): "  # "name: ..." or "a, b, c: ..." (arguments documented together)
    for match in re.finditer(entry + r"(.*?)(?=" + entry + r"|^\S|\Z)", section, re.M | re.S):
        for name in match.group(1).split(", "):
            docs[name] = " ".join(match.group(2).split())
    return docs


def learner_config(learner_class: type) -> type[Config]:
    """A frozen :class:`Config` with one typed, documented field per hyperparameter of ``learner_class`` (every
    constructor argument except :data:`RUN_LEVEL_ARGS`), defaults as in the signature: generated from it, so the
    class stays the only place where a hyperparameter and its default are written."""
    namespace = {**vars(typing), **vars(sys.modules[learner_class.__init__.__module__])}
    docs, fields = _arg_docs(learner_class), []
    for name, param in inspect.signature(learner_class.__init__).parameters.items():
        if name in RUN_LEVEL_ARGS or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        annotation = param.annotation
        tp = eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307 (our source)
        default = param.default
        spec = dataclasses.field(default_factory=dict, metadata={"doc": docs.get(name, "")}) if isinstance(
            default, dict) else dataclasses.field(default=default, metadata={"doc": docs.get(name, "")})  # fmt: skip
        fields.append((name, Any if tp is param.empty else tp, spec))
    return dataclasses.make_dataclass(f"{learner_class.__name__}Config", fields, bases=(Config,), frozen=True)


def _ca11_learners() -> dict[str, type]:
    from ca11_agents import DreamerAgent, RSSMAgent, WorldModelAgent

    return {"dreamer": DreamerAgent, "world_model_agent": WorldModelAgent, "rssm_agent": RSSMAgent}


#: The typed hyperparameters of each ca11 learner, by registry name (built on first use by :func:`config_class`).
LEARNER_CONFIGS: dict[str, type[Config]] = {}


def config_class(algo: str) -> type[Config] | None:
    """The typed hyperparameter config of the ca11 learner ``algo`` (``None`` for a baseline)."""
    learners = _ca11_learners()
    if algo not in learners:
        return None
    if algo not in LEARNER_CONFIGS:
        LEARNER_CONFIGS[algo] = learner_config(learners[algo])
    return LEARNER_CONFIGS[algo]


def learner_presets(algo: str) -> dict[str, dict[str, Any]]:
    """The named hyperparameter sets of ``algo`` (``RunConfig.preset``)."""
    from ca11_agents import DREAMER_PRESETS

    return {"dreamer": DREAMER_PRESETS}.get(algo, {})


# ----------------------------------------------------------------------------------------------------- presets
#: Named runs: ``ca11 experiment dreamer --config NAME`` and ``ca11 train --preset``-free starting points, each the
#: setting measured in benchmarks/README.md for that task.
PRESETS: dict[str, RunConfig] = {
    "pendulum": RunConfig(env=EnvConfig("CA11/ContinuousPendulum-v0"), train=TrainConfig(steps=3000)),
    "cartpole": RunConfig(env=EnvConfig("CA11/ContinuousCartPole-v0"), train=TrainConfig(steps=5000)),
    "sequence": RunConfig(env=EnvConfig("CA11/SequenceEnvironment-v0"), train=TrainConfig(steps=5000)),
    "pixel-pendulum": RunConfig(env=EnvConfig("CA11/PixelPendulum-v0"),
                                train=TrainConfig(steps=20_000, eval_every=2000)),  # fmt: skip
    "tiny": RunConfig(train=TrainConfig(steps=300, eval_every=150, eval_episodes=1, checkpoint_every=150),
                      hyperparams={"learning_starts": 100, "batch_size": 4, "seq_len": 8}),  # fmt: skip
}


def resolve_algo_name(algo: str) -> str:
    """The registry name of ``algo`` (``sac`` is short for ``sb3_sac``); a ``ConfigError`` lists the valid ones."""
    from benchmarks.algos import ALGOS

    if algo in ALGOS:
        return algo
    if f"sb3_{algo}" in ALGOS:
        return f"sb3_{algo}"
    raise ConfigError(f"unknown algo {algo!r}; valid: {', '.join(ALGOS)} (sb3_ may be left out)")


def resolve_hyperparams(config: RunConfig) -> dict[str, Any]:
    """The run's hyperparameters: registry settings, then the preset, then ``config.hyperparams`` (module
    docstring), each key and value checked; errors name the key and what is allowed."""
    from benchmarks.algos import get_algo, merge_hyperparams

    algo = resolve_algo_name(config.algo)
    spec = get_algo(algo)
    values = dict(spec.hyperparams_for(config.env.id).values)
    presets = learner_presets(algo)
    if config.preset is not None:
        if config.preset not in presets:
            raise ConfigError(f"unknown preset {config.preset!r} for {algo}; "
                              f"valid: {', '.join(presets) or 'none (this learner has no presets)'}")  # fmt: skip
        values = merge_hyperparams(values, presets[config.preset])
    values = merge_hyperparams(values, config.hyperparams)
    typed = config_class(algo)
    if typed is not None:
        zoo = sorted(set(values) & (ZOO_KEYS - CA11_ZOO_KEYS))
        if zoo:
            raise ConfigError(f"hyperparams.{zoo[0]} is a baseline's setting; {algo} takes n_envs, policy and its "
                              f"constructor's arguments ({algo} --list-hyperparams)")  # fmt: skip
        # The typed config checks names and types; the learner's own validation checks ranges and choices.
        typed.from_dict({k: v for k, v in values.items() if k not in ZOO_KEYS}, "hyperparams.")
        return values
    if isinstance(values.get("train_freq"), list):  # JSON has no tuples: SB3's (1, "episode")
        values["train_freq"] = tuple(values["train_freq"])
    if spec.adapter == "sb3":
        allowed = set(inspect.signature(spec.load_class().__init__).parameters) - RUN_LEVEL_ARGS - OBJECT_ARGS | ZOO_KEYS
    else:  # a procedural adapter (tianshou_sac) reads the keys of its registry entries
        allowed = {key for hp in spec.hyperparams.values() for key in hp.values}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"unknown key 'hyperparams.{unknown[0]}' for {algo}; allowed: {', '.join(sorted(allowed))}")
    return values


def check_hyperparam_types(config_cls: type[Config], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` checked against ``config_cls``'s field types (used by tests and the sweep)."""
    types_ = config_cls.field_types()
    return {k: check_value(types_[k], v) for k, v in values.items()}
