"""Environment speed: steps per second of every ca11 environment next to Gymnasium's own counterpart.

Usage::

    python -m benchmarks.env_speed [--steps 20000] [--num-envs 1024] [--repeats 3] [--out FILE.json]

Measured in one process, so both sides share the machine's state:

- single environments through ``gym.make`` on both sides (so the same wrappers: ``PassiveEnvChecker``,
  ``OrderEnforcing``, ``TimeLimit``): ``CA11/ContinuousCartPole-v0`` against ``CartPole-v1``,
  ``CA11/ContinuousPendulum-v0`` against ``Pendulum-v1``, and ``CA11/SequenceEnvironment-v0`` alone;
- vector twins at ``--num-envs`` sub-environments through ``gym.make_vec(..., vectorization_mode=
  "vector_entry_point")``: the cart-pole twin against Gymnasium's ``CartPoleVectorEnv``; the pendulum twin against a
  ``SyncVectorEnv`` of ``Pendulum-v1`` (Gymnasium has no numpy pendulum), which makes only ``--steps // 200`` calls
  because each call steps ``--num-envs`` Python environments; the sequence twin alone.

Actions are sampled from the action space before the clock starts and cycled through; episodes are reset as they
end (single environments) or autoreset (vector environments), inside the timed loop. Each figure is the best of
``--repeats`` timed runs, in environment steps per second (for a vector environment, calls x sub-environments).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

import ca11_gym  # noqa: F401  (registers the ids)
from benchmarks import command_line

#: Number of pre-sampled actions (or batches) cycled through: enough to look random, small enough for memory.
ACTION_POOL = 256
#: Untimed step() calls before the clock starts (first calls run the passive checker, warm caches).
WARMUP_STEPS = 20
#: A SyncVectorEnv call steps num_envs Python environments: it gets this many times fewer calls.
SYNC_CALL_DIVISOR = 200


@dataclass(frozen=True)
class Case:
    """One row of the table: a ca11 environment and, where Gymnasium has one, its counterpart."""

    mode: str  # "single" or "vector"
    env_id: str
    counterpart_id: str | None = None
    counterpart_vectorization: str = "vector_entry_point"  # for vector rows


CASES: tuple[Case, ...] = (
    Case("single", "CA11/ContinuousCartPole-v0", "CartPole-v1"),
    Case("single", "CA11/ContinuousPendulum-v0", "Pendulum-v1"),
    Case("single", "CA11/SequenceEnvironment-v0"),
    Case("vector", "CA11/ContinuousCartPole-v0", "CartPole-v1"),
    Case("vector", "CA11/ContinuousPendulum-v0", "Pendulum-v1", counterpart_vectorization="sync"),
    Case("vector", "CA11/SequenceEnvironment-v0"),
)


@dataclass
class Row:
    """The measured speeds of one :class:`Case`, in environment steps per second."""

    mode: str
    env_id: str
    steps_per_s: float
    counterpart: str | None
    counterpart_steps_per_s: float | None
    ratio: float | None  # ours / counterpart: above 1 means faster than Gymnasium's


def single_env_speed(env_id: str, steps: int, repeats: int, seed: int = 0) -> float:
    """Best steps/s of ``gym.make(env_id)`` over ``repeats`` runs of ``steps`` steps with random actions."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    pool = [env.action_space.sample() for _ in range(min(steps, ACTION_POOL))]
    for action in pool[:WARMUP_STEPS]:  # untimed: the passive checker inspects the first step()
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    best = 0.0
    for _ in range(repeats):
        step, reset = env.step, env.reset  # bound once, as a tight training loop would
        start = time.perf_counter()
        for action in itertools.islice(itertools.cycle(pool), steps):
            _, _, terminated, truncated, _ = step(action)
            if terminated or truncated:
                reset()
        best = max(best, steps / (time.perf_counter() - start))
    env.close()
    return best


def vector_env_speed(
    env_id: str, num_envs: int, calls: int, repeats: int, vectorization: str, seed: int = 0
) -> float:
    """Best environment steps/s (calls x ``num_envs``) of ``gym.make_vec`` with random actions; autoreset inside."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=vectorization)
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    pool = [envs.action_space.sample() for _ in range(min(calls, ACTION_POOL))]
    for actions in pool[:WARMUP_STEPS]:
        envs.step(actions)
    best = 0.0
    for _ in range(repeats):
        step = envs.step
        start = time.perf_counter()
        for actions in itertools.islice(itertools.cycle(pool), calls):
            step(actions)
        best = max(best, calls * num_envs / (time.perf_counter() - start))
    envs.close()
    return best


def measure(case: Case, steps: int, num_envs: int, repeats: int) -> Row:
    """Time ``case``'s ca11 environment and its counterpart."""
    if case.mode == "single":
        ours = single_env_speed(case.env_id, steps, repeats)
        theirs = single_env_speed(case.counterpart_id, steps, repeats) if case.counterpart_id else None
        counterpart = case.counterpart_id
    else:
        ours = vector_env_speed(case.env_id, num_envs, steps, repeats, "vector_entry_point")
        theirs, counterpart = None, None
        if case.counterpart_id:
            sync = case.counterpart_vectorization == "sync"
            calls = max(2, steps // SYNC_CALL_DIVISOR) if sync else steps
            theirs = vector_env_speed(case.counterpart_id, num_envs, calls, repeats, case.counterpart_vectorization)
            vectorizer = type(gym.make_vec(case.counterpart_id, 1, vectorization_mode=case.counterpart_vectorization))
            counterpart = f"{case.counterpart_id} ({vectorizer.__name__})"
    ratio = ours / theirs if theirs else None
    return Row(case.mode, case.env_id, ours, counterpart, theirs, ratio)


def markdown_table(rows: Sequence[Row], num_envs: int) -> str:
    """The results as a Markdown table (pasted into benchmarks/README.md)."""
    lines = [
        "| environment | mode | ca11 steps/s | Gymnasium counterpart | its steps/s | ratio |",
        "|---|---|---:|---|---:|---:|",
    ]
    for row in rows:
        mode = row.mode if row.mode == "single" else f"vector x{num_envs}"
        theirs = f"{row.counterpart_steps_per_s:,.0f}" if row.counterpart_steps_per_s else "-"
        ratio = f"{row.ratio:.2f}" if row.ratio else "-"
        lines.append(
            f"| {row.env_id} | {mode} | {row.steps_per_s:,.0f} | {row.counterpart or '-'} | {theirs} | {ratio} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.env_speed``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.env_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000, help="step() calls per timed run (default 20000)")
    parser.add_argument("--num-envs", type=int, default=1024, help="sub-environments of the vector rows (default 1024)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure, the best is kept (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case, print the table, optionally write the JSON; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 1 or args.num_envs < 1 or args.repeats < 1:
        parser.error("--steps, --num-envs and --repeats must be positive")
    rows = [measure(case, args.steps, args.num_envs, args.repeats) for case in CASES]
    table = markdown_table(rows, args.num_envs)
    print(table)
    if args.out is not None:
        report = {
            "command": command_line("benchmarks.env_speed", argv),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "gymnasium": gym.__version__,
            "steps": args.steps,
            "num_envs": args.num_envs,
            "repeats": args.repeats,
            "results": [asdict(row) for row in rows],
            "table": table,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
