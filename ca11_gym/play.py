"""Play a ca11 environment with the keyboard in a pygame window.

Usage::

    python -m ca11_gym.play CA11/ContinuousPendulum-v0 [--seed 0] [--fps 30] [--zoom 1.5]

Keys (every environment has one action in ``[-1, 1]``):

==================  ===========================================================
left / right arrow  action -1 / +1 (full force or torque; cue -1 / +1 to recall)
a / d               action -0.5 / +0.5
down arrow          action 0
no key              action 0 (the sequence task waits for a key instead)
Escape              quit (closing the window also quits)
==================  ===========================================================

Built on :func:`gymnasium.utils.play.play`, which steps the environment at ``--fps`` while showing its
``rgb_array`` frames.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

import ca11_gym
from ca11_gym.rendering import import_pygame

#: Key name (a pygame ``K_*`` constant without the prefix) -> action value, the table in the module docstring.
KEY_VALUES: dict[str, float] = {"LEFT": -1.0, "RIGHT": 1.0, "a": -0.5, "d": 0.5, "DOWN": 0.0}

#: Environments played turn by turn: the episode advances only while a key is held (the sequence task is a
#: memory test, not a reflex game).
TURN_BASED_IDS = frozenset({"CA11/SequenceEnvironment-v0"})


def _constant_action(action_space: spaces.Box, value: float) -> np.ndarray:
    if not isinstance(action_space, spaces.Box) or action_space.shape != (1,):
        raise ValueError(f"keyboard play needs a Box action space of shape (1,), got {action_space}")
    return np.full(action_space.shape, value, dtype=action_space.dtype)


def keys_to_action(action_space: spaces.Box) -> dict[tuple[int, ...], np.ndarray]:
    """The keyboard mapping for :func:`gymnasium.utils.play.play`: pygame key codes -> actions of ``action_space``."""
    pygame = import_pygame()
    return {(getattr(pygame, f"K_{key}"),): _constant_action(action_space, value) for key, value in KEY_VALUES.items()}


def noop_action(action_space: spaces.Box) -> np.ndarray:
    """The action taken when no mapped key is pressed: 0 (no force, no torque, no guess)."""
    return _constant_action(action_space, 0.0)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m ca11_gym.play``."""
    parser = argparse.ArgumentParser(
        prog="python -m ca11_gym.play",
        description="Play a ca11 environment with the keyboard in a pygame window.",
        epilog="Keys: left/right arrows = action -1/+1, a/d = -0.5/+0.5, down = 0, no key = 0, Escape quits. "
        f"The {', '.join(sorted(TURN_BASED_IDS))} task advances only while a key is held.",
    )
    ids = ", ".join(ca11_gym.ENV_IDS)
    parser.add_argument("env_id", choices=ca11_gym.ENV_IDS, metavar="ENV_ID", help=f"one of {ids}")
    parser.add_argument("--seed", type=int, default=None, help="seed of every reset (default: random)")
    parser.add_argument("--fps", type=int, default=None, help="steps per second (default: the env's render_fps)")
    parser.add_argument("--zoom", type=float, default=None, help="scale the window by this factor")
    return parser


def play_env(env_id: str, seed: int | None = None, fps: int | None = None, zoom: float | None = None) -> None:
    """Open a window and play ``env_id`` until the window is closed or Escape is pressed."""
    import gymnasium as gym

    # Imported here, not at module level: gymnasium.utils.play switches matplotlib to the TkAgg backend on import.
    from gymnasium.utils.play import play

    env = gym.make(env_id, render_mode="rgb_array")
    try:
        play(
            env,
            fps=fps,
            zoom=zoom,
            seed=seed,
            keys_to_action=keys_to_action(env.action_space),
            noop=noop_action(env.action_space),
            wait_on_player=env_id in TURN_BASED_IDS,
        )
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ca11_gym.play``; returns the exit status."""
    args = build_parser().parse_args(argv)
    play_env(args.env_id, seed=args.seed, fps=args.fps, zoom=args.zoom)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
