"""Hyperparameter sweep of a ca11 learner (DreamerAgent by default, or a planner) with Optuna (TPE), optionally
executed by Ray Tune. Needs the ``sweeps`` extra: ``pip install ".[sweeps]"`` (Optuna, Ray Tune, pandas).

    ca11 sweep --env CA11/ContinuousPendulum-v0 --trials 30 --steps 3000 --seeds 2 \\
        --objective auc --out outputs/sweep-pendulum
    ca11 sweep --algo world_model_agent --env CA11/ContinuousCartPole-v0 --steps 1000 --out outputs/s

Each trial trains the learner with one sampled configuration (:data:`SEARCH_SPACES`) on every seed, through the
benchmark's training adapter and evaluation protocol (:func:`benchmarks.adapters.train`: deterministic episodes on an
env seeded ``seed + 10000``, at step 0, every ``--eval-every`` steps and at the end). The objective, maximised:

* ``auc`` (default): the mean evaluation return over all evaluations after step 0 (the area under the learning curve
  divided by the budget), averaged over seeds. It rewards reaching a high return early, not only by the end: on
  Pendulum the default agent is near its final return (about -150) after ~1,500 steps, so the return at a 3,000-step
  budget barely separates a configuration that solved the task at step 1,000 from one that did at step 2,500.
* ``final``: the mean evaluation return at the env-step budget, averaged over seeds.

Each trial also records, as Optuna user attributes, its curves, the env steps to the env's threshold per seed and
the training wall-clock (evaluation excluded), so configurations can be compared on cost too.

Backends:

* ``optuna`` (default): trials run one after another in this process. With the median pruner (``--prune``, on by
  default) a trial whose first seed's curve falls below the median of earlier trials at the same step, past half the
  budget, is stopped. To run trials in parallel, start the same command in several terminals: they share the study
  through its SQLite file (Optuna's own way to distribute).
* ``ray``: Ray Tune runs the trials in parallel (one CPU each by default), sampled by Ray's ``OptunaSearch`` into the
  same SQLite study, so the two backends can continue each other's sweeps. No pruning (Tune's searcher does not
  forward Optuna's pruner), and the per-trial user attributes stay in Tune's results folder (``OUT/ray_results``).

The study is stored in ``OUT/study.db``; running the command again resumes it, running trials until ``--trials``
trials have completed (or been pruned). ``--hparams`` fixes arguments (they are then left out of the search). The
best trial is printed and written to ``OUT/best_params.json``, and every trial to ``OUT/trials.csv``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
except ModuleNotFoundError as err:  # not in the core install
    raise ModuleNotFoundError(f'{err}: ca11 sweep needs the sweeps extra, pip install ".[sweeps]"') from err

from benchmarks import HelpFormatter, run, tasks
from benchmarks.adapters import EvalClock, Evaluation, RunConfig, train
from benchmarks.algos import AlgoSpec, merge_hyperparams, variant_spec
from benchmarks.report import atomic_write_text

#: What is searched, around DreamerAgent's defaults (in brackets): the knobs of sample efficiency (learning rates,
#: replayed data per update, imagination, discount) and of wall-clock (updates per env step, imagination cost).
SEARCH_SPACE: dict[str, BaseDistribution] = {
    "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),  # world model [1e-3]
    "actor_lr": FloatDistribution(3e-5, 1e-3, log=True),  # [3e-4]
    "critic_lr": FloatDistribution(3e-5, 1e-3, log=True),  # [3e-4]
    "train_freq": CategoricalDistribution([1, 2, 4, 8]),  # env steps per update: the replay ratio [2]
    "batch_size": CategoricalDistribution([8, 16, 32]),  # [16]
    "seq_len": CategoricalDistribution([16, 32, 64]),  # [32]
    "imagination_horizon": CategoricalDistribution([5, 10, 15, 20]),  # [15]
    "imagination_starts": CategoricalDistribution([64, 128, 256, 512]),  # [128]
    "gamma": CategoricalDistribution([0.95, 0.97, 0.99, 0.997]),  # [0.99]
}

#: The planners' knobs: the world model's training (learning rate, replay ratio) and the search (horizon, method,
#: discount, the weight of the learned terminal value and of its Monte-Carlo loss); the cost of acting grows with the
#: horizon. Defaults in brackets. The discount stays below 1: the terminal value's critic bootstraps returns of
#: episodes that only a time limit ends, which an undiscounted sum lets grow without bound.
_PLANNER_SPACE: dict[str, BaseDistribution] = {
    "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),  # [1e-3]
    "train_freq": CategoricalDistribution([1, 2, 4]),  # [1 world model, 2 RSSM]
    "batch_size": CategoricalDistribution([8, 16, 32]),  # [32 world model, 16 RSSM]
    "horizon": CategoricalDistribution([8, 12, 15, 20, 30]),  # [15 world model, 12 RSSM]
    "planner": CategoricalDistribution(["cem", "mppi"]),  # ["cem"]
    "gamma": CategoricalDistribution([0.95, 0.99, 0.997]),  # [0.99]
    "terminal_value": CategoricalDistribution([0.0, 0.5, 1.0]),  # [1]
    "plan_lambda": CategoricalDistribution([0.8, 0.95, 1.0]),  # [0.95 world model, 1 RSSM]
    "mc_value_coef": CategoricalDistribution([0.0, 0.3, 1.0]),  # [1 world model, 0 RSSM] (nothing without a value)
}

#: The search space of each learner the sweep can tune (``--algo``).
SEARCH_SPACES: dict[str, dict[str, BaseDistribution]] = {
    "dreamer": SEARCH_SPACE,
    "world_model_agent": {**_PLANNER_SPACE, "gradient_steps": CategoricalDistribution([1, 2, 3, 5])},  # [3]
    "rssm_agent": _PLANNER_SPACE,
}

OBJECTIVES = ("auc", "final")


@dataclass(frozen=True)
class SweepSettings:
    """Everything a trial needs besides its sampled parameters (picklable, for Ray workers)."""

    env_id: str
    steps: int
    eval_every: int
    eval_episodes: int
    seeds: tuple[int, ...]
    objective: str
    fixed: dict[str, Any] = field(default_factory=dict)
    """The learner's arguments given with ``--hparams``: applied to every trial, not searched."""
    device: str = "cpu"
    threads: int = 1
    """torch threads per trial."""
    algo: str = "dreamer"
    """The learner (a key of :data:`SEARCH_SPACES` and of the benchmark's registry)."""

    def comparable(self) -> dict[str, Any]:
        """The settings that make trial values comparable; a study is only resumed with the same ones."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "threads")}


def suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """Sample ``space`` with ``trial`` (define-by-run, so the pruner and heartbeat of ``study.optimize`` apply)."""
    params: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        elif isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            raise ValueError(f"unsupported distribution for {name!r}: {dist!r}")
    return params


def train_seed(
    spec: AlgoSpec, settings: SweepSettings, seed: int, report: Callable[[int, float], None] | None = None
) -> list[Evaluation]:
    """Train ``spec`` on one seed; returns its evaluations, each also passed to ``report(env_steps, return)``."""
    curve: list[Evaluation] = []

    def record(evaluation: Evaluation) -> None:
        curve.append(evaluation)
        if report is not None:
            report(evaluation.env_steps, evaluation.return_mean)

    config = RunConfig(settings.env_id, seed, settings.steps, settings.eval_every, settings.eval_episodes,
                       settings.device)  # fmt: skip
    train(spec, config, EvalClock(record))
    return curve


def evaluate_params(
    params: Mapping[str, Any],
    settings: SweepSettings,
    report: Callable[[int, float], None] | None = None,
) -> tuple[float, dict[str, Any]]:
    """Train the learner with ``settings.fixed`` + ``params`` on every seed; returns ``(objective, details)``.

    ``report(env_steps, return)`` is called at each evaluation of the first seed (the pruner's signal); it may raise
    :class:`optuna.TrialPruned` to stop the trial.
    """
    import torch

    torch.set_num_threads(settings.threads)
    tasks.import_env_packages()
    spec = variant_spec(f"{settings.algo}-sweep", settings.algo, merge_hyperparams(settings.fixed, params))
    threshold = tasks.env_threshold(settings.env_id)
    scores, details = [], {"curves": {}, "steps_to_threshold": {}, "train_wall_s": {}}
    for index, seed in enumerate(settings.seeds):
        curve = train_seed(spec, settings, seed, report if index == 0 else None)  # the pruner watches the first seed
        returns = [e.return_mean for e in curve]
        scores.append(returns[-1] if settings.objective == "final" else sum(returns[1:]) / max(1, len(returns) - 1))
        reached = [e.env_steps for e in curve if threshold is not None and e.return_mean >= threshold]
        details["curves"][seed] = [[e.env_steps, round(e.return_mean, 2)] for e in curve]
        details["steps_to_threshold"][seed] = reached[0] if reached else None  # None: not reached (JSON has no inf)
        details["train_wall_s"][seed] = round(curve[-1].wall_s, 2)
    return sum(scores) / len(scores), details


# --------------------------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------------------------


def run_optuna(study: optuna.Study, settings: SweepSettings, space: Mapping[str, BaseDistribution],
               remaining: int, n_trials: int) -> None:  # fmt: skip
    """Run ``remaining`` trials in this process (fewer if other processes complete the study first)."""

    def objective(trial: optuna.Trial) -> float:
        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"return {value:.1f} at step {step} is below the median of earlier trials")

        value, details = evaluate_params(suggest(trial, space), settings, report)
        for key, item in details.items():
            trial.set_user_attr(key, item)
        return value

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    # A diverging configuration fails with NaNs in torch (RuntimeError/ValueError): record it, go on with the next.
    study.optimize(objective, n_trials=remaining, catch=(RuntimeError, ValueError),
                   callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=finished)])  # fmt: skip


def _tune_trainable(config: dict[str, Any], settings: SweepSettings) -> None:
    """One Ray Tune trial: train on every seed, report the objective once at the end."""
    from ray import tune

    value, details = evaluate_params(config, settings)
    reached = [s for s in details["steps_to_threshold"].values() if s is not None]
    tune.report({"score": value, "seeds_reached": len(reached),
                 "train_wall_s": sum(details["train_wall_s"].values()), "details": json.dumps(details)})  # fmt: skip


def run_ray(study: optuna.Study, settings: SweepSettings, space: Mapping[str, BaseDistribution], remaining: int,
            out_dir: Path, num_cpus: int | None, address: str | None) -> None:  # fmt: skip
    """Run ``remaining`` trials as Ray Tune trials, sampled by OptunaSearch into ``study``'s storage."""
    import functools

    import ray
    from ray import cloudpickle, tune
    from ray.tune.search.optuna import OptunaSearch

    if __name__ != "__main__":  # imported (not an installed module): ship the trainable to the workers by value
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    resources = run.init_ray(address, num_cpus)  # puts the checkout on the workers' PYTHONPATH
    try:
        searcher = OptunaSearch(space=dict(space), metric="score", mode="max", sampler=study.sampler,
                                study_name=study.study_name, storage=make_storage(out_dir))  # fmt: skip
        slots = max(1, int(resources.get("CPU", 1) // settings.threads))
        # With --device cuda, the concurrent trials share the cluster's GPUs.
        gpus = resources.get("GPU", 0.0) / slots if settings.device == "cuda" else 0.0
        trainable = tune.with_resources(functools.partial(_tune_trainable, settings=settings),
                                        {"cpu": settings.threads, "gpu": gpus})  # fmt: skip
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining, max_concurrent_trials=slots),
            run_config=tune.RunConfig(name=study.study_name.replace("/", "-"),
                                      storage_path=str((out_dir / "ray_results").resolve()), verbose=1),
        )  # fmt: skip
        tuner.fit()
    finally:
        ray.shutdown()


# --------------------------------------------------------------------------------------------------------------------
# Study, results and command line
# --------------------------------------------------------------------------------------------------------------------


def make_storage(out_dir: Path, heartbeat: bool = False) -> optuna.storages.RDBStorage:
    """The SQLite storage ``OUT/study.db``.

    With ``heartbeat``, the trials of a process that was killed are marked failed after a grace period and retried
    once with the same parameters (a trial interrupted with Ctrl-C is marked failed at once and not retried).
    """
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url = f"sqlite:///{(out_dir / 'study.db').resolve()}"
    if not heartbeat:
        return RDBStorage(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, heartbeat_interval=60, grace_period=180,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))  # fmt: skip


def open_study(out_dir: Path, settings: SweepSettings, sampler_seed: int) -> optuna.Study:
    """Create or resume the study in ``OUT/study.db``; a resumed study must have been run with the same settings."""
    name = f"{settings.algo}-{settings.env_id}"
    storage = make_storage(out_dir, heartbeat=True)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    wanted = json.loads(json.dumps(settings.comparable()))  # tuples -> lists, as stored
    stored = study.user_attrs.get("settings")
    if stored is not None and "algo" not in stored:  # studies from before --algo tuned DreamerAgent
        stored = {**stored, "algo": "dreamer"}
    if stored is None:
        study.set_user_attr("settings", wanted)
    elif stored != wanted:
        raise ValueError(f"the study in {out_dir} was run with {stored}, not {wanted}; use another --out to start "
                         "a new sweep, or the same settings to resume it")  # fmt: skip
    # Seeded by the trials so far: reproducible, and a resumed sweep does not re-draw the first random trials.
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(study.trials))
    return study


def write_results(study: optuna.Study, settings: SweepSettings, out_dir: Path) -> Path | None:
    """Write ``trials.csv`` and ``best_params.json``; returns the latter (None when no trial has completed)."""
    atomic_write_text(out_dir / "trials.csv", study.trials_dataframe().to_csv(index=False))
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        return None
    best = study.best_trial
    result = {
        "study": study.study_name, "objective": settings.objective, "value": best.value, "trial": best.number,
        "params": best.params, "user_attrs": best.user_attrs,
        # Ready to use: DreamerAgent("MlpPolicy", env, **agent_kwargs) (or the swept planner's class).
        "algo": settings.algo, "agent_kwargs": merge_hyperparams(settings.fixed, best.params),
        # The key of earlier versions, kept for scripts that read it (Dreamer sweeps only).
        **({"dreamer_kwargs": merge_hyperparams(settings.fixed, best.params)} if settings.algo == "dreamer" else {}),
    }  # fmt: skip
    path = out_dir / "best_params.json"
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    return path


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--algo", choices=sorted(SEARCH_SPACES), default="dreamer", help="the learner to tune")
    parser.add_argument("--env", default="CA11/ContinuousPendulum-v0", help="Gymnasium id")
    parser.add_argument("--trials", type=int, default=30, help="completed (or pruned) trials to reach")
    parser.add_argument("--steps", type=int, default=3000, help="env-step budget of every run")
    parser.add_argument("--eval-every", type=int, help="env steps between evaluations (default: steps / 10)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="deterministic episodes per evaluation")
    parser.add_argument("--seeds", default="2", help="a count N (seeds 0..N-1) or a list '0,1,2'")
    parser.add_argument("--objective", choices=OBJECTIVES, default="auc", help="see the description above")
    parser.add_argument("--hparams", help="JSON object of the learner's arguments fixed for every trial (not searched)")
    parser.add_argument("--backend", choices=("optuna", "ray"), default="optuna")
    parser.add_argument("--prune", action=argparse.BooleanOptionalAction, default=True, help="median pruner (optuna)")
    parser.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device of every trial")
    parser.add_argument("--cpus-per-trial", type=int, default=1, help="torch threads (and Ray CPUs) per trial")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (ray backend)")
    parser.add_argument("--address", help="existing Ray cluster (ray backend)")
    parser.add_argument("--out", required=True, type=Path, help="output directory (reuse it to resume)")
    return parser


def parse_settings(args: argparse.Namespace) -> SweepSettings:
    """Validate the arguments into :class:`SweepSettings`; bad values raise a ``ValueError`` naming the option."""
    for flag in ("trials", "steps", "eval_every", "eval_episodes", "cpus_per_trial"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    env_ids = run.validate_envs(args.env)
    if len(env_ids) != 1:
        raise ValueError(f"--env takes one env id, got {env_ids}")
    fixed: dict[str, Any] = {}
    if args.hparams:
        fixed = json.loads(args.hparams)
        if not isinstance(fixed, dict):
            raise ValueError(f"--hparams must be a JSON object, got {args.hparams!r}")
    return SweepSettings(args.env, args.steps, args.eval_every or max(1, args.steps // 10), args.eval_episodes,
                         tuple(run.parse_seeds(args.seeds)), args.objective, fixed, args.device,
                         args.cpus_per_trial, args.algo)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) the sweep; returns 0 when a best trial exists, 1 when none completed, 2 for bad arguments."""
    args = build_parser().parse_args(argv)
    try:
        settings = parse_settings(args)
        args.out.mkdir(parents=True, exist_ok=True)
        study = open_study(args.out, settings, args.sampler_seed)
    except (ValueError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.prune:
        study.pruner = optuna.pruners.NopPruner()
    else:  # past half the budget: earlier, every configuration is still near the random policy's return
        study.pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=settings.steps // 2)
    space = {name: dist for name, dist in SEARCH_SPACES[settings.algo].items() if name not in settings.fixed}
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = args.trials - len(study.get_trials(deepcopy=False, states=finished))
    print(f"study {study.study_name} in {args.out / 'study.db'}: {args.trials - remaining} trial(s) finished, "
          f"{max(0, remaining)} to run ({args.backend}); searching {', '.join(space) or 'nothing'}", flush=True)
    try:
        if remaining > 0 and args.backend == "optuna":
            run_optuna(study, settings, space, remaining, args.trials)
        elif remaining > 0:
            run_ray(study, settings, space, remaining, args.out, args.num_cpus, args.address)
    except KeyboardInterrupt:
        print("interrupted: finished trials are kept in study.db; run the same command again to resume",
              file=sys.stderr)  # fmt: skip
    path = write_results(study, settings, args.out)
    print(f"wrote {args.out / 'trials.csv'}")
    if path is None:
        print("no trial has completed yet", file=sys.stderr)
        return 1
    best = study.best_trial
    print(f"best trial {best.number}: {settings.objective} = {best.value:.1f} with {json.dumps(best.params)}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
