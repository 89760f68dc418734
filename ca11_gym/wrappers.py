"""Wrappers Gymnasium lacks: 64x64 pixel observations from an env's renderer, and action repeat by that name.

Everything else a model-based RL pipeline needs is in Gymnasium; use it rather than a copy::

    import gymnasium as gym
    import numpy as np
    from gymnasium import wrappers as gw

    env = gw.RescaleAction(env, min_action=-1.0, max_action=1.0)  # [-1, 1] learner actions to the env's bounds
    env = gw.ClipAction(env)                                       # clip actions into the action space
    env = gw.TimeLimit(env, max_episode_steps=200)                 # truncate episodes (or register(max_episode_steps))
    env = gw.RecordEpisodeStatistics(env)                          # info["episode"] = {"r": return, "l": length, ...}
    env = gw.RecordVideo(env, "videos", episode_trigger=lambda e: e % 10 == 0)  # needs render_mode="rgb_array"
    env = gw.NormalizeObservation(env)                             # running mean/std of observations
    env = gw.NormalizeReward(env, gamma=0.99)                      # running scale of discounted returns
    env = gw.FrameStackObservation(env, stack_size=4)              # the last 4 observations, stacked
    env = gw.TimeAwareObservation(env)                             # append the elapsed time to the observation
    env = gw.FlattenObservation(env)                               # Dict/Tuple observations to one flat Box
    env = gw.DtypeObservation(env, np.float32)                     # cast observations
    env = gw.GrayscaleObservation(env)                             # RGB image observations to grey
    env = gw.AddRenderObservation(env, render_only=True)           # full-size rendered frames as observations
    env = gw.RepeatAction(env, num_repeats=4)                      # what ActionRepeat wraps (Gymnasium >= 1.3)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)       # and gym.wrappers.vector.* for vector envs

What is here, and why Gymnasium's own does not suffice:

- :class:`PixelObservation`: Dreamer-style ``(64, 64, 3)`` uint8 image observations. Gymnasium's
  ``AddRenderObservation`` returns frames at the renderer's size (600x400, 500x500, 600x260 here); its only resizer,
  ``ResizeObservation``, needs OpenCV (not a dependency of ours) and accepts only ``Box`` spaces, so it cannot
  resize the ``"pixels"`` entry of the ``{"pixels", "state"}`` dictionary. ``AddRenderObservation`` also keeps
  lambdas, so a wrapped env cannot be pickled; this wrapper resizes with pygame (already required) and pickles.
- :class:`ActionRepeat`: Gymnasium's ``RepeatAction`` under the name and argument (``repeat``) that world-model
  code uses; the only addition is a ``ValueError`` for any invalid ``repeat``.
"""

from __future__ import annotations

import numbers
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import RepeatAction

from ca11_gym.rendering import import_pygame

__all__ = ["ActionRepeat", "PixelObservation", "resize_frame"]


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``(H, W, 3)`` uint8 frame to ``(size, size, 3)`` with pygame's area-averaging ``smoothscale``.

    The aspect ratio is not kept (a 600x400 frame is squeezed to a square), as in DreamerV3's 64x64 inputs: a
    convolutional encoder only needs every frame squeezed the same way.
    """
    if frame.shape[:2] == (size, size):
        return frame
    pygame = import_pygame()
    surface = pygame.surfarray.make_surface(np.transpose(frame, (1, 0, 2)))  # (H, W, 3) -> pygame's (W, H, 3)
    scaled = pygame.transform.smoothscale(surface, (size, size))
    return np.ascontiguousarray(np.transpose(pygame.surfarray.array3d(scaled), (1, 0, 2)))  # (W, H, 3) -> (H, W, 3)


class PixelObservation(gym.ObservationWrapper[Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Replace observations by the env's rendered frame, resized to ``(size, size, 3)`` uint8.

    With ``include_state=True`` the observation is ``{"pixels": frame, "state": original observation}`` in a
    ``Dict`` space (the keys of Gymnasium's ``AddRenderObservation``). The env's ``render()`` is left untouched,
    so ``RecordVideo`` on top still records full-size frames.

    Example::

        env = PixelObservation(gym.make("CA11/ContinuousPendulum-v0", render_mode="rgb_array"))
        obs, _ = env.reset(seed=0)  # obs.shape == (64, 64, 3), obs.dtype == uint8

    Args:
        env: an environment built with ``render_mode="rgb_array"``.
        size: side of the square image, in pixels.
        include_state: also return the original observation, under ``"state"``.

    Raises:
        ValueError: if the env's ``render_mode`` is not ``"rgb_array"`` or ``size`` is not a positive integer.
    """

    def __init__(self, env: gym.Env, size: int = 64, include_state: bool = False) -> None:
        if env.render_mode != "rgb_array":
            raise ValueError(
                f"PixelObservation needs frames from the env's renderer: build it with render_mode='rgb_array', "
                f"got render_mode={env.render_mode!r}"
            )
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"PixelObservation: size must be a positive integer, got {size!r}")
        gym.utils.RecordConstructorArgs.__init__(self, size=size, include_state=include_state)
        gym.ObservationWrapper.__init__(self, env)
        self.size, self.include_state = int(size), bool(include_state)
        pixels = spaces.Box(0, 255, shape=(self.size, self.size, 3), dtype=np.uint8)
        self.observation_space = (
            spaces.Dict({"pixels": pixels, "state": env.observation_space}) if include_state else pixels
        )

    def observation(self, observation: Any) -> np.ndarray | dict[str, Any]:
        """The current frame (the env has already stepped), resized, with the original observation if asked."""
        frame = self.env.render()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"PixelObservation: the env's render() must return an (H, W, 3) array, got {frame!r:.80}")
        pixels = resize_frame(frame.astype(np.uint8, copy=False), self.size)
        return {"pixels": pixels, "state": observation} if self.include_state else pixels


class ActionRepeat(RepeatAction, gym.utils.RecordConstructorArgs):
    """Repeat each action ``repeat`` times, summing the rewards; stop early when the episode ends.

    Gymnasium's ``RepeatAction`` (the returned observation and info are the last step's); ``ActionRepeat(env, 1)``
    changes nothing. World models such as PlaNet and Dreamer use ``repeat=2`` on control tasks so that an imagined
    step covers more time.

    Args:
        env: the environment to wrap.
        repeat: how many times each action is applied, at least 1.

    Raises:
        ValueError: if ``repeat`` is not an integer of at least 1.
    """

    def __init__(self, env: gym.Env, repeat: int) -> None:
        if isinstance(repeat, bool) or not isinstance(repeat, numbers.Integral) or repeat < 1:
            raise ValueError(f"ActionRepeat: repeat must be an integer >= 1, got {repeat!r}")
        # Recorded first (the first record wins) so that gym.make(env.spec) rebuilds it with ``repeat=``.
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        RepeatAction.__init__(self, env, num_repeats=int(repeat))
        self.repeat = int(repeat)
