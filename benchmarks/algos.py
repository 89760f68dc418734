"""The algorithms the benchmark compares, their hyperparameters (with sources) and their training adapters.

Every learner is trained by one of two adapters:

* :func:`train_sb3` serves every class with Stable-Baselines3's interface -- SB3's and sb3-contrib's algorithms and
  the ca11 learners (``ca11_agents.DreamerAgent`` and friends follow SB3's API exactly). It evaluates with an SB3
  callback that calls :func:`stable_baselines3.common.evaluation.evaluate_policy` (which carries recurrent state).
* :func:`train_tianshou_sac` builds tianshou 2.0's SAC from its procedural API and evaluates with tianshou's own test
  :class:`~tianshou.data.Collector`.

Both evaluate at step 0 and then every ``eval_every`` environment steps, ``eval_episodes`` deterministic episodes on
a separate environment seeded ``seed + EVAL_SEED_OFFSET``, and report through an :class:`EvalClock`, which times
training apart from evaluation.

Hyperparameters are written as rl-baselines3-zoo writes them (same keys, ``lin_`` schedules, ``noise_type``) so that
each entry can be checked against the zoo file it cites. Heavy libraries are imported lazily, inside functions.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np

#: The evaluation environment of the run with seed ``s`` is seeded ``s + EVAL_SEED_OFFSET``.
EVAL_SEED_OFFSET = 10_000

#: Env ids that share hyperparameters (same dynamics); unknown ids use the ``"default"`` entry.
ENV_FAMILIES: dict[str, str] = {
    "CA11/ContinuousPendulum-v0": "pendulum",
    "Pendulum-v1": "pendulum",
    "CA11/ContinuousCartPole-v0": "cartpole",
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

    def hyperparams_for(self, env_id: str) -> Hyperparams:
        """The hyperparameters this algorithm uses on ``env_id``."""
        return self.hyperparams.get(ENV_FAMILIES.get(env_id, "default"), self.hyperparams["default"])

    def load_class(self) -> type:
        """Import the learner class, or raise :class:`AlgorithmUnavailableError` naming it."""
        module_name, _, class_name = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as err:
            raise AlgorithmUnavailableError(
                f"algorithm {self.name!r} needs {module_name}.{class_name}, which cannot be imported yet ({err})"
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
                # Same physics and horizon as CartPole-v1; only the action space differs (Gaussian instead of
                # categorical policy), so the tuned discrete entry is the closest the zoo has.
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
                "default": Hyperparams({"policy": "MlpLstmPolicy"}, "sb3-contrib RecurrentPPO defaults"),
            },
        ),
        AlgoSpec(
            name="tianshou_sac",
            target="tianshou.algorithm:SAC",
            adapter="tianshou_sac",
            model_based=False,
            box_actions_only=True,
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


# --------------------------------------------------------------------------------------------------------------------
# Timing and evaluation records
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a learner during training."""

    env_steps: int
    """Environment steps taken by the learner (all its training envs together) before this evaluation."""
    return_mean: float
    return_std: float
    wall_s: float
    """Seconds of training (set-up, acting, updating) so far, evaluation time excluded."""


class EvalClock:
    """Runs evaluations and times training apart from them.

    Evaluation time is excluded from ``wall_s`` so that wall-clock comparisons measure learning cost, not how long
    10 evaluation episodes take (which differs between a planner and a feed-forward policy).
    """

    def __init__(self, sink: Callable[[Evaluation], None]) -> None:
        self._sink = sink
        self._start = perf_counter()
        self._eval_s = 0.0
        self.last_env_steps = -1

    def start(self) -> None:
        """Start the training clock; adapters call it after their (slow, one-off) library imports."""
        self._start = perf_counter()
        self._eval_s = 0.0

    def evaluate(self, env_steps: int, run_episodes: Callable[[], Sequence[float]]) -> None:
        """Run ``run_episodes`` (returns one return per episode) unless this step was already evaluated."""
        if env_steps == self.last_env_steps:
            return
        started = perf_counter()
        train_s = started - self._start - self._eval_s
        returns = np.asarray(run_episodes(), dtype=np.float64)
        self._eval_s += perf_counter() - started
        self.last_env_steps = env_steps
        self._sink(Evaluation(env_steps, float(returns.mean()), float(returns.std()), train_s))


@dataclass(frozen=True)
class RunConfig:
    """What one (algorithm, env, seed) run does."""

    env_id: str
    seed: int
    total_steps: int
    eval_every: int
    eval_episodes: int
    device: str


# --------------------------------------------------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------------------------------------------------


def sb3_kwargs(values: Mapping[str, Any], action_dim: int) -> tuple[str, int, dict[str, Any]]:
    """Translate zoo-style settings into ``(policy, n_envs, constructor kwargs)`` as rl-baselines3-zoo does."""
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.utils import LinearSchedule

    kwargs = dict(values)
    policy = kwargs.pop("policy", "MlpPolicy")
    n_envs = int(kwargs.pop("n_envs", 1))
    noise_type, noise_std = kwargs.pop("noise_type", None), kwargs.pop("noise_std", None)
    if noise_type == "normal":
        kwargs["action_noise"] = NormalActionNoise(np.zeros(action_dim), noise_std * np.ones(action_dim))
    elif noise_type is not None:
        raise ValueError(f"unsupported noise_type {noise_type!r}")
    for key, value in kwargs.items():
        if isinstance(value, str) and value.startswith("lin_"):
            # The zoo's linear_schedule: value * progress_remaining, i.e. linear from value to 0.
            kwargs[key] = LinearSchedule(float(value[4:]), 0.0, 1.0)
    return policy, n_envs, kwargs


def train_sb3(spec: AlgoSpec, config: RunConfig, clock: EvalClock) -> None:
    """Train any learner with SB3's API on ``config`` and evaluate it through ``clock``."""
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    learner_class = spec.load_class()  # import before the clock starts: a one-off cost, not learning cost
    clock.start()
    action_space = gym.make(config.env_id).action_space
    action_dim = int(np.prod(action_space.shape)) if isinstance(action_space, gym.spaces.Box) else 1
    policy, n_envs, kwargs = sb3_kwargs(spec.hyperparams_for(config.env_id).values, action_dim)
    env = make_vec_env(config.env_id, n_envs=n_envs, seed=config.seed)
    eval_env = make_vec_env(config.env_id, n_envs=1, seed=config.seed + EVAL_SEED_OFFSET)

    class PeriodicEvaluation(BaseCallback):
        """Evaluates at the start, every ``eval_every`` env steps and at the end of training."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval = config.eval_every

        def _evaluate(self) -> None:
            def episodes() -> list[float]:
                returns, _ = evaluate_policy(
                    self.model, eval_env, n_eval_episodes=config.eval_episodes, deterministic=True,
                    return_episode_rewards=True,
                )
                return list(returns)

            clock.evaluate(self.num_timesteps, episodes)

        def _on_training_start(self) -> None:
            self._evaluate()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self._evaluate()
                # With n_envs > 1 the counter jumps by n_envs; skip the intervals it jumped over.
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += config.eval_every
            return True

        def _on_training_end(self) -> None:
            self._evaluate()  # no-op when the last step was just evaluated

    model = learner_class(
        policy, env, seed=config.seed, device=config.device, verbose=0, tensorboard_log=None, **kwargs
    )
    try:
        model.learn(total_timesteps=config.total_steps, callback=PeriodicEvaluation())
    finally:
        env.close()
        eval_env.close()


def train_tianshou_sac(spec: AlgoSpec, config: RunConfig, clock: EvalClock) -> None:
    """Train tianshou's SAC (procedural API) on ``config``; evaluate with tianshou's test collector."""
    import gymnasium as gym
    import torch
    from tianshou.algorithm import SAC
    from tianshou.algorithm.modelfree.sac import AutoAlpha, SACPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.trainer import OffPolicyTrainerParams
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic

    clock.start()
    hp = dict(spec.hyperparams_for(config.env_id).values)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    train_envs = DummyVectorEnv([lambda: gym.make(config.env_id)])
    test_envs = DummyVectorEnv([lambda: gym.make(config.env_id)])
    train_envs.seed(config.seed)
    test_envs.seed(config.seed + EVAL_SEED_OFFSET)
    obs_shape = train_envs.observation_space[0].shape
    action_space = train_envs.action_space[0]
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"tianshou_sac needs a Box action space, {config.env_id} has {action_space}")

    def critic() -> ContinuousCritic:
        net = Net(state_shape=obs_shape, action_shape=action_space.shape, hidden_sizes=hp["net_arch"], concat=True)
        return ContinuousCritic(preprocess_net=net).to(config.device)

    actor = ContinuousActorProbabilistic(
        preprocess_net=Net(state_shape=obs_shape, hidden_sizes=hp["net_arch"]),
        action_shape=action_space.shape,
        unbounded=True,  # tanh squashing happens in SACPolicy
        conditioned_sigma=True,  # state-dependent std, as in SB3's SAC
    ).to(config.device)
    optim = AdamOptimizerFactory(lr=hp["learning_rate"])
    algorithm = SAC(
        policy=SACPolicy(actor=actor, action_space=action_space, deterministic_eval=True),
        policy_optim=optim,
        critic=critic(),
        critic_optim=optim,
        critic2=critic(),
        critic2_optim=optim,
        tau=hp["tau"],
        gamma=hp["gamma"],
        # SB3's ent_coef="auto": alpha starts at 1 and targets entropy -dim(A).
        alpha=AutoAlpha(target_entropy=-float(np.prod(action_space.shape)), log_alpha=0.0, optim=optim),
    )
    train_collector = Collector(algorithm, train_envs, VectorReplayBuffer(hp["buffer_size"], 1), exploration_noise=True)
    test_collector = Collector(algorithm, test_envs)
    trainer = algorithm.create_trainer(
        OffPolicyTrainerParams(
            training_collector=train_collector,
            max_epochs=config.total_steps,  # the loop below decides when to stop
            epoch_num_steps=config.eval_every,
            collection_step_num_env_steps=1,
            update_step_num_gradient_steps_per_sample=1.0,
            batch_size=hp["batch_size"],
            verbose=False,
            show_progress=False,
        )
    )

    def episodes() -> np.ndarray:
        return test_collector.collect(n_episode=config.eval_episodes, reset_before_collect=True).returns

    try:
        clock.evaluate(0, episodes)
        train_collector.reset()
        # Uniform random actions before learning starts, like SB3's learning_starts.
        train_collector.collect(n_step=min(hp["learning_starts"], config.total_steps), random=True)
        trainer.reset(reset_collectors=False)
        next_eval = config.eval_every
        while train_collector.collect_step < config.total_steps:
            while next_eval <= train_collector.collect_step:
                next_eval += config.eval_every
            # One trainer epoch per evaluation interval; the first one also counts the random warm-up steps, so
            # evaluations land on multiples of eval_every like the SB3 learners'.
            trainer.params.epoch_num_steps = min(next_eval, config.total_steps) - train_collector.collect_step
            trainer.execute_epoch()
            clock.evaluate(train_collector.collect_step, episodes)
    finally:
        train_envs.close()
        test_envs.close()


ADAPTERS: dict[str, Callable[[AlgoSpec, RunConfig, EvalClock], None]] = {
    "sb3": train_sb3,
    "tianshou_sac": train_tianshou_sac,
}


def train(spec: AlgoSpec, config: RunConfig, clock: EvalClock) -> None:
    """Train ``spec`` on ``config`` with its adapter, reporting every evaluation through ``clock``."""
    ADAPTERS[spec.adapter](spec, config, clock)
