"""Adaptation to changed dynamics (the notebook's meta-learning): does a Dreamer trained on one parameterisation of a
task learn a changed one faster than a Dreamer that starts from scratch?

For each seed, on the changed env (``--change``, e.g. ``mass=1.3`` for the pendulum, whose parameters are documented
in ``ca11_gym``):

- **scratch**: a new ``DreamerAgent`` learns the changed env for ``--steps`` steps;
- **fine-tuned**: an agent first learns the default env for ``--pretrain-steps`` steps, is evaluated on the changed
  env (``zero-shot``), then continues learning there for ``--steps`` steps (``set_env`` and
  ``learn(reset_num_timesteps=False)``: the networks, the optimiser state and the replay, which still holds the old
  dynamics' steps, carry over; no random warm-up after the change);
- **fresh-replay**: the same pre-trained agent saved and loaded onto the changed env and trained as SB3's defaults
  do (``DreamerAgent.load(path, env=...)``, then ``learn`` with ``reset_num_timesteps=True``): networks and optimiser
  state carry over, the replay starts empty and the step count at 0, so the agent collects ``learning_starts`` random
  steps before its first update, as a new agent does, and its world model trains on the new dynamics' steps only.

``--arms`` picks which of them run (all three by default; the pre-training is shared by the last two).

Every arm is evaluated every ``--eval-every`` steps on the changed env (deterministic episodes, SB3's
``evaluate_policy``), and the steps to the task's threshold are counted from the change::

    python -m benchmarks.adaptation --env CA11/ContinuousPendulum-v0 --change mass=1.3 --seeds 3 \\
        --pretrain-steps 2000 --steps 2500 --eval-every 250 --out benchmarks/results/YYYY-MM-DD-adaptation/pendulum

Writes ``adaptation.json`` (every curve) and ``adaptation.md`` (steps to threshold per seed, medians, zero-shot and
final returns).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import HelpFormatter, command_line
from benchmarks.report import atomic_write_text


def parse_change(text: str) -> dict[str, float]:
    """``"mass=1.3,length=0.8"`` -> ``{"mass": 1.3, "length": 0.8}``."""
    change = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--change: expected KEY=VALUE items, got {item!r}")
        change[key.strip()] = float(value)
    if not change:
        raise ValueError("--change: give at least one KEY=VALUE")
    return change


def _evaluate(agent: Any, env_id: str, change: dict[str, float], episodes: int, seed: int) -> tuple[float, float]:
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from benchmarks.adapters import EVAL_SEED_OFFSET

    env = Monitor(gym.make(env_id, **change))  # SB3 counts episodes from the Monitor's records
    env.reset(seed=EVAL_SEED_OFFSET + seed)  # the evaluation seed of the benchmark runner
    try:
        mean, std = evaluate_policy(agent, env, n_eval_episodes=episodes, deterministic=True)
    finally:
        env.close()
    return float(mean), float(std)


def learn_curve(
    agent: Any, steps: int, every: int, evaluate: Any, restart: bool = False
) -> list[tuple[int, float, float]]:
    """``agent.learn`` for ``steps`` more steps, evaluated (``evaluate(agent) -> (mean, std)``) every ``every`` steps
    counted from now: ``[(steps, mean, std), ...]`` starting with the evaluation at 0. ``restart``: the first chunk
    resets the step count (SB3's ``reset_num_timesteps=True``: random warm-up again), the others continue it."""
    curve = [(0, *evaluate(agent))]
    for done in range(every, steps + 1, every):
        with warnings.catch_warnings():  # "ends before any update": expected for the chunks before learning_starts
            warnings.filterwarnings("ignore", message=r".*before any update", category=UserWarning)
            agent.learn(every, reset_num_timesteps=restart and done == every)
        curve.append((done, *evaluate(agent)))
    return curve


#: The compared arms, in report order.
ARMS = ("scratch", "fine_tuned", "fresh_replay")


def run_seed(args: argparse.Namespace, change: dict[str, float], seed: int) -> dict[str, Any]:
    """Every arm of ``args.arms`` for one seed: ``{arm: curve, arm + "_wall_s": seconds, ...}`` (the pre-training's
    seconds count towards both arms that use it)."""
    import tempfile

    import gymnasium as gym

    import ca11_gym  # noqa: F401  (registers the CA11 envs)
    from ca11_agents import DreamerAgent

    def evaluate(agent: Any) -> tuple[float, float]:
        return _evaluate(agent, args.env, change, args.eval_episodes, seed)

    out: dict[str, Any] = {"seed": seed}
    if "scratch" in args.arms:
        start = time.perf_counter()
        scratch = DreamerAgent("MlpPolicy", gym.make(args.env, **change), seed=seed, device=args.device)
        out["scratch"] = learn_curve(scratch, args.steps, args.eval_every, evaluate)
        out["scratch_wall_s"] = time.perf_counter() - start
    if not {"fine_tuned", "fresh_replay"} & set(args.arms):
        return out

    start = time.perf_counter()
    agent = DreamerAgent("MlpPolicy", gym.make(args.env), seed=seed, device=args.device)
    with warnings.catch_warnings():  # a tiny pre-training ends before any update: the study still runs
        warnings.filterwarnings("ignore", message=r".*before any update", category=UserWarning)
        agent.learn(args.pretrain_steps)
    pretrain_s = time.perf_counter() - start
    out["pretrained_on_default"] = _evaluate(agent, args.env, {}, args.eval_episodes, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pretrained.zip"
        agent.save(path)
        if "fine_tuned" in args.arms:
            start = time.perf_counter()
            agent.set_env(gym.make(args.env, **change))
            out["fine_tuned"] = learn_curve(agent, args.steps, args.eval_every, evaluate)
            out["fine_tuned_wall_s"] = pretrain_s + time.perf_counter() - start
        if "fresh_replay" in args.arms:
            start = time.perf_counter()
            fresh = DreamerAgent.load(path, env=gym.make(args.env, **change), device=args.device)
            out["fresh_replay"] = learn_curve(fresh, args.steps, args.eval_every, evaluate, restart=True)
            out["fresh_replay_wall_s"] = pretrain_s + time.perf_counter() - start
    return out


def steps_to(curve: Sequence[Sequence[float]], threshold: float) -> int | None:
    """The first evaluated step whose mean return reaches ``threshold``."""
    return next((int(step) for step, mean, _ in curve if mean >= threshold), None)


def report(runs: Sequence[dict[str, Any]], threshold: float, header: str) -> str:
    """Markdown: steps to threshold after the change per seed and arm, medians, zero-shot and final returns."""

    def fmt(steps: int | None) -> str:
        return "–" if steps is None else f"{steps:,}"

    lines = [header, "", f"Threshold {threshold:g}; steps counted from the change.", "",
             "| arm | steps to threshold, per seed | median (reached) | return at the change | final return |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for arm in (arm for arm in ARMS if arm in runs[0]):
        hits = [steps_to(r[arm], threshold) for r in runs]
        reached = [h for h in hits if h is not None]
        median = f"{statistics.median(reached):,.0f} ({len(reached)}/{len(hits)})" if reached else f"– (0/{len(hits)})"
        at_change = statistics.median(r[arm][0][1] for r in runs)
        final = [r[arm][-1][1] for r in runs]
        lines.append(f"| {arm.replace('_', '-')} | {' / '.join(fmt(h) for h in hits)} | {median} | {at_change:.1f} | "
                     f"{statistics.median(final):.1f} [{min(final):.1f}, {max(final):.1f}] |")
    pre = [r["pretrained_on_default"][0] for r in runs if "pretrained_on_default" in r]
    if pre:
        lines += ["", f"The pre-trained agents' return on the default env before the change: median "
                      f"{statistics.median(pre):.1f}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adaptation", description=__doc__,
                                     formatter_class=HelpFormatter)  # fmt: skip
    parser.add_argument("--env", default="CA11/ContinuousPendulum-v0", help="a parameterised CA11 env id")
    parser.add_argument("--change", default="mass=1.3", help="the changed parameters, KEY=VALUE[,KEY=VALUE]")
    parser.add_argument("--seeds", default="3", help="a count N (seeds 0..N-1) or a list '0,1,2' ('7,' = seed 7)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {', '.join(ARMS)}")
    parser.add_argument("--pretrain-steps", type=int, default=2000, help="steps on the default env first")
    parser.add_argument("--steps", type=int, default=2500, help="steps on the changed env, per arm")
    parser.add_argument("--eval-every", type=int, default=250, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10, help="deterministic episodes per evaluation")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    args = parser.parse_args(argv)
    from benchmarks.run import parse_names, parse_seeds
    from benchmarks.tasks import env_threshold

    try:
        change, seeds = parse_change(args.change), parse_seeds(args.seeds)
    except ValueError as exc:
        parser.error(str(exc))
    args.arms = parse_names(args.arms)
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown or not args.arms:
        parser.error(f"--arms: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(ARMS)}")
    if args.eval_every < 1 or args.steps < args.eval_every:
        parser.error("--eval-every must be >= 1 and <= --steps")
    import ca11_gym  # noqa: F401  (registers the CA11 envs)

    threshold = env_threshold(args.env)
    if threshold is None:
        parser.error(f"{args.env} has no threshold")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in seeds:
        runs.append(run_seed(args, change, seed))
        # Written after every seed: an interrupted study keeps what it measured.
        atomic_write_text(args.out / "adaptation.json", json.dumps(
            {"env": args.env, "change": change, "threshold": threshold, "args": vars(args) | {"out": str(args.out)},
             "runs": runs}, indent=1))  # fmt: skip
    command = command_line("benchmarks.adaptation", argv)
    text = report(runs, threshold, f"`{command}`")
    atomic_write_text(args.out / "adaptation.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
