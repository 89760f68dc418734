"""The course notebook's sections 1 and 2, end to end through the package.

Section 1 (world models and latent representations) on ContinuousCartPole: collect random transitions, pre-train
the VAE, train the world model (VAE, latent dynamics and reward model together), then evaluate it on held-out
transitions: one-step errors, an open-loop rollout against reality and the error against horizon, each next to the
"nothing changes" baseline.

Section 2 (recurrent state-space models) on SequenceEnvironment, a memory task: train the RSSM on random episodes,
then compare its reward error with the smallest error any memoryless predictor can reach on the same data.

Both run through :func:`ca11_agents.experiments.run_world_model_experiment` and
:func:`~ca11_agents.experiments.run_rssm_experiment` with their "tiny" or "full" preset. Writes PNG figures,
``metrics.json`` (both sections' metrics), ``config.json`` (both configs) and TensorBoard scalars (``tb/``) into
``--out``::

    python scripts/walkthrough.py --out outputs/walkthrough             # the full budget, a few minutes on CPU
    python scripts/walkthrough.py --out /tmp/wt --budget tiny           # a smoke test, seconds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ca11_agents.experiments.models import (
    RSSM_PRESETS,
    WORLD_MODEL_PRESETS,
    run_rssm_experiment,
    run_world_model_experiment,
)

#: Budgets: presets that both experiments have.
BUDGETS = ("full", "tiny")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the walkthrough; returns the metrics it writes to ``metrics.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/walkthrough"), help="folder for figures and metrics")
    parser.add_argument("--budget", choices=BUDGETS, default="full", help="tiny: a smoke test in seconds")
    parser.add_argument("--device", default="auto", help='"auto", "cpu", "cuda", ...')
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    world_model_config = WORLD_MODEL_PRESETS[args.budget].replace(seed=args.seed, device=args.device)
    rssm_config = RSSM_PRESETS[args.budget].replace(seed=args.seed, device=args.device)
    start = time.perf_counter()
    # Both write into --out: each's config.json and metrics.json are replaced below by ones holding both.
    _, world_model_trainer = run_world_model_experiment(world_model_config, out=args.out)
    _, rssm_trainer = run_rssm_experiment(rssm_config, out=args.out)
    metrics: dict[str, Any] = {
        "budget": args.budget,
        "seed": args.seed,
        "world_model": world_model_trainer.metrics,
        "rssm": rssm_trainer.metrics,
        "seconds": round(time.perf_counter() - start, 1),
    }
    configs = {"world_model": world_model_config.to_dict(), "rssm": rssm_config.to_dict()}
    (args.out / "config.json").write_text(json.dumps(configs, indent=2) + "\n")
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    tqdm.write(f"figures and metrics.json written to {args.out} in {metrics['seconds']} s")
    return metrics


if __name__ == "__main__":
    main()
