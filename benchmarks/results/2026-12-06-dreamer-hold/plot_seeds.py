"""Every seed's evaluation curve, one panel per variant: the plot issue #17 asks for (a mean hides a collapse).

    cd benchmarks/results/2026-12-06-dreamer-hold
    python plot_seeds.py curves.png --threshold 475 default=default.csv "saturation_coef=1=saturation_coef_1.csv" \\
        "saturation_coef=1, gamma=0.997=saturation_coef_1_gamma_0.997.csv" \\
        "critic_lr=1e-3, mc_value_coef=1=critic_lr_1e-3_mc_1.csv" "termination_weight=10=termination_weight_10.csv"

Each CSV is a benchmark runner's ``results.csv`` (columns ``seed``, ``env_steps``, ``eval_return_mean``).
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("variants", nargs="+", help="LABEL=results.csv")
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    pairs = [v.rsplit("=", 1) for v in args.variants]  # a label may hold "="
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.5 * len(pairs), 3.4), sharey=True, squeeze=False)
    for ax, (label, path) in zip(axes[0], pairs):
        results = pd.read_csv(path)
        for seed, run in results.groupby("seed"):
            ax.plot(run["env_steps"], run["eval_return_mean"], marker=".", lw=1, color=f"C{seed}", label=f"seed {seed}")
        if args.threshold is not None:
            ax.axhline(args.threshold, color="k", ls="--", lw=0.8)
        ax.set_title(label)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("deterministic evaluation return (10 episodes)")
    axes[0][0].legend(fontsize=7, loc="lower right")  # one colour per seed in every panel
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
