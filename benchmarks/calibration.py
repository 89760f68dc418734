"""Calibration of the world-model toolkit's uncertainty: how often held-out latents fall inside the predicted
68 % and 95 % intervals, for a single heteroscedastic Gaussian member, a PETS-style ensemble of them, and an
ensemble of deterministic members (whose only uncertainty is their disagreement)::

    python -m benchmarks.calibration --seeds 3 --out benchmarks/results/YYYY-MM-DD-calibration

Each cell trains the notebook's world-model experiment (:func:`~ca11_agents.experiments.models.
run_world_model_experiment`, the ``notebook`` preset: 5,000 random transitions, 80 % for training) and reads
``metrics["calibration"]`` (:func:`~ca11_agents.evaluation.world_model_calibration`) and the one-step error on the
held-out 20 %. Writes ``calibration.json`` (every run) and ``calibration.md`` (medians and ranges over seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import HelpFormatter, command_line
from benchmarks.report import atomic_write_text

#: The compared dynamics: name -> WorldModelConfig overrides.
VARIANTS = {
    "gaussian x1": {"stochastic_dynamics": True, "ensemble_size": 1},
    "gaussian x5": {"stochastic_dynamics": True, "ensemble_size": 5},
    "deterministic x5": {"stochastic_dynamics": False, "ensemble_size": 5},
}
ENVS = ("CA11/ContinuousCartPole-v0", "CA11/ContinuousPendulum-v0")


def run_cell(env_id: str, variant: str, seed: int, preset: str) -> dict:
    """One world-model experiment; its calibration, one-step error and wall-clock."""
    from ca11_agents.experiments.models import WORLD_MODEL_PRESETS, run_world_model_experiment

    config = WORLD_MODEL_PRESETS[preset].replace(env_name=env_id, seed=seed, device="cpu", **VARIANTS[variant])
    start = time.perf_counter()
    _, trainer = run_world_model_experiment(config, out=None)
    return {
        "env": env_id, "variant": variant, "seed": seed, "wall_s": time.perf_counter() - start,
        "calibration": trainer.metrics["calibration"],
        "observation_mse": trainer.metrics["one_step"]["observation_mse"],
    }  # fmt: skip


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def table(rows: Sequence[dict]) -> str:
    """Markdown: per env and variant, the median [min, max] over seeds of each coverage and the one-step MSE."""
    lines = [
        "| env | dynamics | members in 68 % | members in 95 % | ensemble in 68 % | ensemble in 95 % | one-step MSE |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for env_id in dict.fromkeys(r["env"] for r in rows):
        for variant in dict.fromkeys(r["variant"] for r in rows if r["env"] == env_id):
            cell = [r for r in rows if r["env"] == env_id and r["variant"] == variant]

            def cov(kind: str, level: str, cell: list[dict] = cell) -> str:
                return _cell([r["calibration"][kind][level] for r in cell if kind in r["calibration"]])

            mse = statistics.median(r["observation_mse"] for r in cell)
            lines.append(f"| {env_id} | {variant} (seeds {len(cell)}) | {cov('members', '68')} | "
                         f"{cov('members', '95')} | {cov('ensemble', '68')} | {cov('ensemble', '95')} | {mse:.2e} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibration", description=__doc__,
                                     formatter_class=HelpFormatter)  # fmt: skip
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated env ids")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--preset", default="notebook", help="the world-model experiment's preset (tiny for a test)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; valid: {list(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [
        run_cell(env_id, variant, seed, args.preset)
        for env_id in args.envs.split(",")
        for variant in variants
        for seed in range(args.seeds)
    ]
    atomic_write_text(args.out / "calibration.json", json.dumps(rows, indent=1))
    command = command_line("benchmarks.calibration", argv)
    atomic_write_text(args.out / "calibration.md", f"`{command}`\n\n{table(rows)}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
