"""How the benchmark trains and evaluates a learner: the training adapters, the evaluation clock and the policy choice.

Every learner of :data:`benchmarks.algos.ALGOS` is trained by one of two adapters:

* :func:`train_sb3` serves every class with Stable-Baselines3's interface -- SB3's and sb3-contrib's algorithms and
  the ca11 learners (``ca11_agents.DreamerAgent`` and friends follow SB3's API exactly). It evaluates with an SB3
  callback that calls :func:`stable_baselines3.common.evaluation.evaluate_policy` (which carries recurrent state).
* :func:`train_tianshou_sac` builds tianshou 2.0's SAC from its procedural API and evaluates with tianshou's own test
  :class:`~tianshou.data.Collector`.

Both evaluate at step 0 and then every ``eval_every`` environment steps, ``eval_episodes`` deterministic episodes on
a separate environment seeded ``seed + EVAL_SEED_OFFSET``, and report through an :class:`EvalClock`, which times
training apart from evaluation. Heavy libraries are imported inside the functions: SB3 comes with the core install,
tianshou (for :func:`train_tianshou_sac`) with the ``baselines`` extra (``pip install ".[baselines]"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from benchmarks.algos import AlgoSpec

#: The evaluation environment of the run with seed ``s`` is seeded ``s + EVAL_SEED_OFFSET``.
EVAL_SEED_OFFSET = 10_000


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


def observation_kind(observation_space: Any) -> str:
    """``"Cnn"`` for image observations (SB3's ``is_image_space``: uint8 ``(H, W, C)`` or ``(C, H, W)`` in [0, 255]),
    ``"MultiInput"`` for ``Dict`` observations, ``"Mlp"`` otherwise: the prefix of SB3's policy names."""
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space

    if isinstance(observation_space, spaces.Dict):
        return "MultiInput"
    if isinstance(observation_space, spaces.Box) and is_image_space(observation_space):
        return "Cnn"
    return "Mlp"


def choose_policy(learner_class: type, observation_space: Any, named: str | None = None) -> str:
    """The policy string a learner is built with: ``named`` when the hyperparameters name one, otherwise
    ``CnnPolicy`` for image observations, ``MultiInputPolicy`` for ``Dict`` ones and ``MlpPolicy`` else.

    A class without that alias but with its LSTM counterpart (sb3-contrib's RecurrentPPO: ``CnnLstmPolicy``...) gets
    the counterpart; any other class gets the plain name, so a learner that lacks it fails with its own error.
    """
    if named is not None:
        return named
    kind = observation_kind(observation_space)
    aliases = getattr(learner_class, "policy_aliases", {}) or {}
    for name in (f"{kind}Policy", f"{kind}LstmPolicy"):
        if name in aliases:
            return name
    return f"{kind}Policy"


def policy_for(spec: AlgoSpec, env_id: str) -> str | None:
    """The policy string :func:`train_sb3` builds ``spec`` with on ``env_id`` (``None`` for non-SB3 adapters)."""
    if spec.adapter != "sb3":
        return None
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        observation_space = env.observation_space
    finally:
        env.close()
    return choose_policy(spec.load_class(), observation_space, spec.hyperparams_for(env_id).values.get("policy"))


@dataclass(frozen=True)
class SB3Settings:
    """Zoo-style settings translated for SB3 (see :func:`sb3_kwargs`)."""

    policy: str | None
    """The policy named by the settings; ``None``: :func:`choose_policy` picks one from the observation space."""
    n_envs: int
    normalize: dict[str, Any] | None
    """``VecNormalize`` keyword arguments when the settings say ``normalize``, else ``None``."""
    kwargs: dict[str, Any]
    """Constructor keyword arguments."""


def sb3_kwargs(values: Mapping[str, Any], action_dim: int) -> SB3Settings:
    """Translate zoo-style settings into :class:`SB3Settings` as rl-baselines3-zoo does.

    ``normalize`` is ``True`` (``VecNormalize`` defaults) or a mapping of ``VecNormalize`` arguments; as in the zoo,
    ``gamma`` (when set) is also the normaliser's discount.
    """
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.utils import LinearSchedule

    kwargs = dict(values)
    policy = kwargs.pop("policy", None)
    n_envs = int(kwargs.pop("n_envs", 1))
    normalize_value = kwargs.pop("normalize", False)
    normalize: dict[str, Any] | None = None
    if isinstance(normalize_value, Mapping) or normalize_value:
        normalize = dict(normalize_value) if isinstance(normalize_value, Mapping) else {}
        if "gamma" in kwargs:
            normalize["gamma"] = kwargs["gamma"]
    noise_type, noise_std = kwargs.pop("noise_type", None), kwargs.pop("noise_std", None)
    if noise_type == "normal":
        kwargs["action_noise"] = NormalActionNoise(np.zeros(action_dim), noise_std * np.ones(action_dim))
    elif noise_type is not None:
        raise ValueError(f"unsupported noise_type {noise_type!r}")
    for key, value in kwargs.items():
        if isinstance(value, str) and value.startswith("lin_"):
            # The zoo's linear_schedule: value * progress_remaining, i.e. linear from value to 0.
            kwargs[key] = LinearSchedule(float(value[4:]), 0.0, 1.0)
    return SB3Settings(policy, n_envs, normalize, kwargs)


def train_sb3(spec: AlgoSpec, config: RunConfig, clock: EvalClock) -> None:
    """Train any learner with SB3's API on ``config`` and evaluate it through ``clock``.

    The policy is the one the hyperparameters name, else :func:`choose_policy`'s (``CnnPolicy`` for images,
    ``MultiInputPolicy`` for ``Dict`` observations). With ``normalize`` the training envs are wrapped in
    ``VecNormalize`` and the evaluation env in one that normalises observations only, with the training statistics
    copied in before each evaluation (``sync_envs_normalization``), as the zoo's evaluation does.
    """
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    learner_class = spec.load_class()  # import before the clock starts: a one-off cost, not learning cost
    clock.start()
    probe = gym.make(config.env_id)
    observation_space, action_space = probe.observation_space, probe.action_space
    probe.close()
    action_dim = int(np.prod(action_space.shape)) if isinstance(action_space, gym.spaces.Box) else 1
    settings = sb3_kwargs(spec.hyperparams_for(config.env_id).values, action_dim)
    policy, kwargs = choose_policy(learner_class, observation_space, settings.policy), settings.kwargs
    env = make_vec_env(config.env_id, n_envs=settings.n_envs, seed=config.seed)
    eval_env = make_vec_env(config.env_id, n_envs=1, seed=config.seed + EVAL_SEED_OFFSET)
    if settings.normalize is not None:
        env = VecNormalize(env, **settings.normalize)
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)

    class PeriodicEvaluation(BaseCallback):
        """Evaluates at the start, every ``eval_every`` env steps and at the end of training."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval = config.eval_every

        def _evaluate(self) -> None:
            def episodes() -> list[float]:
                if settings.normalize is not None:
                    sync_envs_normalization(env, eval_env)  # both are the VecNormalize made above
                # The Monitor under any VecNormalize records the raw episode returns that are reported.
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
