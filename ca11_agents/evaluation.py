"""Prediction errors of world models on held-out data, each next to a naive baseline.

Baselines: for observations, "nothing changes" (``o_{t+h}`` predicted as the last observed ``o_t``); for rewards,
the mean of the training rewards (a constant). A model that does not beat them has learned nothing usable.

Horizons follow the models' alignment (``a_t`` after ``o_t``; ``r_t`` follows ``a_t``): from the last observed
``o_t`` and actions ``a_t .. a_{t+h-1}``, horizon ``h`` predicts ``o_{t+h}`` and ``r_{t+h-1}``. Horizon 1 is the
one-step prediction.

- :func:`evaluate_world_model`, :func:`world_model_horizon_errors`: the feed-forward
  :class:`~ca11_agents.world_models.world_model.WorldModel` on transitions.
- :func:`evaluate_rssm`, :func:`rssm_horizon_errors` (and the predictions they score,
  :func:`rssm_one_step_predictions`, :func:`rssm_open_loop_predictions`): the RSSM on episodes; it filters the
  observed steps, then predicts one step or open loop.
- :func:`memoryless_reward_mse`, :func:`sequence_reward_variance`: the smallest reward error any predictor without
  memory can reach, to show that the RSSM's recurrent state carries information.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ca11_agents.world_models.rssm import RecurrentStateSpaceModel, RSSMState
from ca11_agents.world_models.world_model import WorldModel

Transitions = Mapping[str, np.ndarray]
Episodes = Sequence[Mapping[str, np.ndarray]]


def _tensor(x: np.ndarray, model: nn.Module) -> Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=next(model.parameters()).device)


def _mse(pred: np.ndarray | float, target: np.ndarray, keep: int) -> np.ndarray:
    """Squared error averaged over every axis but the first ``keep`` (``keep=0``: a scalar), in float64."""
    err = (np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)) ** 2
    return err.reshape(*err.shape[:keep], -1).mean(-1)


def _reward_baseline(test_rewards: np.ndarray, train_rewards: np.ndarray | None) -> float:
    # Without training data, the test mean: the best constant in hindsight (a baseline that is hard to beat).
    return float(np.mean(train_rewards if train_rewards is not None else test_rewards))


def _summary(obs_mse: float, reward_mse: float, base_obs: float, base_reward: float) -> dict[str, float]:
    return {
        "observation_mse": obs_mse,
        "observation_rmse": float(np.sqrt(obs_mse)),
        "reward_mse": reward_mse,
        "reward_rmse": float(np.sqrt(reward_mse)),
        "baseline_observation_mse": base_obs,
        "baseline_reward_mse": base_reward,
    }


@torch.no_grad()
def evaluate_world_model(
    world_model: WorldModel, data: Transitions, *, train_data: Transitions | None = None
) -> dict[str, float]:
    """One-step prediction errors of a world model on transitions (``observations``, ``actions``, ``rewards``,
    ``next_observations``).

    Args:
        world_model: the model (put in eval mode).
        data: held-out transitions.
        train_data: the training transitions, for the reward baseline (their mean reward); without them the
            held-out mean is used.

    Returns:
        ``observation_mse``, ``observation_rmse``, ``reward_mse``, ``reward_rmse`` (MSE averaged over transitions
        and observation dimensions, in the environment's units), ``baseline_observation_mse`` (next = current) and
        ``baseline_reward_mse`` (the training mean).
    """
    world_model.eval()
    next_obs, rewards = world_model.predict_next_state_and_reward(
        _tensor(data["observations"], world_model), _tensor(data["actions"], world_model)
    )
    baseline = _reward_baseline(data["rewards"], None if train_data is None else train_data["rewards"])
    return _summary(
        float(_mse(next_obs.cpu().numpy(), data["next_observations"], 0)),
        float(_mse(rewards.cpu().numpy(), data["rewards"], 0)),
        float(_mse(data["observations"], data["next_observations"], 0)),
        float(_mse(baseline, data["rewards"], 0)),
    )


@torch.no_grad()
def world_model_calibration(
    world_model: WorldModel, data: Transitions, levels: Sequence[float] = (0.68, 0.95)
) -> dict[str, dict[str, float]]:
    """Calibration of the latent dynamics' predicted uncertainty on held-out transitions.

    The targets are the encoder's latents of the next observations (what the dynamics are trained to predict);
    see :meth:`~ca11_agents.world_models.dynamics.LatentDynamicsModel.calibration`. Both the inputs and the targets
    are the encoder's means, as a planner reads the model; training feeds the dynamics sampled latents, so the
    members' predicted spread also covers the encoder's sampling noise, which these inputs do not have (coverage
    here errs towards too wide, not too narrow).

    Returns:
        ``{"members" | "ensemble": {"68": fraction, "95": fraction}}``: the fraction of target latent entries inside
        each predicted central interval (percent levels as keys, for JSON); a calibrated model gives 0.68 and 0.95.
    """
    world_model.eval()
    z = world_model.encode_observations(_tensor(data["observations"], world_model))
    target = world_model.encode_observations(_tensor(data["next_observations"], world_model))
    coverage = world_model.dynamics.calibration(z, _tensor(data["actions"], world_model), target, levels)
    return {kind: {f"{100 * level:g}": frac for level, frac in fracs.items()} for kind, fracs in coverage.items()}


def transition_windows(data: Transitions, horizon: int) -> np.ndarray:
    """Start indices ``t`` such that transitions ``t .. t+horizon-1`` are consecutive steps of one episode.

    Transition ``i + 1`` continues transition ``i`` when ``i`` neither terminated nor was truncated and
    ``next_observations[i] == observations[i + 1]`` (which also catches data that was shuffled or split).
    """
    if horizon < 1:
        raise ValueError(f"transition_windows: horizon must be >= 1, got {horizon}")
    obs, next_obs = np.asarray(data["observations"]), np.asarray(data["next_observations"])
    done = np.asarray(data.get("terminated", False)) | np.asarray(data.get("truncated", False))
    n = len(obs)
    links = np.all(next_obs[:-1] == obs[1:], axis=-1) & ~np.broadcast_to(done, (n,))[:-1]  # (n-1,) i -> i+1
    # A window of H transitions needs H-1 consecutive links: count links in every stretch of H-1 with a cumsum.
    run = np.concatenate([[0], np.cumsum(links)])
    starts = np.arange(max(n - horizon + 1, 0))
    return starts[run[starts + horizon - 1] - run[starts] == horizon - 1]


@torch.no_grad()
def world_model_horizon_errors(
    world_model: WorldModel,
    data: Transitions,
    horizon: int,
    *,
    train_data: Transitions | None = None,
    max_windows: int | None = None,
) -> dict[str, np.ndarray]:
    """Open-loop prediction error against horizon, from every start of :func:`transition_windows`.

    Args:
        world_model: the model.
        data: held-out transitions in collection order.
        horizon: the longest horizon ``H``.
        train_data: for the reward baseline (see :func:`evaluate_world_model`).
        max_windows: evaluate at most this many evenly spaced windows (all by default).

    Returns:
        Arrays of shape ``(H,)``: ``horizon`` (1..H), ``observation_mse``, ``reward_mse``,
        ``baseline_observation_mse`` and ``baseline_reward_mse``; and ``windows``, the number of windows (0-d).
    """
    starts = transition_windows(data, horizon)
    if len(starts) == 0:
        raise ValueError(f"world_model_horizon_errors: no run of {horizon} consecutive transitions in the data")
    if max_windows is not None and len(starts) > max_windows:
        starts = starts[np.linspace(0, len(starts) - 1, max_windows).astype(int)]
    index = starts[:, None] + np.arange(horizon)  # (W, H)
    world_model.eval()
    obs_pred, reward_pred = world_model.rollout(
        _tensor(data["observations"][starts], world_model), _tensor(data["actions"][index], world_model)
    )
    targets, rewards = data["next_observations"][index], data["rewards"][index]  # (W, H, O), (W, H)
    baseline = _reward_baseline(data["rewards"], None if train_data is None else train_data["rewards"])
    return {
        "horizon": np.arange(1, horizon + 1),
        "observation_mse": _mse(obs_pred.cpu().numpy().swapaxes(0, 1), targets.swapaxes(0, 1), 1),
        "reward_mse": _mse(reward_pred.cpu().numpy().T, rewards.T, 1),
        "baseline_observation_mse": _mse(data["observations"][starts][None], targets.swapaxes(0, 1), 1),
        "baseline_reward_mse": _mse(baseline, rewards.T, 1),
        "windows": np.asarray(len(starts)),
    }


def _stack_episodes(episodes: Episodes, length: int, model: nn.Module, repeat: int) -> dict[str, Tensor]:
    """The first ``length`` steps of every episode as ``(repeat * B, length, ...)`` tensors (particle-major)."""
    batch = {}
    for key in ("observations", "actions", "rewards", "next_observations", "is_first"):
        x = _tensor(np.stack([ep[key][:length] for ep in episodes]), model)  # (B, T, ...)
        batch[key] = x.repeat(repeat, *([1] * (x.dim() - 1)))  # (B, T, ...) -> (N*B, T, ...)
    return batch


def _particle_mean(x: Tensor, particles: int) -> np.ndarray:
    return x.reshape(particles, -1, *x.shape[1:]).mean(0).cpu().numpy()  # (N*B, ...) -> (N, B, ...) -> (B, ...)


def _check_episodes(episodes: Episodes, length: int, caller: str) -> list[Mapping[str, np.ndarray]]:
    keep = [ep for ep in episodes if len(ep["rewards"]) >= length]
    if not keep:
        raise ValueError(f"{caller}: no episode with at least {length} steps among the {len(episodes)} given")
    return keep


@torch.no_grad()
def rssm_one_step_predictions(
    rssm: RecurrentStateSpaceModel, episodes: Episodes, *, num_samples: int = 16
) -> dict[str, np.ndarray]:
    """Filtered one-step predictions of an RSSM along whole episodes (the *sequences* layout of
    :mod:`ca11_agents.data`; episodes are cut to the shortest one's length ``T``).

    At every step ``t`` the RSSM has filtered ``o_0 .. o_t`` (posterior ``s_t``); it predicts ``r_t`` from
    ``(s_t, a_t)`` and ``o_{t+1}`` from one prior step. Predictions are averaged over ``num_samples`` samples of the
    stochastic latents: Monte-Carlo estimates of the expected values, which is what a squared error rewards.

    Returns:
        ``next_observations`` ``(B, T, O)`` and ``rewards`` ``(B, T)``.
    """
    episodes = _check_episodes(episodes, 1, "rssm_one_step_predictions")
    length = min(len(ep["rewards"]) for ep in episodes)
    rssm.eval()
    batch = _stack_episodes(episodes, length, rssm, num_samples)
    post, _ = rssm.observe(batch["observations"], batch["actions"], batch["is_first"])
    rewards = rssm.reward(rssm.features(post), batch["actions"])  # (N*B, T)
    flat_actions = batch["actions"].reshape(-1, 1, batch["actions"].shape[-1])  # (N*B, T, A) -> (N*B*T, 1, A)
    flat_post = RSSMState(*(x.reshape(-1, *x.shape[2:]) for x in post))  # (N*B, T, ...) -> (N*B*T, ...)
    prior = rssm.rollout(flat_post, flat_actions)  # (N*B*T, 1, ...)
    next_obs = rssm.decode(rssm.features(prior)).reshape(batch["observations"].shape)  # -> (N*B, T, O)
    return {"next_observations": _particle_mean(next_obs, num_samples), "rewards": _particle_mean(rewards, num_samples)}


def _episode_rewards(episodes: Episodes | None) -> np.ndarray | None:
    return None if episodes is None else np.concatenate([ep["rewards"] for ep in episodes])


def evaluate_rssm(
    rssm: RecurrentStateSpaceModel,
    episodes: Episodes,
    *,
    train_episodes: Episodes | None = None,
    num_samples: int = 16,
) -> dict[str, float]:
    """One-step errors of an RSSM along whole episodes (:func:`rssm_one_step_predictions`), averaged over every
    step of every episode.

    Args:
        rssm: the model.
        episodes: held-out episodes.
        train_episodes: the training episodes, for the reward baseline (their mean reward).
        num_samples: latent samples averaged per prediction.

    Returns:
        The keys of :func:`evaluate_world_model`.
    """
    pred = rssm_one_step_predictions(rssm, episodes, num_samples=num_samples)
    length = pred["rewards"].shape[1]
    true = {key: np.stack([ep[key][:length] for ep in episodes if len(ep["rewards"]) >= length])
            for key in ("observations", "next_observations", "rewards")}
    baseline = _reward_baseline(true["rewards"], _episode_rewards(train_episodes))
    return _summary(
        float(_mse(pred["next_observations"], true["next_observations"], 0)),
        float(_mse(pred["rewards"], true["rewards"], 0)),
        float(_mse(true["observations"], true["next_observations"], 0)),
        float(_mse(baseline, true["rewards"], 0)),
    )


@torch.no_grad()
def rssm_open_loop_predictions(
    rssm: RecurrentStateSpaceModel, episodes: Episodes, context: int, horizon: int, *, num_samples: int = 16
) -> dict[str, np.ndarray]:
    """Open-loop predictions of an RSSM: filter each episode's first ``context`` observations, then imagine
    ``horizon`` steps under the recorded actions without further observations.

    With ``t = context - 1`` the last observed step, horizon ``h`` predicts ``o_{t+h}`` (the decoded prior state)
    and ``r_{t+h-1}``. Only episodes with at least ``context + horizon - 1`` steps are used. Predictions are
    averaged over ``num_samples`` latent samples, as in :func:`rssm_one_step_predictions`.

    Returns:
        ``observations`` ``(B, H, O)`` (predicted ``o_{t+1} .. o_{t+H}``), ``rewards`` ``(B, H)`` (predicted
        ``r_t .. r_{t+H-1}``) and ``episodes``, the indices of the episodes used ``(B,)``.
    """
    if context < 1 or horizon < 1:
        raise ValueError(f"rssm_open_loop_predictions: context and horizon must be >= 1, got {context}, {horizon}")
    length = context + horizon - 1
    used = np.array([i for i, ep in enumerate(episodes) if len(ep["rewards"]) >= length])
    if len(used) == 0:
        raise ValueError(f"rssm_open_loop_predictions: no episode has the {length} steps needed")
    rssm.eval()
    batch = _stack_episodes([episodes[i] for i in used], length, rssm, num_samples)
    t = context - 1
    post, _ = rssm.observe(
        batch["observations"][:, :context], batch["actions"][:, :context], batch["is_first"][:, :context]
    )
    start = RSSMState(*(x[:, t] for x in post))  # (N*B, T, ...) -> (N*B, ...): the state after o_t
    actions = batch["actions"][:, t:]  # (N*B, H, A): a_t .. a_{t+H-1}
    prior = rssm.rollout(start, actions)  # s_{t+1} .. s_{t+H}
    obs_pred = rssm.decode(rssm.features(prior))  # (N*B, H, O)
    # r_{t+h-1} is read from s_{t+h-1}: the filtered state, then the first H-1 imagined ones.
    reward_states = RSSMState(*(torch.cat([s.unsqueeze(1), p[:, :-1]], 1) for s, p in zip(start, prior)))
    reward_pred = rssm.reward(rssm.features(reward_states), actions)  # (N*B, H)
    return {
        "observations": _particle_mean(obs_pred, num_samples),
        "rewards": _particle_mean(reward_pred, num_samples),
        "episodes": used,
    }


def rssm_horizon_errors(
    rssm: RecurrentStateSpaceModel,
    episodes: Episodes,
    context: int,
    horizon: int,
    *,
    train_episodes: Episodes | None = None,
    num_samples: int = 16,
) -> dict[str, np.ndarray]:
    """Open-loop errors of an RSSM against horizon (see :func:`rssm_open_loop_predictions`), next to the
    baselines: the last observed ``o_t`` for every future observation, the training mean reward for rewards.

    Returns:
        As :func:`world_model_horizon_errors`; ``windows`` is the number of episodes used.
    """
    pred = rssm_open_loop_predictions(rssm, episodes, context, horizon, num_samples=num_samples)
    used = [episodes[i] for i in pred["episodes"]]
    t, length = context - 1, context + horizon - 1
    targets = np.stack([ep["next_observations"][t:length] for ep in used]).swapaxes(0, 1)  # (H, B, O)
    rewards = np.stack([ep["rewards"][t:length] for ep in used]).T  # (H, B)
    last_obs = np.stack([ep["observations"][t] for ep in used])[None]  # (1, B, O)
    baseline = _reward_baseline(np.concatenate([ep["rewards"] for ep in used]), _episode_rewards(train_episodes))
    return {
        "horizon": np.arange(1, horizon + 1),
        "observation_mse": _mse(pred["observations"].swapaxes(0, 1), targets, 1),
        "reward_mse": _mse(pred["rewards"].T, rewards, 1),
        "baseline_observation_mse": _mse(last_obs, targets, 1),
        "baseline_reward_mse": _mse(baseline, rewards, 1),
        "windows": np.asarray(len(used)),
    }


def memoryless_reward_mse(
    data: Transitions | Episodes, conditional_variance: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> float:
    """The smallest reward MSE that any predictor seeing only ``(o_t, a_t)`` can reach on ``data``.

    The best such predictor is ``E[r_t | o_t, a_t]``, and its mean squared error is ``E[Var(r_t | o_t, a_t)]``
    (the law of total variance: no function of ``(o_t, a_t)`` removes the variance left given them). When the
    reward depends on something hidden that is independent of ``(o_t, a_t)`` (a cue seen earlier, under a policy
    that ignores it), the environment's reward definition gives ``Var(r_t | o_t, a_t)`` in closed form, evaluated
    here at the ``(o_t, a_t)`` of the data. A model with memory can go below it; a memoryless one cannot.

    Args:
        data: transitions, or episodes (concatenated), holding ``observations`` and ``actions``.
        conditional_variance: ``(observations (N, O), actions (N, A)) -> (N,)`` variances, e.g.
            :func:`sequence_reward_variance`.
    """
    if not isinstance(data, Mapping):
        data = {key: np.concatenate([ep[key] for ep in data]) for key in ("observations", "actions")}
    return float(np.mean(conditional_variance(np.asarray(data["observations"]), np.asarray(data["actions"]))))


def sequence_reward_variance(observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``Var(r_t | o_t, a_t)`` in :class:`~ca11_gym.envs.sequence.SequenceEnvironment` for a cue-blind policy.

    A scored step (recall flag ``o_t[1] = 1``) earns ``recall_reward(a_t, c)`` with ``c`` the cue shown
    ``memory_size`` steps earlier: ``+1`` or ``-1`` with probability 1/2 each and independent of ``(o_t, a_t)``,
    so the variance is ``((recall_reward(a, 1) - recall_reward(a, -1)) / 2) ** 2`` (``= a^2``); unscored steps
    earn 0 with certainty.
    """
    from ca11_gym.envs.sequence import recall_reward

    a = np.asarray(actions, dtype=np.float64)[..., 0]
    spread = (recall_reward(a, 1.0) - recall_reward(a, -1.0)) / 2.0
    return np.asarray(observations)[..., 1] * spread**2
