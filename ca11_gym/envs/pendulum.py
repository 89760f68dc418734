"""Pendulum swing-up with a normalised torque: Gymnasium's Pendulum-v1, driven by a torque in [-2, 2] N m."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import Env, logger, spaces
from gymnasium.envs.classic_control import utils as cc_utils
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ca11_gym.envs.utils import (
    check_finite,
    check_num_envs,
    check_range,
    check_positive_int,
    check_render_mode,
    validate_batch_action,
    validate_scalar_action,
)
from ca11_gym.rendering import PygameRenderer, RendererOwner

# Pendulum-v1's constants (gymnasium/envs/classic_control/pendulum.py).
MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
MASS = 1.0
LENGTH = 1.0
DEFAULT_X, DEFAULT_Y = math.pi, 1.0  # default bounds of the starting angle and angular velocity

_OBS_HIGH = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
_SCREEN_DIM = 500


def _physics(env_name: str, mass: float, length: float) -> tuple[float, float]:
    """The rod's mass and length, checked against their documented ranges."""
    return check_range(env_name, "mass", mass, 0.1, 10.0), check_range(env_name, "length", length, 0.1, 10.0)


def _reset_high(options: dict[str, Any] | None) -> np.ndarray:
    """Pendulum-v1's reset bounds ``[x_init, y_init]`` (angle, angular velocity) from ``reset``'s ``options``."""
    if options is None:
        return np.array([DEFAULT_X, DEFAULT_Y])
    x = cc_utils.verify_number_and_cast(options.get("x_init", DEFAULT_X))
    y = cc_utils.verify_number_and_cast(options.get("y_init", DEFAULT_Y))
    return np.array([x, y])


class ContinuousPendulum(RendererOwner, Env[np.ndarray, np.ndarray]):
    """
    ## Description

    Gymnasium's `Pendulum-v1` with the action normalised to `[-1, 1]`: a pendulum hangs from a fixed pivot, starts
    at a random angle and speed, and the agent applies a torque to swing it up and keep it upright.

    The physics, starting states and rewards are Pendulum-v1's, float for float: with the same seed, action `a`
    here gives exactly the trajectory that action `2 * a` gives in `Pendulum-v1`. The torque is computed in float64
    (`2.0 * float(a)`), so the match is with `Pendulum-v1` stepped with float64 actions; given float32 actions,
    Pendulum-v1 does its torque arithmetic in float32, which can differ in the last bits.

    ## Action Space

    An `ndarray` of shape `(1,)` and dtype `float32` in `[-1, 1]`, scaled to a torque `u = 2 * a` (N m, positive
    counter-clockwise).

    | Num | Action            | Min  | Max |
    |-----|-------------------|------|-----|
    | 0   | Torque (x 2 N m)  | -1.0 | 1.0 |

    Finite values outside `[-1, 1]` are clipped into it. NaN, infinite, non-numeric or wrongly shaped actions raise
    a `ValueError` naming the environment and the expected shape `(1,)`.

    ## Observation Space

    An `ndarray` of shape `(3,)` and dtype `float32`, the free end's coordinates and the angular velocity:

    | Num | Observation      | Min  | Max |
    |-----|------------------|------|-----|
    | 0   | x = cos(theta)   | -1.0 | 1.0 |
    | 1   | y = sin(theta)   | -1.0 | 1.0 |
    | 2   | Angular Velocity | -8.0 | 8.0 |

    ## Rewards

    `r = -(theta^2 + 0.1 * theta_dt^2 + 0.001 * u^2)` with `theta` normalised to `[-pi, pi]` (0 is upright) and `u`
    the torque in N m, so `r` lies in `[-16.2736044, 0]`.

    ## Starting State

    A uniformly random angle in `[-pi, pi]` and angular velocity in `[-1, 1]`;
    `reset(options={"x_init": ..., "y_init": ...})` changes the two bounds.

    ## Episode End

    The pendulum never terminates. Truncation: 200 steps, from the `TimeLimit` that
    `gym.make("CA11/ContinuousPendulum-v0")` adds.

    ## Arguments

    | Parameter     | Type            | Default | Description                                        |
    |---------------|-----------------|---------|----------------------------------------------------|
    | `g`           | `float`         | `10.0`  | acceleration of gravity (m s^-2)                   |
    | `mass`        | `float`         | `1.0`   | mass of the rod (kg), in `[0.1, 10]`               |
    | `length`      | `float`         | `1.0`   | length of the rod (m), in `[0.1, 10]`              |
    | `render_mode` | `str` or `None` | `None`  | `"human"` (a pygame window) or `"rgb_array"`       |

    `mass` and `length` are Pendulum-v1's `m` and `l` (fixed there); changing them, or `g`, makes the variants on
    which adaptation to changed dynamics is measured (`benchmarks/adaptation.py`). At the defaults every float is
    Pendulum-v1's.

    ```python
    >>> import gymnasium as gym
    >>> import ca11_gym
    >>> env = gym.make("CA11/ContinuousPendulum-v0", render_mode="rgb_array", g=9.81)
    >>> obs, info = env.reset(seed=0)

    ```

    The frames draw the rod and an arc arrow around the pivot whose direction and sweep show the applied torque.
    `ContinuousPendulumVectorEnv` (`gym.make_vec(..., vectorization_mode="vector_entry_point")`) runs many copies
    with numpy.

    ## Version History

    * v0: Initial release: Pendulum-v1's dynamics, reset distribution and reward, torque `2 * a`.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}
    name: str = "ContinuousPendulum"

    def __init__(
        self, render_mode: str | None = None, g: float = 10.0, mass: float = MASS, length: float = LENGTH
    ) -> None:
        check_render_mode(self.name, render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self.g = check_finite(self.name, "g", g)
        self.mass, self.length = _physics(self.name, mass, length)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)
        # Python floats: same float64 results as Pendulum-v1's numpy scalars, without their overhead.
        self._theta = self._theta_dot = 0.0
        self._sin = self._cos = 0.0  # sin/cos of _theta, computed once for the observation and reused by step
        self._started = False
        self.last_u: float | None = None  # last torque (N m), for rendering
        self._renderer: PygameRenderer | None = None

    @property
    def state(self) -> np.ndarray | None:
        """The physical state ``(theta, theta_dot)`` in float64; assignable, e.g. to plan from a given state."""
        return np.array([self._theta, self._theta_dot]) if self._started else None

    @state.setter
    def state(self, value: np.ndarray) -> None:
        values = np.asarray(value, dtype=np.float64)
        if values.shape != (2,):
            raise ValueError(f"{self.name}: the state must have shape (2,), got {values.shape}")
        self._set_state(*values.tolist())

    def _set_state(self, theta: float, theta_dot: float) -> None:
        self._theta, self._theta_dot, self._started = theta, theta_dot, True
        # numpy's sin/cos, as Pendulum-v1 uses: libm's math.sin may round differently on some platforms.
        self._cos, self._sin = float(np.cos(theta)), float(np.sin(theta))

    def _obs(self) -> np.ndarray:
        return np.array((self._cos, self._sin, self._theta_dot), dtype=np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the torque ``2 * action`` for 0.05 s (one step of Pendulum-v1's semi-implicit Euler update)."""
        if not self._started:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        u = MAX_TORQUE * validate_scalar_action(action, self.action_space, self.name)
        self.last_u = u
        th, thdot = self._theta, self._theta_dot
        # Pendulum-v1's expressions in its order; `** 2` (libm pow, as numpy scalars use) rather than x * x, which
        # rounds differently in rare cases.
        costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * self.g / (2 * self.length) * self._sin + 3.0 / (self.mass * self.length**2) * u) * DT
        newthdot = min(max(newthdot, -MAX_SPEED), MAX_SPEED)
        self._set_state(th + newthdot * DT, newthdot)
        if self.render_mode == "human":
            self.render()
        # truncated is always False: the time limit comes from the TimeLimit wrapper added by gym.make.
        return self._obs(), -costs, False, False, {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw the angle from ``[-x_init, x_init]`` and the speed from ``[-y_init, y_init]`` (``pi`` and 1 unless
        ``options`` say otherwise)."""
        super().reset(seed=seed)
        high = _reset_high(options)
        self._set_state(*self.np_random.uniform(low=-high, high=high).tolist())
        self.last_u = None
        if self.render_mode == "human":
            self.render()
        return self._obs(), {}

    def render(self) -> np.ndarray | None:
        """Draw the rod and the applied torque; see ``render_mode``."""
        if self.render_mode is None:
            logger.warn(f"{self.name}: render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        if not self._started:
            raise RuntimeError(f"{self.name}: call reset() before render()")
        renderer = self._get_renderer(_SCREEN_DIM, _SCREEN_DIM)
        draw_pendulum(renderer, self._theta, self.last_u, self.length)
        return renderer.present()

    def close(self) -> None:
        """Close the window, if one was opened."""
        self._close_renderer()


class ContinuousPendulumVectorEnv(RendererOwner, VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` copies of :class:`ContinuousPendulum` stepped together with numpy (Gymnasium's
    ``CartPoleVectorEnv`` pattern).

    Each sub-environment follows :class:`ContinuousPendulum`'s dynamics and rewards float for float; the time limit
    (``max_episode_steps``, which ``gym.make_vec`` passes from the registration) is applied here as truncation, and
    truncated sub-environments reset on the following step (``AutoresetMode.NEXT_STEP``: that step returns the new
    first observation, reward 0 and ``truncated = False``, and ignores its action).

    Seeding: all sub-environments draw from one generator, in sub-environment order. ``reset(seed=s)`` therefore
    gives sub-environment ``i`` the starting state a single ``ContinuousPendulum`` has after ``reset(seed=s)``
    followed by ``i`` more ``reset()`` calls; with ``num_envs=1`` the whole run, autoresets included, equals a
    single environment that is reset whenever it truncates.

    Args:
        num_envs: number of sub-environments.
        max_episode_steps: steps after which a sub-environment is truncated.
        render_mode: ``"rgb_array"``: ``render()`` returns one frame per rendered sub-environment.
        g: acceleration of gravity, as in :class:`ContinuousPendulum`.
        mass: mass of the rod, as in :class:`ContinuousPendulum`.
        length: length of the rod, as in :class:`ContinuousPendulum`.
        num_rendered_envs: how many sub-environments (the first ones) ``render()`` draws.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30, "autoreset_mode": AutoresetMode.NEXT_STEP}
    name: str = "ContinuousPendulumVectorEnv"

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = 200,
        render_mode: str | None = None,
        g: float = 10.0,
        num_rendered_envs: int = 4,
        mass: float = MASS,
        length: float = LENGTH,
    ) -> None:
        check_num_envs(self.name, num_envs)
        check_render_mode(self.name, render_mode, self.metadata["render_modes"])
        self.num_envs = num_envs
        self.max_episode_steps = check_positive_int(self.name, "max_episode_steps", max_episode_steps)
        self.render_mode = render_mode
        self.g = check_finite(self.name, "g", g)
        self.mass, self.length = _physics(self.name, mass, length)
        self.num_rendered_envs = num_rendered_envs

        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

        self._high = _reset_high(None)
        self.theta: np.ndarray | None = None  # (B,) float64
        self.theta_dot = np.zeros(num_envs, dtype=np.float64)
        self._sin = np.zeros(num_envs, dtype=np.float64)  # sin(theta), computed once per step with the observation
        self.steps = np.zeros(num_envs, dtype=np.int32)
        self.prev_done = np.zeros(num_envs, dtype=np.bool_)
        self.last_u = np.zeros(num_envs, dtype=np.float64)  # (B,) last torques, for rendering
        self._renderer: PygameRenderer | None = None

    def _obs(self) -> np.ndarray:
        self._sin = np.sin(self.theta)  # kept for the next step's dynamics, as the single env does
        obs = np.empty((self.num_envs, 3), dtype=np.float32)
        obs[:, 0] = np.cos(self.theta)  # float64 cos rounded to float32, as in the single env
        obs[:, 1] = self._sin
        obs[:, 2] = self.theta_dot
        return obs

    def _draw_states(self, n: int) -> np.ndarray:
        """``n`` starting states, (n, 2) as ``(theta, theta_dot)`` rows, drawn in sub-environment order."""
        return self.np_random.uniform(low=-self._high, high=self._high, size=(n, 2))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment with its action from ``actions`` of shape ``(num_envs, 1)``."""
        if self.theta is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        a = validate_batch_action(actions, self.single_action_space, self.name, self.num_envs)
        u = np.multiply(a[:, 0], MAX_TORQUE, out=self.last_u)  # (B, 1) -> (B,)
        th, thdot = self.theta, self.theta_dot
        # ContinuousPendulum.step's expression on (B,) arrays. np.float_power calls libm's pow element by element,
        # like the single env's `x ** 2`; np.power and x * x round differently in rare cases.
        costs = np.float_power(angle_normalize(th), 2) + 0.1 * np.float_power(thdot, 2)
        costs += 0.001 * np.float_power(u, 2)
        newthdot = thdot + (3 * self.g / (2 * self.length) * self._sin + 3.0 / (self.mass * self.length**2) * u) * DT
        np.clip(newthdot, -MAX_SPEED, MAX_SPEED, out=newthdot)
        th += newthdot * DT
        self.theta_dot = newthdot
        reward = np.negative(costs, out=costs)

        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        # Next-step autoreset: sub-environments that finished on the previous step start a new episode now.
        if self.prev_done.any():
            done = np.flatnonzero(self.prev_done)  # indices: cheaper than boolean masks for a few of many envs
            states = self._draw_states(len(done))
            self.theta[done], self.theta_dot[done] = states[:, 0], states[:, 1]
            self.steps[done] = 0
            reward[done] = 0.0
            truncated[done] = False
            self.last_u[done] = 0.0
        self.prev_done = truncated.copy()  # not the returned array, which the caller may modify
        return self._obs(), reward, terminated, truncated, {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-environment (bounds from ``options`` as in :meth:`ContinuousPendulum.reset`)."""
        super().reset(seed=seed)
        self._high = _reset_high(options)
        states = self._draw_states(self.num_envs)
        self.theta, self.theta_dot = states[:, 0].copy(), states[:, 1].copy()  # (B, 2) -> 2 x (B,)
        self.steps = np.zeros(self.num_envs, dtype=np.int32)
        self.prev_done = np.zeros(self.num_envs, dtype=np.bool_)
        self.last_u[:] = 0.0
        return self._obs(), {}

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One ``(500, 500, 3)`` uint8 frame for each of the first ``num_rendered_envs`` sub-environments."""
        if self.render_mode is None:
            logger.warn(f"{self.name}: render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        if self.theta is None:
            raise RuntimeError(f"{self.name}: call reset() before render()")
        renderer = self._get_renderer(_SCREEN_DIM, _SCREEN_DIM)
        frames = []
        for i in range(min(self.num_envs, self.num_rendered_envs)):
            draw_pendulum(renderer, float(self.theta[i]), float(self.last_u[i]), self.length)
            frames.append(renderer.present())
        return tuple(frames)

    def close_extras(self, **kwargs: Any) -> None:
        """Release the pygame surfaces."""
        self._close_renderer()


def angle_normalize(x: Any) -> Any:
    """Wrap an angle (a float or an array) into ``[-pi, pi)``, as Pendulum-v1 does."""
    return ((x + np.pi) % (2 * np.pi)) - np.pi


def draw_pendulum(renderer: PygameRenderer, theta: float, torque: float | None, length: float = LENGTH) -> None:
    """Draw Pendulum-v1's picture of angle ``theta`` on ``renderer``'s canvas, with an arc arrow around the pivot
    whose direction and sweep show ``torque`` (N m; ``None`` before the first step) and a label with its value.

    The rod is drawn ``length`` long; the view spans Pendulum-v1's 2.2 m around the pivot, widened for rods longer
    than 1 m so that their tip stays in the picture (the default rod's frames are Pendulum-v1's)."""
    pygame = renderer.pygame
    from pygame import gfxdraw

    canvas = renderer.canvas()
    dim = renderer.width
    scale = dim / (max(2.2, length + 1.2) * 2)
    centre = dim // 2
    centre_y = dim - 1 - centre  # Gymnasium draws y-up around (centre, centre), then flips row y to dim - 1 - y
    rod_length, rod_width = length * scale, 0.2 * scale
    red = (204, 77, 77)

    # Gymnasium draws with y pointing up and flips the image; here each point's y is mirrored instead, so a
    # positive (counter-clockwise) theta turns the rod counter-clockwise on screen.
    angle = theta + math.pi / 2
    left, right, top, bottom = 0.0, rod_length, rod_width / 2, -rod_width / 2
    rod = []
    for corner in [(left, bottom), (left, top), (right, top), (right, bottom)]:
        rotated = pygame.math.Vector2(corner).rotate_rad(angle)
        rod.append((rotated[0] + centre, centre_y - rotated[1]))
    gfxdraw.aapolygon(canvas, rod, red)
    gfxdraw.filled_polygon(canvas, rod, red)
    end = pygame.math.Vector2(rod_length, 0).rotate_rad(angle)
    for x, y in [(centre, centre_y), (int(end[0] + centre), int(centre_y - end[1]))]:
        gfxdraw.aacircle(canvas, x, y, int(rod_width / 2), red)
        gfxdraw.filled_circle(canvas, x, y, int(rod_width / 2), red)

    if torque:  # an arc from the top of the pivot, counter-clockwise for a positive torque
        radius = 0.45 * scale
        sweep = 1.5 * math.pi * min(abs(torque), MAX_TORQUE) / MAX_TORQUE
        start = math.pi / 2
        stop = start + sweep if torque > 0 else start - sweep
        color = (40, 40, 40)
        angles = np.linspace(start, stop, 32)  # a polyline: pygame.draw.arc leaves gaps in thick arcs
        arc = [(centre + radius * math.cos(phi), centre_y - radius * math.sin(phi)) for phi in angles]
        pygame.draw.lines(canvas, color, False, arc, 4)
        tip = (centre + radius * math.cos(stop), centre_y - radius * math.sin(stop))
        direction = 1.0 if torque > 0 else -1.0  # tangent of the arc at its end, in screen coordinates
        tangent = (-math.sin(stop) * direction, -math.cos(stop) * direction)
        normal = (tangent[1], -tangent[0])
        head = [
            (tip[0] + 12 * tangent[0], tip[1] + 12 * tangent[1]),
            (tip[0] + 8 * normal[0], tip[1] + 8 * normal[1]),
            (tip[0] - 8 * normal[0], tip[1] - 8 * normal[1]),
        ]
        pygame.draw.polygon(canvas, color, head)

    axle = int(0.05 * scale)
    gfxdraw.aacircle(canvas, centre, centre_y, axle, (0, 0, 0))
    gfxdraw.filled_circle(canvas, centre, centre_y, axle, (0, 0, 0))
    label = renderer.font().render(f"torque {torque or 0.0:+.2f} N m", True, (0, 0, 0))
    canvas.blit(label, (10, 10))
