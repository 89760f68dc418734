"""Benchmark runner: every learner against the model-free baselines, same envs, seeds and budget, in parallel on Ray.
Needs the ``bench`` extra: ``pip install ".[bench]"`` (Ray, sb3-contrib, tianshou, pandas).

Usage::

    python -m benchmarks.run --algos dreamer,sb3_sac,sb3_ppo --envs CA11/ContinuousPendulum-v0 \\
        --seeds 3 --steps 20000 --device auto --out outputs/bench

Each (algorithm, env, seed) is one run. A run writes ``OUT/runs/<algo>__<env>__<seed>.csv`` after every evaluation
and ``OUT/runs/<algo>__<env>__<seed>.json`` when it finishes; a second invocation with the same ``--out`` skips
finished runs and restarts unfinished ones (their partial curve is kept as ``.partial.csv`` until the run completes).
``OUT/results.csv``, ``OUT/summary.md`` and ``OUT/curves.png`` are rebuilt from the finished runs at the end (see
:mod:`benchmarks.report`). ``benchmarks/README.md`` documents the conventions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import HelpFormatter
from benchmarks.adapters import EvalClock, Evaluation, RunConfig, policy_for, train
from benchmarks.algos import ALGOS, AlgoSpec, get_algo
from benchmarks.report import atomic_write_text, finished_runs, read_json, rebuild_results, rows_to_csv
from benchmarks.tasks import Budget, budget_for, env_spaces, env_threshold, import_env_packages


@dataclass(frozen=True)
class RunTask:
    """One (algorithm, env, seed) run and everything it needs; small and picklable for Ray."""

    algo: str
    env_id: str
    seed: int
    total_steps: int
    eval_every: int
    eval_episodes: int
    device: str
    torch_threads: int

    @property
    def stem(self) -> str:
        """File name stem of this run's files under ``OUT/runs`` (``/`` in env ids becomes ``-``)."""
        return f"{self.algo}__{self.env_id.replace('/', '-')}__{self.seed}"


@dataclass(frozen=True)
class RunResult:
    """What a finished run sends back to the driver (which writes the final files, so no shared disk is needed)."""

    task: RunTask
    rows: list[dict[str, Any]]
    total_wall_s: float
    device_name: str
    hyperparams: dict[str, str]
    hyperparams_source: str
    policy: str | None = None
    """The policy string an SB3-API learner was built with (named in the hyperparameters or chosen by the adapter)."""
    peak_rss_mb: float | None = None
    """Peak resident memory of the process that ran it (MiB; with ``--no-ray`` several runs share one process, so
    this is the largest of them so far)."""
    versions: dict[str, str] | None = None
    """Python and the packages the run's numbers depend on (:func:`package_versions`): runs of one seed reproduce
    only with the same builds."""


# --------------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------------


def _count_rows(path: Path) -> int:
    return sum(1 for _ in path.open()) - 1 if path.exists() else -1


def keep_partial_curve(runs_dir: Path, task: RunTask) -> None:
    """Move an unfinished run's curve to ``<stem>.partial.csv`` before the run restarts.

    If a ``.partial.csv`` already exists (interrupted twice), the longer of the two curves is kept.
    """
    curve, partial = runs_dir / f"{task.stem}.csv", runs_dir / f"{task.stem}.partial.csv"
    if not curve.exists():
        return
    if _count_rows(curve) >= _count_rows(partial):
        os.replace(curve, partial)
    else:
        curve.unlink()


def finalize_run(runs_dir: Path, result: RunResult) -> None:
    """Write a finished run's curve and its ``.json`` marker; the marker is written last, so it means 'complete'."""
    task = result.task
    atomic_write_text(runs_dir / f"{task.stem}.csv", rows_to_csv(result.rows))
    marker = {**asdict(task), "complete": True, "total_wall_s": result.total_wall_s,
              "device_name": result.device_name, "hyperparams": result.hyperparams,
              "hyperparams_source": result.hyperparams_source, "policy": result.policy,
              "peak_rss_mb": result.peak_rss_mb, "versions": result.versions}  # fmt: skip
    atomic_write_text(runs_dir / f"{task.stem}.json", json.dumps(marker, indent=2) + "\n")
    (runs_dir / f"{task.stem}.partial.csv").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------------------------
# Worker
# --------------------------------------------------------------------------------------------------------------------


def package_versions() -> dict[str, str]:
    """The versions of Python and of the packages a run's numbers depend on, for its ``.json`` marker."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("torch", "numpy", "gymnasium", "stable-baselines3", "sb3-contrib", "tianshou"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def describe_device(device: str, torch_threads: int) -> str:
    """A human-readable name of the device a run used, for the report."""
    import torch

    if device.startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.machine()}, {torch_threads} torch thread(s))"


def run_one(task: RunTask, out_dir: str, spec: AlgoSpec | None = None) -> RunResult:
    """Train and evaluate one run, writing its curve after every evaluation; runs in a Ray worker or in-process.

    ``spec`` defaults to the registered algorithm ``task.algo``. The driver passes it explicitly, because a Ray
    worker is a fresh process that knows only the built-in algorithms, not variants registered at run time
    (:func:`benchmarks.algos.register_variant`).
    """
    import torch

    torch.set_num_threads(task.torch_threads)
    import_env_packages()
    spec = get_algo(task.algo) if spec is None else spec
    curve = Path(out_dir) / "runs" / f"{task.stem}.csv"
    rows: list[dict[str, Any]] = []

    def record(evaluation: Evaluation) -> None:
        rows.append({"algo": task.algo, "env": task.env_id, "seed": task.seed, "env_steps": evaluation.env_steps,
                     "eval_return_mean": evaluation.return_mean, "eval_return_std": evaluation.return_std,
                     "wall_s": round(evaluation.wall_s, 3), "device": task.device})  # fmt: skip
        try:
            atomic_write_text(curve, rows_to_csv(rows))
        except OSError:
            pass  # a worker on another machine may not see OUT; the driver writes the final curve anyway

    started = time.perf_counter()
    config = RunConfig(task.env_id, task.seed, task.total_steps, task.eval_every, task.eval_episodes, task.device)
    train(spec, config, EvalClock(record))
    hyperparams = spec.hyperparams_for(task.env_id)
    return RunResult(task, rows, time.perf_counter() - started, describe_device(task.device, task.torch_threads),
                     {k: repr(v) for k, v in hyperparams.values.items()}, hyperparams.source,
                     policy_for(spec, task.env_id), peak_rss_mb(), package_versions())  # fmt: skip


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MiB (``None`` where ``resource`` is missing, as on Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)  # bytes on macOS, KiB on Linux


# --------------------------------------------------------------------------------------------------------------------
# Planning and validation
# --------------------------------------------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> ``[0, 1, 2]`` (a count); ``"4,7"`` -> ``[4, 7]`` and ``"7,"`` -> ``[7]`` (an explicit list)."""
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",") if part.strip()]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise ValueError(f"--seeds must be a count (3) or a comma-separated list (0,1,2), got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must name at least one distinct non-negative seed, got {text!r}")
    return seeds


def parse_names(text: str) -> list[str]:
    """Split a comma-separated list, dropping blanks."""
    return [name.strip() for name in text.split(",") if name.strip()]


def select_algos(requested: str | None) -> list[AlgoSpec]:
    """The algorithms to run. Unknown names raise; unavailable ones raise when named, are skipped from the default."""
    if requested is None:
        specs = []
        for spec in ALGOS.values():
            if spec.is_available():
                specs.append(spec)
            else:
                print(f"note: skipping {spec.name} from the default suite: {spec.target} is not importable yet")
        return specs
    specs = [get_algo(name) for name in parse_names(requested)]
    for spec in specs:
        spec.load_class()  # raises AlgorithmUnavailableError naming the missing class
    return specs


def validate_envs(requested: str | None) -> list[str]:
    """The env ids to run; unknown ids raise a ``ValueError`` listing the ca11 ones."""
    import gymnasium as gym

    from benchmarks.envs import BENCHMARK_ENV_IDS

    import_env_packages()
    try:
        import ca11_gym

        ca11_ids: Sequence[str] = ca11_gym.ENV_IDS
    except ImportError as err:
        if requested is None:
            raise ValueError(f"ca11_gym cannot be imported ({err}); pass --envs (e.g. Pendulum-v1)") from err
        ca11_ids = ()
    env_ids = list(ca11_ids) if requested is None else parse_names(requested)
    unknown = [env_id for env_id in env_ids if env_id not in gym.registry]
    if unknown or not env_ids:
        raise ValueError(
            f"unknown env id(s) {unknown}; valid: {', '.join(ca11_ids) or '(ca11_gym not importable)'}, "
            f"{', '.join(BENCHMARK_ENV_IDS)}, or any registered Gymnasium id such as CartPole-v1"
        )
    return env_ids


def resolve_device(requested: str, cluster_gpus: float | None) -> str:
    """``auto`` -> ``cuda`` when a GPU is there (in the Ray cluster, or locally without Ray), else ``cpu``."""
    import torch

    has_gpu = torch.cuda.is_available() if cluster_gpus is None else cluster_gpus > 0
    if requested == "auto":
        return "cuda" if has_gpu else "cpu"
    if requested == "cuda" and not has_gpu:
        where = "" if cluster_gpus is None else " in the Ray cluster"
        raise ValueError(f"--device cuda, but no CUDA GPU is available{where}")
    return requested


# --------------------------------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------------------------------


def _print_finished(done: int, total: int, result: RunResult) -> None:
    task, last = result.task, result.rows[-1]
    print(f"[{done}/{total}] {task.algo} on {task.env_id} seed {task.seed}: final return "
          f"{float(last['eval_return_mean']):.1f} ± {float(last['eval_return_std']):.1f} after {last['env_steps']} "
          f"steps, {result.total_wall_s:.0f} s on {result.device_name}, peak memory {result.peak_rss_mb} MiB",
          flush=True)  # fmt: skip


def _print_failed(done: int, total: int, task: RunTask, err: BaseException) -> None:
    print(f"[{done}/{total}] FAILED {task.algo} on {task.env_id} seed {task.seed}: {type(err).__name__}: {err}",
          file=sys.stderr, flush=True)  # fmt: skip


def execute_sequential(tasks: Sequence[RunTask], out_dir: Path) -> int:
    """Run ``tasks`` one after another in this process; returns the number of failed runs."""
    failures = 0
    for i, task in enumerate(tasks, start=1):
        try:
            result = run_one(task, str(out_dir))
        except Exception as err:  # one broken learner must not stop the other runs
            traceback.print_exc()
            _print_failed(i, len(tasks), task, err)
            failures += 1
            continue
        finalize_run(out_dir / "runs", result)
        _print_finished(i, len(tasks), result)
    return failures


def execute_ray(tasks: Sequence[RunTask], out_dir: Path, cpus_per_run: float, gpus_per_run: float) -> int:
    """Run ``tasks`` as Ray tasks (Ray already initialised); returns the number of failed runs."""
    import ray

    remote_run = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(run_one)
    pending = {remote_run.remote(task, str(out_dir), get_algo(task.algo)): task for task in tasks}
    failures = done = 0
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        task = pending.pop(ref)
        done += 1
        try:
            result = ray.get(ref)
        except Exception as err:  # RayTaskError wraps the worker's exception and traceback
            _print_failed(done, len(tasks), task, err)
            failures += 1
            continue
        finalize_run(out_dir / "runs", result)
        _print_finished(done, len(tasks), result)
    return failures


def init_ray(address: str | None, num_cpus: int | None) -> dict[str, float]:
    """Connect to ``address`` or start a local Ray instance with ``num_cpus`` CPUs; returns the cluster's resources."""
    import logging

    import ray

    root = Path(__file__).resolve().parent.parent
    if address:
        # Ship the project's packages to the cluster's workers (they may run on machines without this checkout).
        modules = [str(root / name) for name in ("benchmarks", "ca11_gym", "ca11_agents") if (root / name).is_dir()]
        ray.init(address=address, runtime_env={"py_modules": modules}, logging_level=logging.WARNING)
    else:
        pythonpath = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})  # fmt: skip
    return dict(ray.cluster_resources())


def missing_extras(use_ray: bool, report: bool) -> str | None:
    """An error message naming the extra to install when Ray (``use_ray``) or pandas (``report``) is missing, so that
    it comes before the runs rather than after them; ``None`` when all is there."""
    needed = {"ray": use_ray, "pandas": report}
    missing = [name for name, wanted in needed.items() if wanted and importlib.util.find_spec(name) is None]
    return f"{' and '.join(missing)} not installed: pip install \".[bench]\"" if missing else None


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m benchmarks.run``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--algos", help=f"comma-separated; default: every available one of {', '.join(ALGOS)}")
    parser.add_argument("--envs", help="comma-separated env ids; default: ca11_gym.ENV_IDS")
    parser.add_argument("--seeds", default="3", help="a count N (seeds 0..N-1) or a list '0,1,2' ('7,' = seed 7)")
    parser.add_argument("--steps", type=int, help="env steps per run; default: per env (see benchmarks/README.md)")
    parser.add_argument("--eval-every", type=int, help="env steps between evaluations; default: per env, or steps/20")
    parser.add_argument("--eval-episodes", type=int, default=10, help="deterministic episodes per evaluation")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device of learners")
    parser.add_argument("--out", required=True, type=Path, help="output directory (reused to resume)")
    parser.add_argument("--address", help="address of an existing Ray cluster (default: start a local one)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--cpus-per-run", type=int, default=1, help="CPUs (and torch threads) per run")
    parser.add_argument("--gpus-per-run", type=float, help="GPU share per run (default: GPUs / concurrent runs)")
    parser.add_argument("--no-ray", action="store_true", help="run sequentially in this process (debugging)")
    parser.add_argument("--no-report", action="store_true", help="skip summary.md and curves.png")
    return parser


def plan_tasks(
    specs: Sequence[AlgoSpec],
    env_ids: Sequence[str],
    seeds: Sequence[int],
    budgets: dict[str, Budget],
    eval_episodes: int,
    device: str,
    cpus_per_run: int,
    runs_dir: Path,
) -> tuple[list[RunTask], int]:
    """The runs still to do and how many are already finished; unfinished curves are set aside as ``.partial``."""
    finished = finished_runs(runs_dir)
    tasks, skipped = [], 0
    for env_id in env_ids:
        observation_space, action_space = env_spaces(env_id)
        for spec in specs:
            reason = spec.unsupported_reason(observation_space, action_space)
            if reason is not None:
                print(f"note: skipping {spec.name} on {env_id}: {reason}")
                continue
            for seed in seeds:
                budget = budgets[env_id]
                task = RunTask(spec.name, env_id, seed, budget.steps, budget.eval_every, eval_episodes, device,
                               cpus_per_run)  # fmt: skip
                old = finished.get(task.stem)
                if old is None:
                    keep_partial_curve(runs_dir, task)
                    tasks.append(task)
                    continue
                skipped += 1
                if (old["total_steps"], old["eval_every"], old["eval_episodes"]) != (
                        task.total_steps, task.eval_every, task.eval_episodes):  # fmt: skip
                    print(f"note: keeping finished {task.stem} (steps {old['total_steps']}, eval every "
                          f"{old['eval_every']}); delete runs/{task.stem}.* to redo it with the new settings")
    return tasks, skipped


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status (1 if any run failed)."""
    args = build_parser().parse_args(argv)
    try:
        for flag in ("steps", "eval_every", "eval_episodes", "cpus_per_run", "num_cpus"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be positive, got {value}")
        seeds = parse_seeds(args.seeds)
        specs = select_algos(args.algos)
        env_ids = validate_envs(args.envs)
        budgets = {env_id: budget_for(env_id, args.steps, args.eval_every) for env_id in env_ids}
        missing = missing_extras(not args.no_ray, not args.no_report)
        if missing:
            raise ValueError(f"{missing} (--no-ray runs without Ray, --no-report without pandas)")
    except (ValueError, ImportError) as err:  # ImportError: AlgorithmUnavailableError naming the missing class
        print(f"error: {err}", file=sys.stderr)
        return 2

    out_dir: Path = args.out
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    use_ray, failures, interrupted = not args.no_ray, 0, False
    resources = init_ray(args.address, args.num_cpus) if use_ray else {}
    try:
        device = resolve_device(args.device, resources.get("GPU", 0.0) if use_ray else None)
        gpus_per_run = 0.0
        if device == "cuda" and use_ray:
            slots = max(1, int(resources.get("CPU", 1) // args.cpus_per_run))
            gpus_per_run = args.gpus_per_run if args.gpus_per_run is not None else min(1.0, resources["GPU"] / slots)
        write_meta(out_dir, budgets, {env_id: env_threshold(env_id) for env_id in env_ids}, device)
        tasks, skipped = plan_tasks(specs, env_ids, seeds, budgets, args.eval_episodes, device, args.cpus_per_run,
                                    out_dir / "runs")  # fmt: skip
        print(f"{len(tasks)} run(s) to do, {skipped} already finished; device {device}; output {out_dir}", flush=True)
        if use_ray:
            failures = execute_ray(tasks, out_dir, args.cpus_per_run, gpus_per_run)
        else:
            failures = execute_sequential(tasks, out_dir)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: finished runs are kept; run the same command again to resume", file=sys.stderr)
    finally:
        if use_ray:
            import ray

            ray.shutdown()

    results = rebuild_results(out_dir)
    print(f"wrote {results}")
    if not args.no_report:
        from benchmarks.report import write_report

        for path in write_report(out_dir):
            print(f"wrote {path}")
    return 130 if interrupted else 1 if failures else 0


def write_meta(out_dir: Path, budgets: dict[str, Budget], thresholds: dict[str, float | None], device: str) -> None:
    """Record each env's threshold and budget in ``OUT/benchmark.json`` (merged with earlier invocations)."""
    path = out_dir / "benchmark.json"
    meta: dict[str, Any] = read_json(path) if path.exists() else {}
    envs = meta.setdefault("envs", {})
    for env_id, budget in budgets.items():
        envs[env_id] = {"threshold": thresholds[env_id], "steps": budget.steps, "eval_every": budget.eval_every}
    meta["last_device"] = device
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
