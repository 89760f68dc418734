"""Keyboard play: the key mapping and the command line (no window is opened here)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ca11_gym
from ca11_gym.play import build_parser, keys_to_action, main, noop_action


@pytest.mark.parametrize("env_id", ca11_gym.ENV_IDS)
def test_keys_map_to_valid_actions(env_id: str) -> None:
    pygame = pytest.importorskip("pygame")
    space = gym.make(env_id).action_space
    mapping = keys_to_action(space)
    assert all(action in space for action in mapping.values())
    assert mapping[(pygame.K_LEFT,)][0] == -1.0 and mapping[(pygame.K_RIGHT,)][0] == 1.0
    assert mapping[(pygame.K_DOWN,)][0] == 0.0
    np.testing.assert_array_equal(noop_action(space), np.zeros((1,), dtype=np.float32))
    assert noop_action(space) in space


def test_mapping_rejects_action_spaces_it_cannot_play() -> None:
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        keys_to_action(gym.spaces.Box(-1, 1, (2,)))
    with pytest.raises(ValueError, match="Box"):
        noop_action(gym.spaces.Discrete(2))


def test_command_line() -> None:
    args = build_parser().parse_args(["CA11/ContinuousPendulum-v0", "--seed", "3", "--fps", "20"])
    assert (args.env_id, args.seed, args.fps, args.zoom) == ("CA11/ContinuousPendulum-v0", 3, 20, None)
    with pytest.raises(SystemExit) as unknown:
        main(["Pendulum-v1"])  # only the ca11 ids are playable
    assert unknown.value.code == 2


def test_help_lists_every_id_and_the_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert all(env_id in text for env_id in ca11_gym.ENV_IDS)
    assert "left/right arrows" in text and "Escape" in text
