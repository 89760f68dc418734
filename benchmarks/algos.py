"""The algorithms the benchmark compares and their hyperparameters, each set with its source.

Hyperparameters are written as rl-baselines3-zoo writes them (same keys, ``lin_`` schedules, ``noise_type``) so that
each entry can be checked against the zoo file it cites. An :class:`AlgoSpec` names its learner lazily
(``"module:Class"``): the ca11 learners and SB3's need only the core install; sb3-contrib's RecurrentPPO and
tianshou's SAC need the ``baselines`` extra (``pip install ".[baselines]"``, included in ``bench``). How a learner is
trained and evaluated is :mod:`benchmarks.adapters`; :func:`register_variant` adds an algorithm that is a
registered one with some hyperparameters changed (the ablation's and the sweep's arms).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Env ids that share hyperparameters (same dynamics); unknown ids use the ``"default"`` entry. The pixel pendulum
#: (``benchmarks.envs``) has its own family: image observations need other settings (replay buffers that fit memory).
ENV_FAMILIES: dict[str, str] = {
    "CA11/ContinuousPendulum-v0": "pendulum",
    "Pendulum-v1": "pendulum",
    "CA11/PixelPendulum-v0": "pixel_pendulum",
    "CA11/ContinuousCartPole-v0": "cartpole",
    "CartPole-v1": "cartpole",
    "Acrobot-v1": "acrobot",
    "CA11/SequenceEnvironment-v0": "sequence",
}


class AlgorithmUnavailableError(ImportError):
    """Raised when an algorithm's class cannot be imported (e.g. a ca11 learner that is not written yet)."""


@dataclass(frozen=True)
class Hyperparams:
    """Keyword arguments for one (algorithm, env family), in rl-baselines3-zoo's notation, and where they come from."""

    values: Mapping[str, Any]
    """Zoo-style settings: constructor kwargs plus ``n_envs``, ``policy``, ``noise_type``/``noise_std``, ``lin_X``."""
    source: str
    """The zoo file and entry (or the library defaults) these values are taken from."""


@dataclass(frozen=True)
class AlgoSpec:
    """One algorithm of the benchmark."""

    name: str
    """The name used on the command line and in results.csv."""
    target: str
    """``"module:Class"`` of the learner, imported lazily."""
    adapter: str
    """``"sb3"`` (any class with SB3's API) or ``"tianshou_sac"``."""
    model_based: bool
    """Whether the learner plans or learns in a learned model (the claim under test)."""
    box_actions_only: bool
    """True for learners that cannot act in discrete action spaces (SAC, TD3)."""
    hyperparams: Mapping[str, Hyperparams] = field(default_factory=dict)
    """Per env family (see :data:`ENV_FAMILIES`), with a ``"default"`` entry."""
    discrete_actions_only: bool = False
    """True for learners that can act only in ``Discrete`` action spaces (DQN)."""
    vector_obs_only: bool = False
    """True for learners whose adapter builds MLPs on flat observations only (tianshou_sac): no image or Dict ones."""

    def unsupported_reason(self, observation_space: Any, action_space: Any) -> str | None:
        """Why this learner cannot run on an env with these spaces (the runner skips it there), or ``None``."""
        from gymnasium import spaces

        from benchmarks.adapters import observation_kind

        if self.box_actions_only and not isinstance(action_space, spaces.Box):
            return "it needs continuous (Box) actions"
        if self.discrete_actions_only and not isinstance(action_space, spaces.Discrete):
            return "it needs discrete actions"
        if self.vector_obs_only and observation_kind(observation_space) != "Mlp":
            return "its adapter handles only flat vector observations (no images, no Dict)"
        return None

    def hyperparams_for(self, env_id: str) -> Hyperparams:
        """The hyperparameters this algorithm uses on ``env_id``."""
        return self.hyperparams.get(ENV_FAMILIES.get(env_id, "default"), self.hyperparams["default"])

    def load_class(self) -> type:
        """Import the learner class, or raise :class:`AlgorithmUnavailableError` naming it."""
        module_name, _, class_name = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as err:
            hint = "" if module_name.startswith(("ca11_", "stable_baselines3")) else '; pip install ".[baselines]"'
            raise AlgorithmUnavailableError(
                f"algorithm {self.name!r} needs {module_name}.{class_name}, which cannot be imported ({err}){hint}"
            ) from err

    def is_available(self) -> bool:
        """Whether :meth:`load_class` would succeed."""
        try:
            self.load_class()
        except AlgorithmUnavailableError:
            return False
        return True


def _zoo(file: str, entry: str) -> str:
    return f"rl-baselines3-zoo hyperparams/{file} entry `{entry}`"


_CA11_DEFAULTS = {"default": Hyperparams({}, "the learner's own defaults (ca11_agents)")}
# The zoo's TD3 entries all explore with Gaussian noise of std 0.1; SB3's TD3 default (no noise) does not explore.
_TD3_NOISE = {"noise_type": "normal", "noise_std": 0.1}
# Off-policy learners on 64x64x3 pixels: SB3's default 1e6-transition buffer would hold 2 x 12 KB per transition
# (observation and next observation, optimize_memory_usage off): 25 GB. 100,000 transitions (2.5 GB) hold the whole
# default pixel budget (20,000 steps). The policy is not named: the adapter picks CnnPolicy for image observations.
_PIXEL_BUFFER = {"buffer_size": 100_000, "optimize_memory_usage": False}
_PIXEL_NOTE = ", replay buffer 100,000 transitions (a 1e6 pixel buffer needs 25 GB), CnnPolicy"

ALGOS: dict[str, AlgoSpec] = {
    spec.name: spec
    for spec in (
        *(
            AlgoSpec(name=name, target=f"ca11_agents:{cls}", adapter="sb3", model_based=True, box_actions_only=False,
                     hyperparams=_CA11_DEFAULTS)  # fmt: skip
            for name, cls in (("dreamer", "DreamerAgent"), ("world_model_agent", "WorldModelAgent"),
                              ("rssm_agent", "RSSMAgent"))  # fmt: skip
        ),
        AlgoSpec(
            name="sb3_sac",
            target="stable_baselines3:SAC",
            adapter="sb3",
            model_based=False,
            box_actions_only=True,
            hyperparams={
                "pendulum": Hyperparams({"learning_rate": 1e-3}, _zoo("sac.yml", "Pendulum-v1")),
                "pixel_pendulum": Hyperparams(
                    {"learning_rate": 1e-3, **_PIXEL_BUFFER},
                    "SB3 SAC defaults + the learning rate of " + _zoo("sac.yml", "Pendulum-v1") + _PIXEL_NOTE,
                ),
                "default": Hyperparams({}, "SB3 SAC defaults (the zoo has no entry for this task)"),
            },
        ),
        AlgoSpec(
            name="sb3_td3",
            target="stable_baselines3:TD3",
            adapter="sb3",
            model_based=False,
            box_actions_only=True,
            hyperparams={
                "pendulum": Hyperparams(
                    {
                        "gamma": 0.98,
                        "buffer_size": 200_000,
                        "learning_starts": 10_000,
                        **_TD3_NOISE,
                        "gradient_steps": -1,
                        "train_freq": (1, "episode"),
                        "learning_rate": 1e-3,
                        "policy_kwargs": {"net_arch": [400, 300]},
                    },
                    _zoo("td3.yml", "Pendulum-v1") + " (as published with the sb3/td3-Pendulum-v1 model)",
                ),
                "pixel_pendulum": Hyperparams(
                    {**_TD3_NOISE, **_PIXEL_BUFFER},
                    "SB3 TD3 defaults + the zoo's Gaussian action noise (std 0.1)" + _PIXEL_NOTE,
                ),
                "default": Hyperparams(_TD3_NOISE, "SB3 TD3 defaults + the zoo's Gaussian action noise (std 0.1)"),
            },
        ),
        AlgoSpec(
            name="sb3_ppo",
            target="stable_baselines3:PPO",
            adapter="sb3",
            model_based=False,
            box_actions_only=False,
            hyperparams={
                "pendulum": Hyperparams(
                    {
                        "n_envs": 4,
                        "n_steps": 1024,
                        "gae_lambda": 0.95,
                        "gamma": 0.9,
                        "n_epochs": 10,
                        "ent_coef": 0.0,
                        "learning_rate": 1e-3,
                        "clip_range": 0.2,
                        "use_sde": True,
                        "sde_sample_freq": 4,
                    },
                    _zoo("ppo.yml", "Pendulum-v1"),
                ),
                # CartPole-v1's own entry. CA11/ContinuousCartPole-v0 has the same physics and horizon; only the
                # action space differs (Gaussian instead of categorical policy): this tuned entry is the zoo's closest.
                "cartpole": Hyperparams(
                    {
                        "n_envs": 8,
                        "n_steps": 32,
                        "batch_size": 256,
                        "gae_lambda": 0.8,
                        "gamma": 0.98,
                        "n_epochs": 20,
                        "ent_coef": 0.0,
                        "learning_rate": "lin_0.001",
                        "clip_range": "lin_0.2",
                    },
                    _zoo("ppo.yml", "CartPole-v1"),
                ),
                # normalize: VecNormalize of observations and rewards while training (gamma = the algorithm's), and
                # of observations only, with the training statistics, for evaluation -- as the zoo does.
                "acrobot": Hyperparams(
                    {"normalize": True, "n_envs": 16, "n_steps": 256, "gae_lambda": 0.94, "gamma": 0.99,
                     "n_epochs": 4, "ent_coef": 0.0},  # fmt: skip
                    _zoo("ppo.yml", "Acrobot-v1"),
                ),
                "default": Hyperparams({}, "SB3 PPO defaults (the zoo has no entry for this task)"),
            },
        ),
        AlgoSpec(
            name="recurrent_ppo",
            target="sb3_contrib:RecurrentPPO",
            adapter="sb3",
            model_based=False,
            box_actions_only=False,
            hyperparams={
                "pendulum": Hyperparams(
                    {
                        "policy": "MlpLstmPolicy",
                        "n_envs": 4,
                        "n_steps": 1024,
                        "gae_lambda": 0.95,
                        "gamma": 0.9,
                        "n_epochs": 10,
                        "ent_coef": 0.0,
                        "learning_rate": 1e-3,
                        "clip_range": 0.2,
                        "use_sde": True,
                        "sde_sample_freq": 4,
                    },
                    _zoo("ppo_lstm.yml", "PendulumNoVel-v1"),
                ),
                "cartpole": Hyperparams(
                    {
                        "policy": "MlpLstmPolicy",
                        "n_envs": 8,
                        "n_steps": 32,
                        "batch_size": 256,
                        "gae_lambda": 0.8,
                        "gamma": 0.98,
                        "n_epochs": 20,
                        "ent_coef": 0.0,
                        "learning_rate": "lin_0.001",
                        "clip_range": "lin_0.2",
                    },
                    _zoo("ppo_lstm.yml", "CartPoleNoVel-v1"),
                ),
                # No policy named: the adapter picks the class's CnnLstmPolicy for image observations.
                "pixel_pendulum": Hyperparams({}, "sb3-contrib RecurrentPPO defaults, CnnLstmPolicy"),
                "default": Hyperparams({"policy": "MlpLstmPolicy"}, "sb3-contrib RecurrentPPO defaults"),
            },
        ),
        AlgoSpec(
            name="sb3_dqn",
            target="stable_baselines3:DQN",
            adapter="sb3",
            model_based=False,
            box_actions_only=False,
            discrete_actions_only=True,
            hyperparams={
                "cartpole": Hyperparams(
                    {
                        "learning_rate": 2.3e-3,
                        "batch_size": 64,
                        "buffer_size": 100_000,
                        "learning_starts": 1000,
                        "gamma": 0.99,
                        "target_update_interval": 10,
                        "train_freq": 256,
                        "gradient_steps": 128,
                        "exploration_fraction": 0.16,
                        "exploration_final_eps": 0.04,
                        "policy_kwargs": {"net_arch": [256, 256]},
                    },
                    _zoo("dqn.yml", "CartPole-v1"),
                ),
                "acrobot": Hyperparams(
                    {
                        "learning_rate": 6.3e-4,
                        "batch_size": 128,
                        "buffer_size": 50_000,
                        "learning_starts": 0,
                        "gamma": 0.99,
                        "target_update_interval": 250,
                        "train_freq": 4,
                        "gradient_steps": -1,
                        "exploration_fraction": 0.12,
                        "exploration_final_eps": 0.1,
                        "policy_kwargs": {"net_arch": [256, 256]},
                    },
                    _zoo("dqn.yml", "Acrobot-v1"),
                ),
                "default": Hyperparams({}, "SB3 DQN defaults (the zoo has no entry for this task)"),
            },
        ),
        AlgoSpec(
            name="tianshou_sac",
            target="tianshou.algorithm:SAC",
            adapter="tianshou_sac",
            model_based=False,
            box_actions_only=True,
            vector_obs_only=True,
            hyperparams={
                # The values SB3's SAC runs with, so that the two SAC implementations are compared like for like.
                "pendulum": Hyperparams(
                    {"learning_rate": 1e-3, "buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 256,
                     "tau": 0.005, "gamma": 0.99, "net_arch": [256, 256]},
                    "sb3_sac's settings: SB3 SAC defaults + " + _zoo("sac.yml", "Pendulum-v1"),
                ),
                "default": Hyperparams(
                    {"learning_rate": 3e-4, "buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 256,
                     "tau": 0.005, "gamma": 0.99, "net_arch": [256, 256]},
                    "sb3_sac's settings: SB3 SAC defaults",
                ),
            },
        ),
    )
}


def get_algo(name: str) -> AlgoSpec:
    """The registered algorithm ``name``; a ``ValueError`` lists the valid names otherwise."""
    if name not in ALGOS:
        raise ValueError(f"unknown algorithm {name!r}; valid names: {', '.join(ALGOS)}")
    return ALGOS[name]


#: The algorithms defined above; :func:`register_variant` may add others but never replaces these.
BUILTIN_ALGOS: frozenset[str] = frozenset(ALGOS)
_VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def merge_hyperparams(values: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` updated with ``overrides``, where ``policy_kwargs`` is merged key by key rather than replaced.

    ``merge_hyperparams({"policy_kwargs": {"units": 64}}, {"policy_kwargs": {"unimix": 0.0}})`` keeps ``units=64``:
    an override that switches one network option off must not reset the network sizes to the class defaults.
    """
    merged = dict(values)
    for key, value in overrides.items():
        if key == "policy_kwargs" and isinstance(value, Mapping):
            merged[key] = {**(merged.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


def variant_spec(name: str, base: str, overrides: Mapping[str, Any]) -> AlgoSpec:
    """An algorithm that is ``base`` with ``overrides`` merged (:func:`merge_hyperparams`) into every env family's
    hyperparameters; its ``source`` names the base and the overrides. Not registered (see :func:`register_variant`).
    """
    if not _VARIANT_NAME.fullmatch(name) or "__" in name:
        # The name is part of the run files' names, "<algo>__<env>__<seed>", so it must be file-safe and free of "__".
        raise ValueError(f"variant name {name!r} must match [A-Za-z0-9][A-Za-z0-9_.-]* and contain no '__'")
    spec = get_algo(base)
    note = f", overridden with {dict(overrides)!r}"
    hyperparams = {
        family: Hyperparams(merge_hyperparams(hp.values, overrides), hp.source + note)
        for family, hp in spec.hyperparams.items()
    }
    return dataclasses.replace(spec, name=name, hyperparams=hyperparams)


def register_variant(name: str, base: str, overrides: Mapping[str, Any]) -> AlgoSpec:
    """Register :func:`variant_spec` ``(name, base, overrides)`` in :data:`ALGOS` so the runner accepts ``name``.

    Registering a name again replaces the earlier variant; a built-in algorithm's name raises a ``ValueError``. The
    runner hands each run its spec, so variants registered in the driver reach Ray workers too.
    """
    if name in BUILTIN_ALGOS:
        raise ValueError(f"{name!r} is a built-in algorithm; choose another name for the variant")
    ALGOS[name] = spec = variant_spec(name, base, overrides)
    return spec
