"""Sequence replay: steps stored in order per environment, sampled as ``(B, T)`` windows with ``is_first`` flags.

Each sub-environment of a VecEnv has its own ring of ``capacity // n_envs`` steps, so a window never mixes two
environments; a window may cross an episode boundary, which ``is_first`` marks (the RSSM resets its state there).
Stored per step, in the alignment of :mod:`ca11_agents.world_models.rssm`::

    observations (...)  o_t, the observation the action was chosen from, in its own dtype (a 64x64x3 frame stays
                        uint8: 12 KiB a step, where float32 would take 48 KiB); a Dict observation is kept as one
                        field per key, ``observations.<key>``, and sampled back as a dict
    actions      (A,)   a_t, normalised to [-1, 1] (Box) or one-hot (Discrete), float32
    rewards      ()     r_t
    terminated   ()     1 where a_t ended the episode by termination (not by a time limit)
    is_first     ()     1 where o_t is the first observation of an episode
    returns      ()     the discounted return from o_t to the end of its episode, filled in by :meth:`end_episodes`
                        once the episode is over (NaN until then)

Memory per step: the observation's bytes plus ``4 * A + 16`` bytes (:meth:`SequenceReplayBuffer.bytes_per_step`).

Written here rather than taken from SB3: SB3's buffers hold independent transitions and sample them shuffled,
while the RSSM needs contiguous windows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from gymnasium import spaces

from ca11_agents.common.checkpoint import atomic_write, npz_headers
from ca11_agents.common.spaces import join_observation, observation_fields, split_observation

STEP_FIELDS = ("actions", "rewards", "terminated", "is_first", "returns")
STATE = ("meta", "rng_state", "episode_steps")  # what save() writes beside the fields
OPTIONAL = ("returns", "episode_steps")  # absent from files written before returns were stored


def discounted_returns(rewards: np.ndarray, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """``R_t = r_t + gamma * R_{t+1}`` over one episode's rewards ``(L,)``, with ``R_L = bootstrap`` (float64)."""
    returns, ret = np.empty(len(rewards)), float(bootstrap)
    for t in range(len(rewards) - 1, -1, -1):
        ret = float(rewards[t]) + gamma * ret
        returns[t] = ret
    return returns


class SequenceReplayBuffer:
    """A ring buffer of steps for ``n_envs`` parallel environments.

    Args:
        capacity: total steps kept (split evenly between the environments); the oldest are overwritten.
        observation_space: the observations' space (a ``Box``, or a ``Dict`` of them), or the size of a flat float32
            vector.
        action_dim: size of the learners' action vectors.
        n_envs: parallel environments whose steps arrive together through :meth:`add`.
        seed: seeds the sampling generator.
    """

    def __init__(
        self,
        capacity: int,
        observation_space: spaces.Space | int,
        action_dim: int,
        n_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        if capacity < n_envs or n_envs < 1:
            raise ValueError(f"SequenceReplayBuffer: capacity ({capacity}) must be >= n_envs ({n_envs}) >= 1")
        self.n_envs, self.action_dim = n_envs, action_dim
        self.size_per_env = capacity // n_envs
        shape = (n_envs, self.size_per_env)
        self.layout = {
            **observation_fields(observation_space),
            "actions": ((action_dim,), np.dtype(np.float32)),
            **{k: ((), np.dtype(np.float32)) for k in STEP_FIELDS[1:]},
        }
        self.obs_dim = sum(int(np.prod(s)) for k, (s, _) in self.layout.items() if k.startswith("observations"))
        # np.zeros maps untouched pages lazily: memory grows with what is stored, not with the capacity.
        self.data = {k: np.zeros((*shape, *s), d) for k, (s, d) in self.layout.items()}
        self.data["returns"].fill(np.nan)
        self.episode_steps = np.zeros(n_envs, np.int64)  # steps stored of each environment's running episode
        self.pos = 0  # next write index, shared by all environments (they step together)
        self.count = 0  # valid steps per environment
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def bytes_per_step(observation_space: spaces.Space | int, action_dim: int) -> int:
        """Memory one stored step takes, for choosing a capacity."""
        fields = observation_fields(observation_space)
        return sum(int(np.prod(s)) * d.itemsize for s, d in fields.values()) + 4 * action_dim + 16

    def __len__(self) -> int:
        """Steps stored, over all environments."""
        return self.count * self.n_envs

    def add(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        is_first: np.ndarray,
    ) -> None:
        """Append one step of every environment: arrays (a dict of them for a Dict observation) with leading
        dimension ``n_envs``."""
        i = self.pos
        for key, value in split_observation(obs).items():
            self.data[key][:, i] = value
        self.data["actions"][:, i] = action
        self.data["rewards"][:, i] = reward
        self.data["terminated"][:, i] = terminated
        self.data["is_first"][:, i] = is_first
        self.data["returns"][:, i] = np.nan
        self.episode_steps = np.where(np.asarray(is_first) > 0, 1, self.episode_steps + 1)
        self.pos = (self.pos + 1) % self.size_per_env
        self.count = min(self.count + 1, self.size_per_env)

    def end_episodes(self, ended: np.ndarray, bootstrap: np.ndarray, gamma: float) -> None:
        """Fill in the ``returns`` of the episodes that the last :meth:`add` ended.

        Args:
            ended: ``(n_envs,)`` true where that environment's episode ended with the last step added.
            bootstrap: ``(n_envs,)`` value of the state after the last step, for episodes cut by a time limit
                (ignored where the last step terminated: nothing follows a termination).
            gamma: the discount.
        """
        data, last = self.data, (self.pos - 1) % self.size_per_env
        for env in np.flatnonzero(ended):
            steps = int(min(self.episode_steps[env], self.count))
            index = (last - np.arange(steps)[::-1]) % self.size_per_env  # the episode's slots, oldest first
            tail = 0.0 if data["terminated"][env, last] > 0 else float(bootstrap[env])
            data["returns"][env, index] = discounted_returns(data["rewards"][env, index], gamma, tail)
            self.episode_steps[env] = 0

    def can_sample(self, seq_len: int) -> bool:
        """Whether windows of ``seq_len`` steps exist yet."""
        return self.count >= seq_len

    def sample(
        self,
        batch_size: int,
        seq_len: int,
        device: torch.device | str = "cpu",
        returns_max_age: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """``batch_size`` windows of ``seq_len`` consecutive steps, as tensors ``(B, T, ...)`` in their stored dtypes
        (a Dict observation as a dict of them under ``"observations"``).

        ``returns_max_age``: the ``returns`` of steps stored that many steps ago (per environment) or earlier come
        back as NaN (unknown): the returns an older policy earned. ``None``: all known returns.
        """
        if not self.can_sample(seq_len):
            raise ValueError(f"SequenceReplayBuffer: {self.count} steps per env stored, cannot sample {seq_len}")
        env = self.rng.integers(0, self.n_envs, size=batch_size)
        oldest = (self.pos - self.count) % self.size_per_env
        offset = self.rng.integers(0, self.count - seq_len + 1, size=batch_size)
        steps = (oldest + offset[:, None] + np.arange(seq_len)) % self.size_per_env  # (B, T)
        fields = {k: v[env[:, None], steps] for k, v in self.data.items()}
        if returns_max_age is not None:
            age = (self.pos - 1 - steps) % self.size_per_env  # 0: the newest step
            fields["returns"] = np.where(age < returns_max_age, fields["returns"], np.float32(np.nan))
        return join_observation({k: torch.as_tensor(v, device=device) for k, v in fields.items()})

    # ------------------------------------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the buffer to ``path`` (NumPy ``.npz``, no pickled objects), atomically: an interrupted write
        leaves any previous file at ``path`` intact. Only the stored steps are written: a buffer that has not
        wrapped around yet keeps its first ``count`` slots (a 1,000,000-step buffer holding 3,000 steps writes
        3,000), and :meth:`load` puts them back into a buffer of any capacity that holds them."""
        size, pos, data = self.size_per_env, self.pos, self.data
        if self.count < size:  # never wrapped: the steps are slots [0, count), in order (views, no copy)
            size, pos = max(self.count, 1), 0
            data = {k: v[:, :size] for k, v in data.items()}
        meta = np.array([self.n_envs, size, self.obs_dim, self.action_dim, pos, self.count])
        rng_state = np.frombuffer(_rng_bytes(self.rng), np.uint8)
        atomic_write(
            path, lambda f: np.savez(f, meta=meta, rng_state=rng_state, episode_steps=self.episode_steps, **data)
        )

    def load(self, path: str | os.PathLike) -> None:
        """Replace the contents with a buffer written by :meth:`save`.

        Every array's header (shape, dtype, size) is checked against this buffer before any data is read, and
        every field before anything is replaced: a failed load leaves the buffer as it was.

        Raises:
            ValueError: the file is missing, not a buffer file, truncated, or of another layout than this buffer.
        """
        path = Path(path)
        expected = self.layout
        try:
            headers = npz_headers(path)
            missing = [k for k in (*expected, *STATE) if k not in headers and k not in OPTIONAL]
            if missing:
                raise KeyError(f"missing {missing}")
            meta_shape, meta_dtype = headers["meta"]
            if meta_shape != (6,) or meta_dtype.kind not in "iu":
                raise ValueError(f"meta has shape {meta_shape} and dtype {meta_dtype}")
            with np.load(path, allow_pickle=False) as f:
                meta = f["meta"]
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{path} is not a readable replay buffer file: {exc}") from exc
        n_envs, size, obs_dim, action_dim, pos, count = (int(x) for x in meta)
        if (n_envs, obs_dim, action_dim) != (self.n_envs, self.obs_dim, self.action_dim):
            raise ValueError(
                f"{path}: replay buffer for n_envs={n_envs}, obs_dim={obs_dim}, action_dim={action_dim} does not match "
                f"this one (n_envs={self.n_envs}, obs_dim={self.obs_dim}, action_dim={self.action_dim})"
            )
        if not (1 <= size and 0 <= pos < size and 0 <= count <= size):
            raise ValueError(f"{path}: inconsistent positions (size={size}, pos={pos}, count={count})")
        if size > self.size_per_env:
            raise ValueError(
                f"{path}: the file keeps {size} steps per env, more than this buffer holds ({self.size_per_env}); "
                f"build the agent with buffer_size >= {size * n_envs} to load it"
            )
        for k, (shape, dtype) in expected.items():
            if k not in headers:
                continue  # optional (returns of old files)
            got_shape, got_dtype = headers[k]
            if got_shape != (n_envs, size, *shape) or got_dtype != dtype:
                raise ValueError(
                    f"{path}: field {k!r} is {got_dtype}{list(got_shape)}, expected {dtype}{[n_envs, size, *shape]}"
                )
        if "episode_steps" in headers and headers["episode_steps"][0] != (n_envs,):
            raise ValueError(f"{path}: episode_steps has shape {headers['episode_steps'][0]}, expected ({n_envs},)")
        if headers["rng_state"][0][0] > 1 << 16:
            raise ValueError(f"{path}: rng_state is implausibly large")
        try:
            with np.load(path, allow_pickle=False) as f:
                loaded = {k: f[k] for k in (*expected, *STATE) if k in headers}
            rng = _rng_from_bytes(loaded["rng_state"].tobytes())
        except Exception as exc:
            raise ValueError(f"{path} is not a readable replay buffer file: {exc}") from exc
        # Files written before returns were stored: no returns known yet, no episode running.
        loaded.setdefault("returns", np.full((n_envs, size), np.nan, np.float32))
        loaded.setdefault("episode_steps", np.zeros(n_envs, np.int64))
        if size < self.size_per_env:  # a smaller ring (or a compact save): its steps, oldest first, into this one
            order = (pos - count + np.arange(count)) % size
            data = {k: np.zeros((n_envs, self.size_per_env, *s), d) for k, (s, d) in expected.items()}
            data["returns"].fill(np.nan)
            for k in expected:
                data[k][:, :count] = loaded[k][:, order]
            pos, size = count % self.size_per_env, self.size_per_env
        else:
            data = {k: loaded[k] for k in expected}
        self.size_per_env, self.pos, self.count = size, pos, count
        self.data = data
        self.episode_steps = loaded["episode_steps"].astype(np.int64)
        self.rng = rng


def _rng_bytes(rng: np.random.Generator) -> bytes:
    return json.dumps(rng.bit_generator.state).encode()


def _rng_from_bytes(raw: bytes) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(raw.decode())
    return rng
