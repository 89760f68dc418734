"""Figures for world-model training and evaluation.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global figure state, nothing
shown, safe in scripts and tests); Jupyter displays a returned figure, and ``save_path`` writes it (PNG, SVG, ...
from the suffix).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

#: Training curves drawn by :func:`plot_world_model_training`: panel title -> metric keys.
WORLD_MODEL_PANELS: dict[str, tuple[str, ...]] = {
    "Total loss": ("loss",),
    "VAE": ("reconstruction_loss", "kl_loss"),
    "Dynamics": ("prediction_loss", "latent_loss"),
    "Reward": ("reward_loss",),
}
#: Training curves drawn by :func:`plot_rssm_training`.
RSSM_PANELS: dict[str, tuple[str, ...]] = {
    "Total loss": ("loss",),
    "Reconstruction": ("reconstruction_loss",),
    "Reward and continue": ("reward_loss", "continue_loss"),
    "KL (dynamics, representation)": ("kl_loss", "dyn_kl", "rep_kl"),
}


def _history(source: Any) -> Mapping[str, Sequence[float]]:
    """A trainer's ``history`` or a history mapping itself."""
    history = getattr(source, "history", source)
    if not isinstance(history, Mapping):
        raise ValueError(f"expected a trainer with .history or a dict of metric lists, got {type(source).__name__}")
    return history


def _finish(fig: Figure, title: str | None, save_path: str | Path | None) -> Figure:
    if title:
        fig.suptitle(title)
    if save_path is not None:
        Path(save_path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save_path, dpi=100)
    return fig


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start), so curves stay aligned with their steps."""
    if window <= 1 or len(values) < 2:
        return values
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def plot_training_history(
    source: Any,
    panels: Mapping[str, Sequence[str]],
    title: str | None = None,
    *,
    smoothing: int = 20,
    save_path: str | Path | None = None,
) -> Figure:
    """Loss curves, one panel per group of metrics; metrics missing from the history are skipped.

    Args:
        source: a trainer (its ``history``) or a ``dict[str, list[float]]``.
        panels: panel title -> metric names.
        title: figure title.
        smoothing: moving-average window drawn over the raw (faint) curve.
        save_path: where to save the figure, if given.
    """
    history = _history(source)
    shown = {name: [k for k in keys if len(history.get(k, ()))] for name, keys in panels.items()}
    shown = {name: keys for name, keys in shown.items() if keys}
    if not shown:
        raise ValueError(f"the history has none of the metrics {sorted({k for v in panels.values() for k in v})}")
    fig = Figure(figsize=(4.0 * len(shown), 3.4), layout="constrained")
    for ax, (name, keys) in zip(np.atleast_1d(fig.subplots(1, len(shown))), shown.items()):
        for i, key in enumerate(keys):
            values = np.asarray(history[key], dtype=float)
            colour = f"C{i}"
            ax.plot(values, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(_smooth(values, smoothing), color=colour, linewidth=1.8, label=key)
        ax.set(title=name, xlabel="gradient step")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    return _finish(fig, title, save_path)


def plot_world_model_training(
    source: Any, title: str | None = "World model training", *, smoothing: int = 20, save_path: str | Path | None = None
) -> Figure:
    """The :class:`~ca11_agents.world_models.trainers.WorldModelTrainer`'s loss curves (or a VAE trainer's: panels
    without data are dropped). See :func:`plot_training_history`."""
    return plot_training_history(source, WORLD_MODEL_PANELS, title, smoothing=smoothing, save_path=save_path)


def plot_rssm_training(
    source: Any, title: str | None = "RSSM training", *, smoothing: int = 20, save_path: str | Path | None = None
) -> Figure:
    """The :class:`~ca11_agents.world_models.trainers.RSSMTrainer`'s loss curves. See :func:`plot_training_history`."""
    return plot_training_history(source, RSSM_PANELS, title, smoothing=smoothing, save_path=save_path)


def _dim_names(dim: int, names: Sequence[str] | None) -> list[str]:
    if names is not None and len(names) != dim:
        raise ValueError(f"expected {dim} dimension names, got {len(names)}")
    return list(names) if names is not None else [f"dim {i}" for i in range(dim)]


def plot_predictions(
    true: np.ndarray,
    predicted: np.ndarray,
    *,
    reference: np.ndarray | None = None,
    dim_names: Sequence[str] | None = None,
    title: str | None = None,
    save_path: str | Path | None = None,
) -> Figure:
    """Predicted against true values, one scatter panel per dimension, with the identity line.

    Use it for reconstructions (``true`` observations against the VAE's) and one-step predictions. With
    ``reference`` (e.g. the current observations), the *changes* ``true - reference`` and ``predicted - reference``
    are plotted instead: next observations are so close to current ones that any model looks perfect in absolute
    values, and the changes are what a dynamics model must get right.

    Args:
        true, predicted: ``(N, D)`` arrays (``(N,)`` for one dimension).
        reference: optional ``(N, D)`` subtracted from both.
        dim_names: ``D`` panel titles.
    """
    true, predicted = np.atleast_2d(np.asarray(true).T).T, np.atleast_2d(np.asarray(predicted).T).T  # (N,) -> (N, 1)
    if true.shape != predicted.shape:
        raise ValueError(f"true {true.shape} and predicted {predicted.shape} must have the same shape")
    if reference is not None:
        reference = np.atleast_2d(np.asarray(reference).T).T
        true, predicted = true - reference, predicted - reference
    names = _dim_names(true.shape[1], dim_names)
    fig = Figure(figsize=(3.2 * len(names), 3.3), layout="constrained")
    for d, ax in enumerate(np.atleast_1d(fig.subplots(1, len(names)))):
        ax.scatter(true[:, d], predicted[:, d], s=6, alpha=0.5)
        both = np.concatenate([true[:, d], predicted[:, d]])
        lo, hi = float(both.min()), float(both.max())
        ax.plot([lo, hi], [lo, hi], "k--", linewidth=1)
        kind = "change" if reference is not None else "value"
        ax.set(title=names[d], xlabel=f"true {kind}", ylabel=f"predicted {kind}")
        ax.grid(alpha=0.3)
    return _finish(fig, title, save_path)


def plot_rollout(
    true_obs: np.ndarray,
    pred_obs: np.ndarray,
    true_rewards: np.ndarray | None = None,
    pred_rewards: np.ndarray | None = None,
    *,
    dim_names: Sequence[str] | None = None,
    title: str | None = "Open-loop rollout against reality",
    xlabel: str = "horizon (steps)",
    save_path: str | Path | None = None,
) -> Figure:
    """Predicted trajectories ``(H, O)`` drawn over the real ones, one panel per observation dimension, plus one
    for rewards ``(H,)`` if given. The x-axis counts from 1: for an open-loop rollout, the horizon."""
    true_obs, pred_obs = np.asarray(true_obs), np.asarray(pred_obs)
    if true_obs.shape != pred_obs.shape or true_obs.ndim != 2:
        raise ValueError(f"true_obs {true_obs.shape} and pred_obs {pred_obs.shape} must both be (H, O)")
    names = _dim_names(true_obs.shape[1], dim_names)
    with_rewards = true_rewards is not None and pred_rewards is not None
    panels = len(names) + int(with_rewards)
    fig = Figure(figsize=(3.2 * panels, 3.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    steps = np.arange(1, len(true_obs) + 1)
    series = [(names[d], true_obs[:, d], pred_obs[:, d]) for d in range(len(names))]
    if with_rewards:
        series.append(("reward", np.asarray(true_rewards), np.asarray(pred_rewards)))
    for ax, (name, real, pred) in zip(axes, series):
        ax.plot(steps, real, "o-", color="C0", markersize=3, label="real")
        ax.plot(steps, pred, "s--", color="C3", markersize=3, label="predicted")
        ax.set(title=name, xlabel=xlabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _finish(fig, title, save_path)


def plot_horizon_errors(
    errors: Mapping[str, Mapping[str, np.ndarray]],
    title: str | None = "Prediction error against horizon",
    *,
    log_scale: bool = True,
    save_path: str | Path | None = None,
) -> Figure:
    """Observation and reward MSE against horizon, each model (solid) next to its naive baseline (dashed).

    Args:
        errors: model name -> the dict returned by
            :func:`~ca11_agents.evaluation.world_model_horizon_errors` or
            :func:`~ca11_agents.evaluation.rssm_horizon_errors`.
        log_scale: logarithmic error axis (errors of a good model and of the baseline differ by orders of magnitude).
    """
    if not errors:
        raise ValueError("plot_horizon_errors: no models given")
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, (name, result) in enumerate(errors.items()):
        for ax, kind in zip(axes, ("observation", "reward")):
            ax.plot(result["horizon"], result[f"{kind}_mse"], "o-", color=f"C{i}", markersize=3, label=name)
            ax.plot(result["horizon"], result[f"baseline_{kind}_mse"], "--", color=f"C{i}", alpha=0.7,
                    label=f"{name}: baseline")
    for ax, kind in zip(axes, ("observation", "reward")):
        ax.set(title=f"{kind} MSE", xlabel="horizon (steps)")
        if log_scale:
            ax.set_yscale("symlog", linthresh=1e-6)  # symlog: a perfectly predicted constant reward gives 0
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(fig, title, save_path)


def plot_learning_curve(
    timesteps: Sequence[int] | np.ndarray,
    returns: Sequence[Sequence[float]] | np.ndarray,
    title: str,
    threshold: float | None = None,
    label: str = "deterministic evaluation",
    save_path: str | Path | None = None,
) -> Figure:
    """Mean and spread (one std) of evaluation returns ``(n_evals, episodes)`` against env steps, with the env's
    solved threshold as a dashed line (e.g. from SB3's ``EvalCallback`` log, ``evaluations.npz``)."""
    steps, values = np.asarray(timesteps), np.asarray(returns, dtype=np.float64).reshape(len(timesteps), -1)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    mean, std = values.mean(1), values.std(1)
    ax.plot(steps, mean, marker="o", label=label)
    ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="env steps", ylabel="episode return")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _finish(fig, title, save_path)
