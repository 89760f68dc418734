"""A memory task: reproduce the cue shown ``memory_size`` steps ago, which is no longer observable."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ca11_gym.envs.utils import check_num_envs, check_render_mode, validate_action
from ca11_gym.rendering import PygameRenderer, RendererOwner

_PLUS, _MINUS, _EMPTY = (66, 133, 244), (244, 160, 66), (200, 200, 200)  # cue colours: +1 blue, -1 orange
_WIDTH, _HEIGHT = 600, 260
_MAX_CELLS = 30  # longer episodes show a sliding window of the last 30 steps, so cells stay legible


def recall_reward(action: np.ndarray | float, target: np.ndarray | float) -> np.ndarray | float:
    """The reward of a scored step, ``1 - (action - target)**2 / 2``: 1 for a perfect recall, -1 for the opposite.

    Quadratic so that its gradient in the action, ``target - action``, points at the target everywhere: a
    gradient-based agent (Dreamer's actor backpropagates through a learned reward) gets a useful signal.
    """
    return 1.0 - 0.5 * (action - target) ** 2


class _SequenceTask(RendererOwner):
    """The arguments and the return bounds shared by :class:`SequenceEnvironment` and its vector twin."""

    name: str = "SequenceEnvironment"
    metadata: dict[str, Any]

    def _init_task(self, memory_size: int, episode_length: int, render_mode: str | None) -> None:
        for arg, value in (("memory_size", memory_size), ("episode_length", episode_length)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{self.name}: {arg} must be an integer, got {value!r}")
        if memory_size < 1:
            raise ValueError(f"{self.name}: memory_size must be >= 1, got {memory_size}")
        if episode_length <= memory_size:
            raise ValueError(
                f"{self.name}: episode_length ({episode_length}) must be greater than memory_size ({memory_size}), "
                "otherwise no step is ever scored"
            )
        check_render_mode(self.name, render_mode, self.metadata["render_modes"])
        self.memory_size, self.episode_length, self.render_mode = int(memory_size), int(episode_length), render_mode
        self._renderer: PygameRenderer | None = None

    @property
    def scored_steps(self) -> int:
        """The number of steps per episode whose reward depends on the action: ``episode_length - memory_size``."""
        return self.episode_length - self.memory_size

    @property
    def optimal_return(self) -> float:
        """Expected return of the best policy, which remembers the cues: ``scored_steps`` (1 per scored step)."""
        return float(self.scored_steps)

    @property
    def memoryless_return(self) -> float:
        """Expected return of the best policy blind to the cue ``memory_size`` steps back: ``scored_steps / 2``."""
        return self.scored_steps / 2

    @property
    def random_return(self) -> float:
        """Expected return of the uniformly random policy: ``scored_steps / 3``."""
        return self.scored_steps / 3

    def _check_cues(self, cues: Any, shape: tuple[int, ...]) -> np.ndarray:
        """Validate the ``cues`` reset option: values in {-1, +1} with the given shape."""
        message = f"{self.name}: options['cues'] must hold values in {{-1, +1}} with shape {shape}, got {cues!r}"
        try:
            arr = np.array(cues, dtype=np.float64)  # a copy: the caller's array is not aliased
        except (TypeError, ValueError) as exc:
            raise ValueError(message) from exc
        if arr.shape != shape or not np.all(np.abs(arr) == 1.0):
            raise ValueError(message)
        return arr


def _spaces() -> tuple[spaces.Box, spaces.Box]:
    """The single environment's observation ``[cue, recall]`` and action spaces, float32."""
    low, high = np.array([-1.0, 0.0], dtype=np.float32), np.array([1.0, 1.0], dtype=np.float32)
    return spaces.Box(low, high, dtype=np.float32), spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


def _observe(cues: np.ndarray, t: np.ndarray, memory_size: int) -> np.ndarray:
    """Observations ``[cue, recall]`` of a batch in state ``(cues (B, L), t (B,))``, as float32 ``(B, 2)``."""
    length = cues.shape[1]
    running = t < length  # at t == L the episode is over: no cue, nothing to recall
    cue = np.where(running, cues[np.arange(len(t)), np.minimum(t, length - 1)], 0.0)
    recall = running & (t >= memory_size)
    return np.stack([cue, recall], axis=1).astype(np.float32)


def _draw(renderer: PygameRenderer, cues: np.ndarray, actions: np.ndarray, t: int, memory_size: int,
          last_reward: float | None) -> np.ndarray | None:
    """Draw one environment: the cues shown so far, the one to recall next, past actions, the last action."""
    pygame, canvas, font = renderer.pygame, renderer.canvas(), renderer.font(20)
    length, margin = len(cues), 20

    def text(s: str, pos: tuple[int, int], colour: tuple[int, int, int] = (0, 0, 0), right: bool = False) -> None:
        surface = font.render(s, True, colour)
        canvas.blit(surface, (pos[0] - surface.get_width(), pos[1]) if right else pos)

    reward_text = "-" if last_reward is None else f"{last_reward:+.2f}"
    text(f"step {t}/{length}   memory {memory_size}   last reward {reward_text}", (margin, 8))

    # Row of cue cells, one per step; past and current cues coloured, future ones empty.
    n_cells = min(length, _MAX_CELLS)
    first = max(0, min(t, length - 1) - n_cells + 1)
    cell = (_WIDTH - 2 * margin) // n_cells
    cell_h = min(cell, 24)  # short episodes get wide cells, not tall ones: the layout below stays put
    y_cue, y_bar, bar = 52, 52 + cell_h + 28, 22
    target = t - memory_size if memory_size <= t < length else None  # what the next action must reproduce
    for j in range(n_cells):
        s, x = first + j, margin + j * cell
        rect = pygame.Rect(x + 2, y_cue, cell - 4, cell_h - 4)
        if s <= t and s < length:
            pygame.draw.rect(canvas, _PLUS if cues[s] > 0 else _MINUS, rect)
        else:
            pygame.draw.rect(canvas, _EMPTY, rect, width=1)
        if s == t:
            pygame.draw.rect(canvas, (0, 0, 0), rect.inflate(4, 4), width=3)
            text("now", (x + 2, y_cue - 18))
        if s == target:
            pygame.draw.rect(canvas, (220, 0, 0), rect.inflate(4, 4), width=3)
            text("recall", (x + cell - 2, y_cue - 18), (220, 0, 0), right=True)  # clear of "now" when k = 1
        # Under each cue, the action that was scored against it (a_{s+k}), coloured by its reward.
        if s + memory_size < t:
            a = actions[s + memory_size]
            quality = (recall_reward(a, cues[s]) + 1) / 2
            colour = (int(220 * (1 - quality)), int(170 * quality), 40)
            top = y_bar - int(a * bar)  # bars grow up for positive actions, down for negative ones
            bar_rect = pygame.Rect(x + cell // 4, min(top, y_bar), cell // 2, abs(top - y_bar) + 1)
            pygame.draw.rect(canvas, colour, bar_rect)
    pygame.draw.line(canvas, (120, 120, 120), (margin, y_bar), (margin + n_cells * cell, y_bar))
    text("cues (blue +1, orange -1); bars: each scored action under the cue it had to recall",
         (margin, y_bar + bar + 8), (90, 90, 90))

    # Slider over [-1, 1]: the last action (triangle) and the target it was scored against (red line).
    y, x0, x1 = _HEIGHT - 40, margin + 40, _WIDTH - margin - 40

    def to_x(v: float) -> int:
        return int(x0 + (v + 1) / 2 * (x1 - x0))

    pygame.draw.line(canvas, (0, 0, 0), (x0, y), (x1, y), 2)
    for v in (-1, 0, 1):
        pygame.draw.line(canvas, (0, 0, 0), (to_x(v), y - 5), (to_x(v), y + 5))
        text(f"{v:+d}" if v else "0", (to_x(v) - 8, y + 8))
    if t >= 1:
        a = float(actions[t - 1])
        if t - 1 >= memory_size:
            c = float(cues[t - 1 - memory_size])
            pygame.draw.line(canvas, (220, 0, 0), (to_x(c), y - 22), (to_x(c), y + 5), 4)
            label = f"last action {a:+.2f}, target {c:+.0f}"
        else:
            label = f"last action {a:+.2f} (not scored: recall starts at step {memory_size})"
        pygame.draw.polygon(canvas, (0, 0, 0), [(to_x(a), y - 2), (to_x(a) - 7, y - 16), (to_x(a) + 7, y - 16)])
        text(label, (margin, y - 42))
    return renderer.present()


class SequenceEnvironment(_SequenceTask, gym.Env[np.ndarray, np.ndarray]):
    r"""
    ## Description

    A memory task. At every step a binary cue $c_t \in \{-1, +1\}$ is shown, drawn uniformly at random. From step
    `memory_size` $= k$ on, the agent is scored on reproducing the cue shown $k$ steps earlier, $c_{t-k}$, which is
    no longer in the observation: a policy must carry the last $k$ cues in its own state (an RNN, the RSSM's
    deterministic path). A policy that sees only the current observation, or remembers fewer than $k$ steps,
    cannot beat $a = 0$ (derivation under Rewards).

    ```
    step t      0    1   ...   k-1  |  k       k+1      ...  L-1       | L
    shown       c0   c1  ...   ck-1 |  ck      ck+1     ...  cL-1      | (episode over)
    reward      0    0   ...   0    |  r(a,c0) r(a,c1)  ...  r(a,cL-1-k)|
    ```

    ## Action Space

    The action is a `ndarray` with shape `(1,)`: the agent's guess of the cue to recall. Finite values outside the
    bounds are clipped; NaN, infinite, non-numeric or wrongly shaped actions raise `ValueError`.

    | Num | Action       | Min  | Max |
    |-----|--------------|------|-----|
    | 0   | recalled cue | -1.0 | 1.0 |

    ## Observation Space

    The observation is a `ndarray` with shape `(2,)` and dtype float32. It never contains the cue to recall.

    | Num | Observation                                      | Min  | Max |
    |-----|--------------------------------------------------|------|-----|
    | 0   | current cue $c_t$ (0 in the terminal observation) | -1.0 | 1.0 |
    | 1   | recall flag: 1 if the next action is scored       | 0.0  | 1.0 |

    ## Rewards

    The action $a_t$ taken after observing step $t$ earns $r_t = 1 - (a_t - c_{t-k})^2 / 2 \in [-1, 1]$ if
    $t \ge k$ and $0$ otherwise (the `recall_reward` function). Smooth and bounded: its gradient
    $c_{t-k} - a_t$ points at the target everywhere. With $L$ = `episode_length`, $N = L - k$ steps are scored,
    and the expected returns are exposed as attributes:

    - `optimal_return` $= N$: recalling $a_t = c_{t-k}$ (a valid action since $c \in \{-1, 1\}$) earns the
      maximum reward 1 at every scored step.
    - `memoryless_return` $= N/2$: if $a_t$ is independent of $c_{t-k}$ (it is computed from the current
      observation, or from fewer than $k$ past cues, all independent of $c_{t-k}$), then with $E[c] = 0$ and
      $E[c^2] = 1$, $E[r_t] = 1 - (E[a_t^2] - 2 E[a_t] E[c] + E[c^2]) / 2 = 1/2 - E[a_t^2]/2 \le 1/2$,
      with equality for $a_t = 0$.
    - `random_return` $= N/3$: for $a_t \sim U[-1, 1]$, $E[a_t^2] = 1/3$, so $E[r_t] = 1/2 - 1/6 = 1/3$.

    So memory is worth a lot: the best memoryless policy gets only $(1/2 - 1/3) / (1 - 1/3) = 25\%$ of the way from
    the random policy to the optimum. With the defaults ($k = 5$, $L = 25$): optimum 20, memoryless 10, random 6.67.

    ## Starting State

    The cues $c_0, \dots, c_{L-1}$ are drawn i.i.d. uniform on $\{-1, +1\}$ by `self.np_random` at reset; the
    first observation is $[c_0, 0]$. `reset(options={"cues": seq})` plays a given sequence of $L$ cues instead
    (to evaluate policies on the same sequences).

    ## Episode End

    The episode terminates (`terminated=True`, not truncated) after `episode_length` steps: the length is part of
    the task, and the returns above are derived for it, so it is not a registration time limit. The terminal
    observation is $[0, 0]$.

    ## Arguments

    - `memory_size` (int, default 5): how many steps back the recalled cue was shown, $k \ge 1$.
    - `episode_length` (int, default 25): steps per episode, $L > k$.
    - `render_mode` (str | None): `"human"` (pygame window) or `"rgb_array"` (`(260, 600, 3)` uint8 frames
      showing the cues so far, the cue to recall next, each scored action under its target and the last action
      against its target on a slider: what the observation hides is drawn for humans).

    ```python
    >>> import gymnasium as gym, ca11_gym
    >>> env = gym.make("CA11/SequenceEnvironment-v0", memory_size=5)
    >>> env.unwrapped.optimal_return, env.unwrapped.memoryless_return
    (20.0, 10.0)

    ```

    ## Version History

    * v0: Initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}

    def __init__(self, memory_size: int = 5, episode_length: int = 25, render_mode: str | None = None) -> None:
        self._init_task(memory_size, episode_length, render_mode)
        self.observation_space, self.action_space = _spaces()
        self._cues: np.ndarray | None = None  # (L,) the episode's cues, drawn at reset
        self._actions = np.full(self.episode_length, np.nan)  # (L,) actions taken, kept for rendering
        self._t = 0
        self._last_reward: float | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Draw a new cue sequence (or take ``options["cues"]``) and return the first observation."""
        super().reset(seed=seed)
        if options is not None and "cues" in options:
            self._cues = self._check_cues(options["cues"], (self.episode_length,))
        else:
            self._cues = 2.0 * self.np_random.integers(0, 2, size=self.episode_length) - 1.0
        self._actions[:] = np.nan
        self._t, self._last_reward = 0, None
        if self.render_mode == "human":
            self.render()
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Score the action against the cue shown ``memory_size`` steps ago (0 reward before) and show a new cue."""
        if self._cues is None or self._t >= self.episode_length:
            raise RuntimeError(f"{self.name}: call reset() before step() (the episode is over or never started)")
        a = float(validate_action(action, self.action_space, self.name)[0])
        t, k = self._t, self.memory_size
        reward = float(recall_reward(a, self._cues[t - k])) if t >= k else 0.0
        self._actions[t], self._last_reward = a, reward
        self._t = t + 1
        if self.render_mode == "human":
            self.render()
        return self._observation(), reward, self._t >= self.episode_length, False, {}

    def _observation(self) -> np.ndarray:
        return _observe(self._cues[None], np.array([self._t]), self.memory_size)[0]  # (1, 2) -> (2,)

    def render(self) -> np.ndarray | None:
        """Draw the current state (see Arguments); ``None`` in ``"human"`` mode, an ``(H, W, 3)`` uint8 array else."""
        if self.render_mode is None:
            gym.logger.warn(f"{self.name}: render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        if self._cues is None:
            raise RuntimeError(f"{self.name}: call reset() before render()")
        renderer = self._get_renderer(_WIDTH, _HEIGHT)
        return _draw(renderer, self._cues, self._actions, self._t, self.memory_size, self._last_reward)

    def close(self) -> None:
        """Close the render window, if any."""
        self._close_renderer()


class SequenceEnvironmentVectorEnv(_SequenceTask, VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` copies of :class:`SequenceEnvironment` stepped together with numpy.

    Each sub-environment follows exactly the single environment's dynamics (see its docstring). Finished
    sub-environments are reset on the next ``step`` call, whose action they ignore and where they return the
    first observation with reward 0 (``AutoresetMode.NEXT_STEP``, as Gymnasium's ``CartPoleVectorEnv``).
    ``reset(options={"cues": array (num_envs, episode_length)})`` fixes the cues of the first episodes.
    ``render()`` returns one ``(H, W, 3)`` frame per sub-environment (Gymnasium's vector ``RecordVideo`` and
    ``HumanRendering`` expect one each).

    Args:
        num_envs: number of sub-environments.
        memory_size: see :class:`SequenceEnvironment`.
        episode_length: see :class:`SequenceEnvironment`.
        render_mode: ``None`` or ``"rgb_array"``.
    """

    name = "SequenceEnvironmentVectorEnv"
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, memory_size: int = 5, episode_length: int = 25,
                 render_mode: str | None = None) -> None:
        check_num_envs(self.name, num_envs)
        self._init_task(memory_size, episode_length, render_mode)
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = _spaces()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._cues: np.ndarray | None = None  # (B, L)
        self._actions = np.full((self.num_envs, self.episode_length), np.nan)  # (B, L), for rendering
        self._t = np.zeros(self.num_envs, dtype=np.int64)  # (B,)
        self._last_reward = np.full(self.num_envs, np.nan)  # (B,), NaN before the first step of an episode
        self._prev_done = np.zeros(self.num_envs, dtype=np.bool_)  # (B,) finished at the last step

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Reset every sub-environment; return observations of shape ``(num_envs, 2)``."""
        super().reset(seed=seed)
        if options is not None and "cues" in options:
            self._cues = self._check_cues(options["cues"], (self.num_envs, self.episode_length))
        else:
            self._cues = self._draw_cues(self.num_envs)
        self._actions[:] = np.nan
        self._t[:] = 0
        self._last_reward[:] = np.nan
        self._prev_done[:] = False
        return _observe(self._cues, self._t, self.memory_size), {}

    def _draw_cues(self, n: int) -> np.ndarray:
        # Same call as the single env's reset: with num_envs=1 and one seed both play the same cues.
        return 2.0 * self.np_random.integers(0, 2, size=(n, self.episode_length)) - 1.0

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every sub-environment with ``actions`` of shape ``(num_envs, 1)``; rewards are float64."""
        if self._cues is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        a = validate_action(actions, self.single_action_space, self.name, batch_size=self.num_envs)[:, 0]  # (B,)
        k, rows = self.memory_size, np.arange(self.num_envs)
        active, t = ~self._prev_done, self._t.copy()
        scored = active & (t >= k)
        target = self._cues[rows, np.maximum(t - k, 0)]  # (B,) only read where scored
        rewards = np.where(scored, recall_reward(a, target), 0.0)
        self._actions[rows[active], t[active]] = a[active]
        self._last_reward[active] = rewards[active]
        self._t[active] += 1
        terminated = active & (self._t >= self.episode_length)

        # NEXT_STEP autoreset: sub-envs that ended at the previous call start a new episode now.
        done = self._prev_done
        if done.any():
            self._cues[done] = self._draw_cues(int(done.sum()))
            self._actions[done] = np.nan
            self._t[done] = 0
            self._last_reward[done] = np.nan
        self._prev_done = terminated
        obs = _observe(self._cues, self._t, self.memory_size)
        return obs, rewards, terminated, np.zeros(self.num_envs, dtype=np.bool_), {}

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One ``(H, W, 3)`` uint8 frame per sub-environment, drawn like :meth:`SequenceEnvironment.render`."""
        if self.render_mode is None:
            gym.logger.warn(f"{self.name}: render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        if self._cues is None:
            raise RuntimeError(f"{self.name}: call reset() before render()")
        renderer = self._get_renderer(_WIDTH, _HEIGHT)
        return tuple(
            _draw(renderer, self._cues[i], self._actions[i], int(self._t[i]), self.memory_size,
                  None if np.isnan(self._last_reward[i]) else float(self._last_reward[i]))
            for i in range(self.num_envs)
        )

    def close_extras(self, **kwargs: Any) -> None:
        """Release the renderer."""
        self._close_renderer()
