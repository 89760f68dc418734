"""Result files, statistics and report of a benchmark: ``summary.md`` and ``curves.png`` from ``results.csv``.

``results.csv`` (columns :data:`RESULT_COLUMNS`) is the concatenation of the finished runs' curves in ``runs/``.

Rebuild the report of a (possibly interrupted) benchmark with::

    python -m benchmarks.report DIR [--baseline sb3_sac]

The report needs pandas, the ``analysis`` extra (``pip install ".[analysis]"``; ``bench`` includes it). pandas is
imported where a table is built, so the result-file helpers the runner and the scripts import work without it.

Statistics (rliable is not a dependency, so they are computed here with numpy):

* **Final return** of a run: the mean return of its last evaluation (``eval_episodes`` deterministic episodes).
* **IQM** (interquartile mean): the mean of the middle 50 % of the seeds' values, treating each of the ``n`` sorted
  values as holding ``1/n`` of the probability mass, so that a value that straddles a quartile contributes only the
  part of its mass inside ``[0.25, 0.75]``. For ``n`` divisible by 4 this is exactly rliable's
  ``scipy.stats.trim_mean(x, 0.25)``; for 3 seeds it weights the sorted values ``1/6, 2/3, 1/6``; for 1 or 2 seeds
  it is the mean.
* **95 % intervals**: percentile bootstrap over seeds -- ``n`` seeds resampled with replacement 5,000 times with a
  fixed generator (``numpy.random.default_rng(0)``), the statistic recomputed on each resample, and the 2.5th and
  97.5th percentiles reported. Each (env, algorithm) cell is resampled on its own, i.e. rliable's stratified
  bootstrap with one stratum per cell. With 3 seeds the interval is coarse (it spans at most the seeds' range).
* **Env steps to threshold** of a run: the first evaluation step whose mean return is >= the env's threshold
  (infinite if never). Reported per cell as the median over seeds counting unreached runs as infinite (so the median
  is finite only when more than half the seeds reached it) together with how many seeds reached it. **Wall-clock to
  threshold** is the training time (evaluation excluded) at that same evaluation.
* **Ratios against the baseline** (default ``sb3_sac``): a cell's median steps (and wall-clock) to threshold divided
  by the baseline's on the same env; below 1 means the algorithm got there sooner. No ratio is given where the
  baseline's median is not reached.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ca11_agents.common.checkpoint import read_bounded

if TYPE_CHECKING:
    import pandas as pd

#: Resamples of the bootstrap and the seed of its generator (fixed so reports are reproducible).
N_BOOTSTRAP = 5_000
BOOTSTRAP_SEED = 0


# --------------------------------------------------------------------------------------------------------------------
# Result files (written by benchmarks.run, read here)
# --------------------------------------------------------------------------------------------------------------------


#: Columns of results.csv and of every per-run curve file, in this order.
RESULT_COLUMNS: tuple[str, ...] = (
    "algo", "env", "seed", "env_steps", "eval_return_mean", "eval_return_std", "wall_s", "device",
)  # fmt: skip


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rows_to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Render result rows as CSV text with :data:`RESULT_COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


#: A run marker or ``benchmark.json`` is a few hundred bytes; anything past this is not one of ours.
MAX_JSON_BYTES = 1 << 20


def read_json(path: Path) -> dict[str, Any]:
    """A result folder's JSON object (a run marker, ``benchmark.json``), read with a bound: a ``ValueError`` naming
    the file if it is oversized, not JSON or not an object."""
    raw = read_bounded(path, MAX_JSON_BYTES, "benchmark file")
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); move it aside to rerun that run") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def finished_runs(runs_dir: Path) -> dict[str, dict[str, Any]]:
    """The markers of all finished runs in ``runs_dir``, by file stem."""
    markers = {}
    for path in sorted(runs_dir.glob("*.json")):
        marker = read_json(path)
        if marker.get("complete") and (runs_dir / f"{path.stem}.csv").exists():
            markers[path.stem] = marker
    return markers


def rebuild_results(out_dir: Path) -> Path:
    """Concatenate the curves of all finished runs into ``out_dir/results.csv`` (unfinished runs are left out)."""
    runs_dir = out_dir / "runs"
    rows: list[dict[str, Any]] = []
    for stem in finished_runs(runs_dir):
        with (runs_dir / f"{stem}.csv").open() as f:
            rows.extend(csv.DictReader(f))
    rows.sort(key=lambda r: (r["env"], r["algo"], int(r["seed"]), int(r["env_steps"])))
    path = out_dir / "results.csv"
    atomic_write_text(path, rows_to_csv(rows))
    return path


# --------------------------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------------------------


def iqm(values: np.ndarray | Sequence[float], axis: int = -1) -> np.ndarray | float:
    """Interquartile mean along ``axis``: the mean of the middle 50 % of the probability mass (see module doc)."""
    x = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty sample")
    edges = np.arange(n + 1) / n  # value i holds the mass [i/n, (i+1)/n)
    weights = np.clip(np.minimum(edges[1:], 0.75) - np.maximum(edges[:-1], 0.25), 0.0, None) / 0.5
    result = np.tensordot(np.moveaxis(x, axis, -1), weights, axes=([-1], [0]))
    return float(result) if np.ndim(result) == 0 else result


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: str = "iqm",
    confidence: float = 0.95,
    n_resamples: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (``"iqm"``, ``"median"`` or ``"mean"``) over ``values``."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D sample, got shape {x.shape}")
    functions = {"iqm": lambda s: iqm(s, axis=1), "median": lambda s: np.median(s, axis=1),
                 "mean": lambda s: np.mean(s, axis=1)}  # fmt: skip
    if statistic not in functions:
        raise ValueError(f"unknown statistic {statistic!r}; valid: {', '.join(functions)}")
    rng = np.random.default_rng(seed)
    resamples = x[rng.integers(0, x.size, size=(n_resamples, x.size))]  # (B, n): B resamples of the n seeds
    stats = functions[statistic](resamples)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


def first_crossing(curve: pd.DataFrame, threshold: float) -> tuple[float, float]:
    """``(env_steps, wall_s)`` of the first evaluation of one run with mean return >= ``threshold``; ``inf`` if none."""
    ordered = curve.sort_values("env_steps")
    hits = ordered[ordered["eval_return_mean"] >= threshold]
    if hits.empty:
        return math.inf, math.inf
    return float(hits["env_steps"].iloc[0]), float(hits["wall_s"].iloc[0])


def return_at(curve: pd.DataFrame, env_steps: int) -> float:
    """Mean return of one run's last evaluation at or before ``env_steps``."""
    ordered = curve[curve["env_steps"] <= env_steps].sort_values("env_steps")
    return float(ordered["eval_return_mean"].iloc[-1]) if not ordered.empty else math.nan


def load_results(out_dir: Path) -> pd.DataFrame:
    """Read ``out_dir/results.csv``."""
    import pandas as pd

    path = out_dir / "results.csv"
    if not path.exists():
        raise ValueError(f"{path} does not exist; run python -m benchmarks.run --out {out_dir} first")
    return pd.read_csv(path)


def load_meta(out_dir: Path, env_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per-env threshold and budget from ``benchmark.json``; thresholds missing there are computed from the env."""
    path = out_dir / "benchmark.json"
    envs: dict[str, dict[str, Any]] = read_json(path).get("envs", {}) if path.exists() else {}
    for env_id in env_ids:
        if env_id not in envs:
            from benchmarks.tasks import env_threshold, import_env_packages

            import_env_packages()
            try:
                envs[env_id] = {"threshold": env_threshold(env_id)}
            except Exception:  # an env that cannot be built here (other machine, renamed) just has no threshold
                envs[env_id] = {"threshold": None}
    return envs


def device_names(out_dir: Path, results: pd.DataFrame) -> dict[tuple[str, str], str]:
    """The device each (algo, env) ran on: the runs' markers name it (GPU model), else results.csv's column."""
    names: dict[tuple[str, str], set[str]] = {}
    for path in (out_dir / "runs").glob("*.json"):
        marker = read_json(path)
        if "device_name" in marker:
            names.setdefault((marker["algo"], marker["env_id"]), set()).add(marker["device_name"])
    for (algo, env), group in results.groupby(["algo", "env"]):
        names.setdefault((algo, env), set(group["device"].astype(str)))
    return {key: ", ".join(sorted(value)) for key, value in names.items()}


def summarize(results: pd.DataFrame, thresholds: dict[str, float | None], baseline: str) -> pd.DataFrame:
    """One row per (env, algo): final-return statistics, time to threshold and ratios against ``baseline``."""
    import pandas as pd

    rows = []
    # Algorithms may run with different budgets; all of them are also compared at the smallest budget of the env.
    common = results.groupby(["env", "algo"])["env_steps"].max().groupby("env").min()
    for (env, algo), cell in results.groupby(["env", "algo"], sort=True):
        runs = {seed: curve for seed, curve in cell.groupby("seed")}
        final = np.array([curve.sort_values("env_steps")["eval_return_mean"].iloc[-1] for curve in runs.values()])
        # Evaluations fall on the learner's own step boundaries (PPO: rollouts), so name their typical spacing.
        intervals = [np.median(np.diff(np.sort(curve["env_steps"].unique())))
                     for curve in runs.values() if len(curve) > 1]  # fmt: skip
        threshold = thresholds.get(env)
        crossings = np.array(
            [first_crossing(curve, threshold) if threshold is not None else (math.nan, math.nan)
             for curve in runs.values()]
        )  # fmt: skip
        rows.append({
            "env": env, "algo": algo, "seeds": len(runs), "final_steps": int(cell["env_steps"].max()),
            "eval_every": int(np.median(intervals)) if intervals else None, "common_steps": int(common[env]),
            "common_median": float(np.median([return_at(curve, common[env]) for curve in runs.values()])),
            "final_median": float(np.median(final)), "final_median_ci": bootstrap_ci(final, "median"),
            "final_iqm": iqm(final), "final_iqm_ci": bootstrap_ci(final, "iqm"),
            "reached": int(np.isfinite(crossings[:, 0]).sum()) if threshold is not None else None,
            "steps_to_threshold": float(np.median(crossings[:, 0])),
            "wall_to_threshold": float(np.median(crossings[:, 1])),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    base = table[table["algo"] == baseline].set_index("env")
    for kind in ("steps", "wall"):
        reference = table["env"].map(base[f"{kind}_to_threshold"]) if not base.empty else math.nan
        # No ratio where the baseline never got there: x / inf = 0 would read as "infinitely faster".
        reference = reference.where(np.isfinite(reference)) if not base.empty else reference
        with np.errstate(invalid="ignore", divide="ignore"):
            table[f"{kind}_ratio"] = table[f"{kind}_to_threshold"] / reference
    return table


def _fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "not reached"
    return f"{value:,.{digits}f}"


def render_summary(
    table: pd.DataFrame,
    envs: dict[str, dict[str, Any]],
    devices: dict[tuple[str, str], str],
    baseline: str,
) -> str:
    """The Markdown of ``summary.md``."""
    import pandas as pd

    from benchmarks.algos import ALGOS

    lines = ["# Benchmark summary", ""]
    lines += [f"Device(s): {', '.join(sorted(set(devices.values()))) or 'unknown'}.", ""]
    lines += ["Budget: env steps of a run (and between its evaluations); final return: at the run's own budget, "
              "'median at N steps': every algorithm at the env's smallest budget. "
              f"Final return over seeds: median and IQM with 95 % bootstrap intervals. Steps and wall-clock to "
              f"threshold: median over seeds (unreached = infinite), with seeds reached. Ratios: against "
              f"`{baseline}` on the same env (< 1 = sooner; – where `{baseline}` did not reach the threshold or did "
              "not run). Method: see `benchmarks/report.py`.", ""]  # fmt: skip
    for env, cell in table.groupby("env", sort=True):
        info = envs.get(env, {})
        threshold = info.get("threshold")
        lines += [f"## {env}", ""]
        lines += [f"Threshold: {_fmt(threshold) if threshold is not None else 'none known'}.", ""]
        common = int(cell["common_steps"].iloc[0])
        lines += ["| algorithm | kind | seeds | budget (eval every) | final median [95% CI] | final IQM [95% CI] "
                  f"| median at {common:,} steps | steps to threshold (reached) | wall-clock to threshold (s) "
                  f"| steps ratio vs {baseline} | wall ratio vs {baseline} | device |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for _, row in cell.sort_values("algo").iterrows():
            spec = ALGOS.get(row["algo"])
            kind = "?" if spec is None else ("model-based" if spec.model_based else "model-free")
            median_ci, iqm_ci = row["final_median_ci"], row["final_iqm_ci"]
            reached = "" if pd.isna(row["reached"]) else f" ({int(row['reached'])}/{row['seeds']})"
            every = "" if pd.isna(row["eval_every"]) else f" ({int(row['eval_every']):,})"
            lines.append(
                f"| {row['algo']} | {kind} | {row['seeds']} | {row['final_steps']:,}{every} "
                f"| {_fmt(row['final_median'])} [{_fmt(median_ci[0])}, {_fmt(median_ci[1])}] "
                f"| {_fmt(row['final_iqm'])} [{_fmt(iqm_ci[0])}, {_fmt(iqm_ci[1])}] | {_fmt(row['common_median'])} "
                f"| {_fmt(row['steps_to_threshold'], 0)}{reached} | {_fmt(row['wall_to_threshold'])} "
                f"| {_fmt(row['steps_ratio'], 2)} | {_fmt(row['wall_ratio'], 2)} "
                f"| {devices.get((row['algo'], env), '?')} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_curves(results: pd.DataFrame, envs: dict[str, dict[str, Any]], path: Path) -> None:
    """Eval return against env steps: mean over seeds with a standard-error band, one panel per env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.algos import ALGOS

    env_ids = sorted(results["env"].unique())
    fig, axes = plt.subplots(1, len(env_ids), figsize=(5.5 * len(env_ids), 4), squeeze=False)
    for ax, env in zip(axes[0], env_ids, strict=True):
        for algo, cell in results[results["env"] == env].groupby("algo", sort=True):
            stats = cell.groupby("env_steps")["eval_return_mean"].agg(["mean", "std", "count"])
            sem = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0)  # one seed: no band
            spec = ALGOS.get(algo)
            style = "-" if spec is not None and spec.model_based else "--"
            (line,) = ax.plot(stats.index, stats["mean"], style, label=algo)
            ax.fill_between(stats.index, stats["mean"] - sem, stats["mean"] + sem, color=line.get_color(), alpha=0.2)
        threshold = envs.get(env, {}).get("threshold")
        if threshold is not None:
            ax.axhline(threshold, color="black", linestyle=":", linewidth=1, label="threshold")
        ax.set(title=env, xlabel="env steps", ylabel="eval return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("mean ± standard error over seeds (solid: model-based, dashed: model-free)", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out_dir: Path, baseline: str = "sb3_sac") -> list[Path]:
    """Write ``summary.md`` and ``curves.png`` into ``out_dir`` from its ``results.csv``; returns their paths."""
    results = load_results(out_dir)
    summary_path, curves_path = out_dir / "summary.md", out_dir / "curves.png"
    if results.empty:
        atomic_write_text(summary_path, "# Benchmark summary\n\nNo finished runs yet.\n")
        return [summary_path]
    envs = load_meta(out_dir, sorted(results["env"].unique()))
    table = summarize(results, {env: info.get("threshold") for env, info in envs.items()}, baseline)
    atomic_write_text(summary_path, render_summary(table, envs, device_names(out_dir, results), baseline))
    plot_curves(results, envs, curves_path)
    return [summary_path, curves_path]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.report DIR``: rebuild summary.md and curves.png from DIR/results.csv.

    When DIR holds the runner's ``runs/`` folder, results.csv is first rebuilt from the finished runs in it. Needs
    pandas, the ``analysis`` extra: ``pip install ".[analysis]"``.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__)
    parser.add_argument("out", type=Path, help="benchmark directory holding results.csv")
    parser.add_argument("--baseline", default="sb3_sac", help="algorithm the ratios are taken against")
    args = parser.parse_args(argv)
    try:
        if (args.out / "runs").is_dir():  # a benchmark directory: pick up runs finished since results.csv was written
            print(f"wrote {rebuild_results(args.out)}")
        for path in write_report(args.out, args.baseline):
            print(f"wrote {path}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
