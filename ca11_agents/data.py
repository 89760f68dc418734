"""Experience collection for world-model training, and the minibatch samplers of the notebook's training loops.

Two layouts, both numpy, both with Gymnasium's time alignment (``a_t`` is chosen after seeing ``o_t``; ``r_t``,
``terminated_t``, ``truncated_t`` and ``o_{t+1}`` are what ``env.step(a_t)`` returns):

- *transitions* (:func:`collect_world_model_data`): one dict of arrays with ``N`` rows, ``observations (N, O)``,
  ``actions (N, A)``, ``rewards (N,)``, ``next_observations (N, O)``, ``terminated (N,)``, ``truncated (N,)``.
  ``next_observations`` holds the observation ``step`` returned, so the last transition of an episode is valid
  even though the environment was then reset.
- *sequences* (:func:`collect_sequence_data`): a list of per-episode dicts with the same keys, each ``(T, ...)``,
  plus ``is_first (T,)`` (true at ``t = 0``), the layout of the RSSM's sequence batches.

A *policy* is ``None`` (uniform random actions), any callable ``obs -> action``, or an SB3-style model with
``predict(obs, state=None, episode_start=None, deterministic=False) -> (action, state)``; a recurrent policy's state
is carried along the episode and reset at each episode start.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, Union

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import ca11_gym  # noqa: F401  (registers the CA11/ ids, so environment ids can be passed)


class SupportsPredict(Protocol):
    """An SB3-style model: ``predict`` returns ``(action, state)``."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]:
        """The action for ``observation`` and the next recurrent state."""


#: What ``policy`` arguments accept: ``None`` (random actions), ``obs -> action``, or an SB3-style model.
PolicyLike = Union[Callable[[np.ndarray], Any], SupportsPredict, None]

_NO_CAP = sys.maxsize  # an episode cap that never binds: the episode plays to its own end

#: Keys of the per-step arrays in both layouts.
STEP_KEYS = ("observations", "actions", "rewards", "next_observations", "terminated", "truncated")


class _Actor:
    """Turns a policy argument into ``act(obs) -> action``, with ``reset()`` at each episode start."""

    def __init__(self, env: gym.Env, policy: PolicyLike, deterministic: bool) -> None:
        if policy is not None and not callable(policy) and not callable(getattr(policy, "predict", None)):
            raise ValueError(
                "policy must be None (random actions), a callable obs -> action, or a model with "
                f".predict(obs, deterministic=...); got {type(policy).__name__}"
            )
        self.env, self.policy, self.deterministic = env, policy, deterministic
        self.state: Any = None
        self.episode_start = True

    def reset(self) -> None:
        self.state, self.episode_start = None, True

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.policy is None:
            action = self.env.action_space.sample()
        elif callable(getattr(self.policy, "predict", None)):
            action, self.state = self.policy.predict(
                obs, state=self.state, episode_start=np.array([self.episode_start]), deterministic=self.deterministic
            )
        else:
            action = self.policy(obs)
        self.episode_start = False
        space = self.env.action_space
        if isinstance(space, spaces.Box):
            # Store what the environment executes: Gymnasium's continuous envs clip to the bounds.
            return np.clip(np.asarray(action, dtype=space.dtype).reshape(space.shape), space.low, space.high)
        return np.asarray(action)


def _make_env(env: gym.Env | str) -> tuple[gym.Env, bool]:
    """The environment, and whether this module created it (and so must close it)."""
    if isinstance(env, str):
        return gym.make(env), True
    if not isinstance(env, gym.Env):
        raise ValueError(f"env must be a gymnasium.Env or an environment id, got {type(env).__name__}")
    return env, False


def _run_episode(env: gym.Env, act: _Actor, obs: np.ndarray, max_steps: int) -> dict[str, np.ndarray]:
    """Play from ``obs`` until the episode ends or ``max_steps`` steps; a cut episode is marked truncated."""
    rows: dict[str, list[Any]] = {key: [] for key in STEP_KEYS}
    act.reset()
    for _ in range(max_steps):
        action = act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(STEP_KEYS, (obs, action, reward, next_obs, terminated, truncated)):
            rows[key].append(value)
        obs = next_obs
        if terminated or truncated:
            break
    else:
        rows["truncated"][-1] = True  # cut by max_steps: a time limit, not a terminal state
    episode = {key: np.asarray(values) for key, values in rows.items()}
    for key in ("observations", "next_observations", "rewards"):
        episode[key] = episode[key].astype(np.float32)
    for key in ("terminated", "truncated"):
        episode[key] = episode[key].astype(np.bool_)
    return episode


def _episodes(
    env: gym.Env | str, lengths: Callable[[int], int | None], policy: PolicyLike, seed: int | None, deterministic: bool
) -> Iterator[dict[str, np.ndarray]]:
    """Yield episodes; ``lengths(i)`` gives the step cap of episode ``i`` (``None`` stops)."""
    env, owned = _make_env(env)
    try:
        act = _Actor(env, policy, deterministic)
        if seed is not None:
            env.action_space.seed(seed)
        for i in itertools.count():
            cap = lengths(i)
            if cap is None:
                return
            obs, _ = env.reset(seed=seed if i == 0 else None)  # later resets continue the seeded generator
            yield _run_episode(env, act, obs, cap)
    finally:
        if owned:
            env.close()


def collect_world_model_data(
    env: gym.Env | str,
    steps: int | None = 1000,
    episodes: int | None = None,
    policy: PolicyLike = None,
    *,
    seed: int | None = None,
    deterministic: bool = False,
) -> dict[str, np.ndarray]:
    """Collect transitions for training a :class:`~ca11_agents.world_models.world_model.WorldModel`.

    How ``steps`` and ``episodes`` combine:

    - ``steps`` alone: exactly ``steps`` transitions, over as many episodes as they take.
    - ``steps`` and ``episodes``: exactly ``steps`` transitions, and every episode is cut (marked truncated) after
      ``ceil(steps / episodes)`` steps, so the data spans at least ``episodes`` episodes and no single long episode
      fills the budget (the notebook's ``steps=1000, episodes=5``). Episodes that end earlier on their own are
      followed by new ones until the budget is spent.
    - ``episodes`` alone: ``episodes`` complete episodes, however long they are.

    Args:
        env: a Gymnasium environment (reset before each episode) or an id such as ``"CA11/ContinuousCartPole-v0"``
            (the environment is then created and closed here).
        steps: number of transitions to return.
        episodes: see above.
        policy: ``None`` for uniform random actions, a callable ``obs -> action``, or an SB3-style model.
        seed: seeds the first reset and the action space (random policy), for reproducible data.
        deterministic: passed to an SB3-style model's ``predict``.

    Returns:
        The *transitions* layout of the module docstring; ``actions`` are clipped into a ``Box`` action space.
    """
    if steps is None and episodes is None:
        raise ValueError("collect_world_model_data: give steps, episodes or both")
    if (steps is not None and steps < 1) or (episodes is not None and episodes < 1):
        raise ValueError(f"collect_world_model_data: steps and episodes must be >= 1, got {steps}, {episodes}")
    cap = math.ceil(steps / episodes) if steps is not None and episodes is not None else steps
    collected: list[dict[str, np.ndarray]] = []
    remaining = steps

    def lengths(i: int) -> int | None:
        if steps is None:
            return None if i >= episodes else _NO_CAP
        return min(cap, remaining) if remaining > 0 else None

    for episode in _episodes(env, lengths, policy, seed, deterministic):
        collected.append(episode)
        if steps is not None:
            remaining -= len(episode["rewards"])
    return {key: np.concatenate([ep[key] for ep in collected]) for key in STEP_KEYS}


def collect_sequence_data(
    env: gym.Env | str,
    episodes: int = 50,
    episode_length: int | None = None,
    policy: PolicyLike = None,
    *,
    seed: int | None = None,
    deterministic: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Collect whole episodes for training a recurrent world model (the RSSM).

    Args:
        env: a Gymnasium environment or id.
        episodes: number of episodes.
        episode_length: cap on an episode's steps (the episode is then marked truncated at its last step);
            ``None`` plays each episode to its end. Episodes that end earlier are kept, shorter.
        policy: ``None`` for uniform random actions, a callable ``obs -> action``, or an SB3-style model.
        seed: seeds the first reset and the action space.
        deterministic: passed to an SB3-style model's ``predict``.

    Returns:
        ``episodes`` dicts in the *sequences* layout of the module docstring, each ``(T, ...)`` with
        ``T <= episode_length``.
    """
    if episodes < 1 or (episode_length is not None and episode_length < 1):
        raise ValueError(
            f"collect_sequence_data: episodes and episode_length must be >= 1, got {episodes}, {episode_length}"
        )
    cap = _NO_CAP if episode_length is None else episode_length
    data = list(_episodes(env, lambda i: cap if i < episodes else None, policy, seed, deterministic))
    for episode in data:
        episode["is_first"] = np.arange(len(episode["rewards"])) == 0
    return data


def train_test_split(
    data: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]], train_fraction: float = 0.8
) -> tuple[Any, Any]:
    """Split transitions (by row) or episodes (by episode) in order, without shuffling: the held-out part comes
    from later episodes, so evaluation is not flattered by near-duplicate neighbouring steps."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_test_split: train_fraction must be in (0, 1), got {train_fraction}")
    if isinstance(data, Mapping):
        n = int(train_fraction * len(data["observations"]))
        return {k: v[:n] for k, v in data.items()}, {k: v[n:] for k, v in data.items()}
    n = int(train_fraction * len(data))
    return list(data[:n]), list(data[n:])


def sample_transitions(
    data: Mapping[str, np.ndarray], batch_size: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A minibatch of ``batch_size`` rows drawn uniformly with replacement from a *transitions* dict."""
    index = rng.integers(len(data["observations"]), size=batch_size)
    return {key: value[index] for key, value in data.items()}


def sample_sequences(
    episodes: Sequence[Mapping[str, np.ndarray]], batch_size: int, seq_len: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A ``(B, T, ...)`` batch of ``batch_size`` windows of ``seq_len`` consecutive steps, each inside one episode.

    Every window of every episode at least ``seq_len`` long is equally likely. ``is_first`` is set at each window's
    first step: a window starts from the model's initial state wherever it lies in its episode.
    """
    lengths = np.array([len(ep["rewards"]) for ep in episodes])
    windows = np.maximum(lengths - seq_len + 1, 0)  # valid start positions per episode
    if windows.sum() == 0:
        raise ValueError(f"sample_sequences: no episode has seq_len={seq_len} steps (longest: {lengths.max()})")
    which = rng.choice(len(episodes), size=batch_size, p=windows / windows.sum())
    starts = rng.integers(windows[which])
    keys = [key for key in episodes[0] if np.ndim(episodes[0][key]) >= 1]
    batch = {key: np.stack([episodes[e][key][s : s + seq_len] for e, s in zip(which, starts)]) for key in keys}
    if "is_first" in batch:
        batch["is_first"] = batch["is_first"].copy()
        batch["is_first"][:, 0] = True
    return batch
