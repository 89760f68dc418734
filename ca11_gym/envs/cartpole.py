"""Cart-pole with a continuous force: Gymnasium's CartPole-v1, driven by a force in [-10, 10] N."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import Env, logger, spaces
from gymnasium.envs.classic_control import utils as cc_utils
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ca11_gym.envs.utils import (
    check_num_envs,
    check_positive_int,
    check_range,
    check_render_mode,
    validate_batch_action,
    validate_scalar_action,
)
from ca11_gym.rendering import PygameRenderer, RendererOwner

# CartPole-v1's constants (gymnasium/envs/classic_control/cartpole.py), computed the same way so every float matches.
GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_POLE + MASS_CART
HALF_LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE_MAG = 10.0
TAU = 0.02  # seconds between state updates
THETA_THRESHOLD = 12 * 2 * math.pi / 360  # 12 degrees
X_THRESHOLD = 2.4

_OBS_HIGH = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
_SCREEN_WIDTH, _SCREEN_HEIGHT = 600, 400


class CartPolePhysics:
    """CartPole-v1's physical constants, checked against their documented ranges; the derived ones are computed as
    CartPole-v1 computes them, so the defaults give its floats exactly."""

    def __init__(self, env_name: str, gravity: float, masscart: float, masspole: float, length: float) -> None:
        self.gravity = check_range(env_name, "gravity", gravity, 1.0, 30.0)
        self.masscart = check_range(env_name, "masscart", masscart, 0.1, 10.0)
        self.masspole = check_range(env_name, "masspole", masspole, 0.01, 5.0)
        self.length = check_range(env_name, "length", length, 0.05, 5.0)
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


class ContinuousCartPole(RendererOwner, Env[np.ndarray, np.ndarray]):
    """
    ## Description

    Gymnasium's `CartPole-v1` (Barto, Sutton and Anderson, ["Neuronlike Adaptive Elements That Can Solve Difficult
    Learning Control Problem"](https://ieeexplore.ieee.org/document/6313077)) with a continuous action: a pole is
    attached by an un-actuated joint to a cart on a frictionless track, and the agent pushes the cart with a force of
    its choosing to keep the pole upright.

    The physics, starting states, rewards and terminations are CartPole-v1's, float for float: with the same seed,
    actions `+1` / `-1` here give exactly the trajectory that actions `1` / `0` give in `CartPole-v1`.

    ## Action Space

    An `ndarray` of shape `(1,)` and dtype `float32` in `[-1, 1]`, scaled to a horizontal force `F = 10 * a` newtons.

    | Num | Action                        | Min  | Max |
    |-----|-------------------------------|------|-----|
    | 0   | Force on the cart (x 10 N)    | -1.0 | 1.0 |

    Finite values outside `[-1, 1]` are clipped into it. NaN, infinite, non-numeric or wrongly shaped actions raise
    a `ValueError` naming the environment and the expected shape `(1,)`.

    ## Observation Space

    An `ndarray` of shape `(4,)` and dtype `float32`:

    | Num | Observation           | Min                 | Max               |
    |-----|-----------------------|---------------------|-------------------|
    | 0   | Cart Position         | -4.8                | 4.8               |
    | 1   | Cart Velocity         | -Inf                | Inf               |
    | 2   | Pole Angle            | ~ -0.418 rad (-24°) | ~ 0.418 rad (24°) |
    | 3   | Pole Angular Velocity | -Inf                | Inf               |

    The episode terminates well inside these bounds: when the cart leaves `(-2.4, 2.4)` or the pole leaves `±12°`.

    ## Rewards

    `+1` for every step, the terminating step included. Steps taken after termination (undefined behaviour, warned
    about once) give `0`. With `sutton_barto_reward=True`: `0` per non-terminating step and `-1` on termination and
    after it.

    ## Starting State

    All four state variables are drawn uniformly from `(-0.05, 0.05)`; `reset(options={"low": ..., "high": ...})`
    changes the bounds.

    ## Episode End

    1. Termination: the pole angle leaves `±12°`.
    2. Termination: the cart position leaves `±2.4` (the cart's centre reaches the edge of the display).
    3. Truncation: 500 steps, from the `TimeLimit` that `gym.make("CA11/ContinuousCartPole-v0")` adds.

    ## Arguments

    | Parameter             | Type            | Default | Description                                           |
    |-----------------------|-----------------|---------|-------------------------------------------------------|
    | `sutton_barto_reward` | `bool`          | `False` | reward `0` per step and `-1` on termination           |
    | `render_mode`         | `str` or `None` | `None`  | `"human"` (a pygame window) or `"rgb_array"`          |
    | `gravity`             | `float`         | `9.8`   | acceleration of gravity (m s^-2), in `[1, 30]`        |
    | `masscart`            | `float`         | `1.0`   | mass of the cart (kg), in `[0.1, 10]`                 |
    | `masspole`            | `float`         | `0.1`   | mass of the pole (kg), in `[0.01, 5]`                 |
    | `length`              | `float`         | `0.5`   | *half* the pole's length (m), in `[0.05, 5]`          |

    The physics constants carry CartPole-v1's attribute names (fixed there); changing them makes the variants on
    which adaptation to changed dynamics is measured (`benchmarks/adaptation.py`). At the defaults every float is
    CartPole-v1's.

    ```python
    >>> import gymnasium as gym
    >>> import ca11_gym
    >>> env = gym.make("CA11/ContinuousCartPole-v0", render_mode="rgb_array")
    >>> obs, info = env.reset(seed=0)

    ```

    The frames draw the cart, the pole and an arrow whose direction and length show the applied force.
    `ContinuousCartPoleVectorEnv` (`gym.make_vec(..., vectorization_mode="vector_entry_point")`) runs many copies
    with numpy.

    ## Version History

    * v0: Initial release: CartPole-v1's dynamics, reset distribution, reward and termination, force `10 * a`.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 50}
    name: str = "ContinuousCartPole"

    def __init__(
        self,
        sutton_barto_reward: bool = False,
        render_mode: str | None = None,
        gravity: float = GRAVITY,
        masscart: float = MASS_CART,
        masspole: float = MASS_POLE,
        length: float = HALF_LENGTH,
    ) -> None:
        check_render_mode(self.name, render_mode, self.metadata["render_modes"])
        self.physics = CartPolePhysics(self.name, gravity, masscart, masspole, length)
        self.sutton_barto_reward = sutton_barto_reward
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)
        # Python floats, not a numpy array: scalar numpy arithmetic is what makes CartPole-v1's step slow, and
        # float64 arithmetic gives the same bits either way.
        self._state: tuple[float, float, float, float] | None = None
        self._force = 0.0  # last applied force, for rendering
        self.steps_beyond_terminated: int | None = None
        self._renderer: PygameRenderer | None = None

    @property
    def state(self) -> np.ndarray | None:
        """The physical state ``(x, x_dot, theta, theta_dot)`` in float64; assignable, e.g. to plan from a state."""
        return None if self._state is None else np.array(self._state, dtype=np.float64)

    @state.setter
    def state(self, value: np.ndarray) -> None:
        values = np.asarray(value, dtype=np.float64)
        if values.shape != (4,):
            raise ValueError(f"{self.name}: the state must have shape (4,), got {values.shape}")
        self._state = tuple(values.tolist())

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Push the cart with ``10 * action`` newtons for 0.02 s (one Euler step of CartPole-v1's equations)."""
        if self._state is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        force = FORCE_MAG * validate_scalar_action(action, self.action_space, self.name)
        self._force = force
        x, x_dot, theta, theta_dot = self._state
        # np.cos/np.sin rather than math.cos/sin: CartPole-v1 uses numpy's, and libm may round differently.
        costheta = float(np.cos(theta))
        sintheta = float(np.sin(theta))

        # Same operations in the same order as CartPole-v1, see https://coneural.org/florian/papers/05_cart_pole.pdf
        p = self.physics
        temp = (force + p.polemass_length * (theta_dot * theta_dot) * sintheta) / p.total_mass
        thetaacc = (p.gravity * sintheta - costheta * temp) / (
            p.length * (4.0 / 3.0 - p.masspole * (costheta * costheta) / p.total_mass)
        )
        xacc = temp - p.polemass_length * thetaacc * costheta / p.total_mass
        x = x + TAU * x_dot
        x_dot = x_dot + TAU * xacc
        theta = theta + TAU * theta_dot
        theta_dot = theta_dot + TAU * thetaacc
        self._state = (x, x_dot, theta, theta_dot)

        terminated = x < -X_THRESHOLD or x > X_THRESHOLD or theta < -THETA_THRESHOLD or theta > THETA_THRESHOLD
        if not terminated:
            reward = 0.0 if self.sutton_barto_reward else 1.0
        elif self.steps_beyond_terminated is None:  # the pole just fell
            self.steps_beyond_terminated = 0
            reward = -1.0 if self.sutton_barto_reward else 1.0
        else:
            if self.steps_beyond_terminated == 0:
                logger.warn(
                    f"{self.name}: step() called after the episode terminated; call reset() once terminated=True "
                    "-- any further steps are undefined behavior."
                )
            self.steps_beyond_terminated += 1
            reward = -1.0 if self.sutton_barto_reward else 0.0

        if self.render_mode == "human":
            self.render()
        # truncated is always False: the time limit comes from the TimeLimit wrapper added by gym.make.
        return np.array(self._state, dtype=np.float32), reward, terminated, False, {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw each state variable uniformly from ``(low, high)``: ``(-0.05, 0.05)`` unless ``options`` give them."""
        super().reset(seed=seed)
        low, high = cc_utils.maybe_parse_reset_bounds(options, -0.05, 0.05)
        self._state = tuple(self.np_random.uniform(low=low, high=high, size=(4,)).tolist())
        self.steps_beyond_terminated = None
        self._force = 0.0
        if self.render_mode == "human":
            self.render()
        return np.array(self._state, dtype=np.float32), {}

    def render(self) -> np.ndarray | None:
        """Draw the cart, the pole and the applied force; see ``render_mode``."""
        if self.render_mode is None:
            logger.warn(f"{self.name}: render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        if self._state is None:
            raise RuntimeError(f"{self.name}: call reset() before render()")
        renderer = self._get_renderer(_SCREEN_WIDTH, _SCREEN_HEIGHT)
        draw_cartpole(renderer, self._state[0], self._state[2], self._force, self.physics.length)
        return renderer.present()

    def close(self) -> None:
        """Close the window, if one was opened."""
        self._close_renderer()


class ContinuousCartPoleVectorEnv(RendererOwner, VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` copies of :class:`ContinuousCartPole` stepped together with numpy (Gymnasium's
    ``CartPoleVectorEnv`` pattern).

    Each sub-environment follows :class:`ContinuousCartPole`'s dynamics, rewards and terminations float for float;
    the time limit (``max_episode_steps``, which ``gym.make_vec`` passes from the registration) is applied here as
    truncation, and finished sub-environments reset on the following step (``AutoresetMode.NEXT_STEP``: that step
    returns the new first observation, reward 0 and ``terminated = truncated = False``, and ignores its action).

    Seeding: all sub-environments draw from one generator, in sub-environment order. ``reset(seed=s)`` therefore
    gives sub-environment ``i`` the starting state a single ``ContinuousCartPole`` has after ``reset(seed=s)``
    followed by ``i`` more ``reset()`` calls; with ``num_envs=1`` the whole run, autoresets included, equals a
    single environment that is reset whenever it terminates or truncates.

    Args:
        num_envs: number of sub-environments.
        max_episode_steps: steps after which a sub-environment is truncated.
        render_mode: ``"rgb_array"``: ``render()`` returns one frame per rendered sub-environment.
        sutton_barto_reward: as in :class:`ContinuousCartPole`.
        gravity, masscart, masspole, length: the physics, as in :class:`ContinuousCartPole`.
        num_rendered_envs: how many sub-environments (the first ones) ``render()`` draws.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50, "autoreset_mode": AutoresetMode.NEXT_STEP}
    name: str = "ContinuousCartPoleVectorEnv"

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = 500,
        render_mode: str | None = None,
        sutton_barto_reward: bool = False,
        num_rendered_envs: int = 4,
        gravity: float = GRAVITY,
        masscart: float = MASS_CART,
        masspole: float = MASS_POLE,
        length: float = HALF_LENGTH,
    ) -> None:
        check_num_envs(self.name, num_envs)
        self.physics = CartPolePhysics(self.name, gravity, masscart, masspole, length)
        check_render_mode(self.name, render_mode, self.metadata["render_modes"])
        self.num_envs = num_envs
        self.max_episode_steps = check_positive_int(self.name, "max_episode_steps", max_episode_steps)
        self.render_mode = render_mode
        self.sutton_barto_reward = sutton_barto_reward
        self.num_rendered_envs = num_rendered_envs

        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

        self.low, self.high = -0.05, 0.05
        # (4, B): one contiguous row per state variable keeps the batched arithmetic on contiguous memory.
        self.state: np.ndarray | None = None
        self.steps = np.zeros(num_envs, dtype=np.int32)
        self.prev_done = np.zeros(num_envs, dtype=np.bool_)
        self._force = np.zeros(num_envs, dtype=np.float64)
        self._renderer: PygameRenderer | None = None

    def _draw_states(self, n: int) -> np.ndarray:
        """``n`` starting states, (4, n), drawn in sub-environment order (one row of 4 per sub-environment)."""
        return self.np_random.uniform(low=self.low, high=self.high, size=(n, 4)).T  # (n, 4) -> (4, n)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment with its action from ``actions`` of shape ``(num_envs, 1)``."""
        if self.state is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        a = validate_batch_action(actions, self.single_action_space, self.name, self.num_envs)
        force = np.multiply(a[:, 0], FORCE_MAG, out=self._force)  # (B, 1) -> (B,)
        x, x_dot, theta, theta_dot = self.state
        costheta = np.cos(theta)
        sintheta = np.sin(theta)

        # ContinuousCartPole.step's expression, operation for operation, on (B,) arrays.
        p = self.physics
        temp = (force + p.polemass_length * (theta_dot * theta_dot) * sintheta) / p.total_mass
        thetaacc = (p.gravity * sintheta - costheta * temp) / (
            p.length * (4.0 / 3.0 - p.masspole * (costheta * costheta) / p.total_mass)
        )
        xacc = temp - p.polemass_length * thetaacc * costheta / p.total_mass
        # In place, in this order: each update reads only variables not yet updated (x reads x_dot, ...).
        x += TAU * x_dot
        x_dot += TAU * xacc
        theta += TAU * theta_dot
        theta_dot += TAU * thetaacc

        terminated = (np.abs(x) > X_THRESHOLD) | (np.abs(theta) > THETA_THRESHOLD)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        if self.sutton_barto_reward:
            reward = np.where(terminated, -1.0, 0.0)
        else:
            reward = np.ones(self.num_envs, dtype=np.float64)

        # Next-step autoreset: sub-environments that finished on the previous step start a new episode now.
        if self.prev_done.any():
            done = np.flatnonzero(self.prev_done)  # indices: cheaper than boolean masks for a few of many envs
            self.state[:, done] = self._draw_states(len(done))
            self.steps[done] = 0
            reward[done] = 0.0
            terminated[done] = False
            truncated[done] = False
            self._force[done] = 0.0
        self.prev_done = terminated | truncated
        obs = np.ascontiguousarray(self.state.T, dtype=np.float32)  # (4, B) -> (B, 4)
        return obs, reward, terminated, truncated, {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-environment (bounds from ``options`` as in :meth:`ContinuousCartPole.reset`)."""
        super().reset(seed=seed)
        self.low, self.high = cc_utils.maybe_parse_reset_bounds(options, -0.05, 0.05)
        self.state = np.ascontiguousarray(self._draw_states(self.num_envs))
        self.steps = np.zeros(self.num_envs, dtype=np.int32)
        self.prev_done = np.zeros(self.num_envs, dtype=np.bool_)
        self._force[:] = 0.0
        return np.ascontiguousarray(self.state.T, dtype=np.float32), {}  # (4, B) -> (B, 4)

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One ``(400, 600, 3)`` uint8 frame for each of the first ``num_rendered_envs`` sub-environments."""
        if self.render_mode is None:
            logger.warn(f"{self.name}: render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        if self.state is None:
            raise RuntimeError(f"{self.name}: call reset() before render()")
        renderer = self._get_renderer(_SCREEN_WIDTH, _SCREEN_HEIGHT)
        frames = []
        for i in range(min(self.num_envs, self.num_rendered_envs)):
            draw_cartpole(
                renderer, float(self.state[0, i]), float(self.state[2, i]), float(self._force[i]), self.physics.length
            )
            frames.append(renderer.present())
        return tuple(frames)

    def close_extras(self, **kwargs: Any) -> None:
        """Release the pygame surfaces."""
        self._close_renderer()


def draw_cartpole(
    renderer: PygameRenderer, x: float, theta: float, force: float, half_length: float = HALF_LENGTH
) -> None:
    """Draw CartPole-v1's picture of cart position ``x`` and pole angle ``theta`` on ``renderer``'s canvas, with an
    arrow from the cart showing the direction and size of ``force`` (newtons) and a label with its value."""
    pygame = renderer.pygame
    from pygame import gfxdraw

    canvas = renderer.canvas()
    width, height = renderer.width, renderer.height
    scale = width / (X_THRESHOLD * 2)
    pole_width, pole_len = 10.0, scale * (2 * half_length)
    cart_width, cart_height = 50.0, 30.0
    cart_x = x * scale + width / 2.0
    cart_y = 100.0  # height of the cart's centre above the bottom edge
    axle_y = cart_y + cart_height / 4.0

    def to_screen(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """Gymnasium draws with y pointing up, then flips the image (row y becomes row height - 1 - y)."""
        return [(px, height - 1 - py) for px, py in points]

    left, right, top, bottom = -cart_width / 2, cart_width / 2, cart_height / 2, -cart_height / 2
    corners = [(left, bottom), (left, top), (right, top), (right, bottom)]
    cart = to_screen([(cart_x + px, cart_y + py) for px, py in corners])
    gfxdraw.aapolygon(canvas, cart, (0, 0, 0))
    gfxdraw.filled_polygon(canvas, cart, (0, 0, 0))

    left, right, top, bottom = -pole_width / 2, pole_width / 2, pole_len - pole_width / 2, -pole_width / 2
    pole = []
    for corner in [(left, bottom), (left, top), (right, top), (right, bottom)]:
        rotated = pygame.math.Vector2(corner).rotate_rad(-theta)
        pole.append((rotated[0] + cart_x, rotated[1] + axle_y))
    pole = to_screen(pole)
    gfxdraw.aapolygon(canvas, pole, (202, 152, 101))
    gfxdraw.filled_polygon(canvas, pole, (202, 152, 101))
    axle = (int(cart_x), int(height - 1 - axle_y))
    gfxdraw.aacircle(canvas, *axle, int(pole_width / 2), (129, 132, 203))
    gfxdraw.filled_circle(canvas, *axle, int(pole_width / 2), (129, 132, 203))
    gfxdraw.hline(canvas, 0, width, int(height - 1 - cart_y), (0, 0, 0))

    if force != 0.0:  # the arrow starts at the side of the cart the force pushes from
        direction = 1.0 if force > 0 else -1.0
        length = 80.0 * abs(force) / FORCE_MAG
        start = cart_x - direction * (cart_width / 2 + 4 + length)
        end = cart_x - direction * (cart_width / 2 + 4)
        y = height - 1 - cart_y
        color = (220, 60, 60)
        pygame.draw.line(canvas, color, (start, y), (end - direction * 8, y), 5)
        pygame.draw.polygon(canvas, color, [(end, y), (end - direction * 12, y - 8), (end - direction * 12, y + 8)])
    label = renderer.font().render(f"force {force:+5.1f} N", True, (0, 0, 0))
    canvas.blit(label, (10, 10))
