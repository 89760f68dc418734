"""Settings for the whole test session (headless pygame, one thread per library: the suite shares 2 cores) and the
fixtures that several test files use."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # "human" rendering opens no window
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame.init() finds no sound card in CI
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch
except ImportError:  # the environment tests do not need torch
    torch = None

if torch is not None:
    torch.set_num_threads(1)


def pytest_configure(config) -> None:  # noqa: ANN001
    config.addinivalue_line("markers", "slow: takes more than ~10 s (deselect with -m 'not slow'); CI runs them all")


@pytest.fixture
def checkpoint_without(tmp_path):
    """``checkpoint_without(saved, name)``: a copy of the checkpoint ``saved`` whose stored constructor arguments lack
    ``name``, as a file written before that argument existed holds them."""
    import json
    import zipfile

    def write(saved, name: str):
        with zipfile.ZipFile(saved) as archive:
            header, payload = json.loads(archive.read("config.json")), archive.read("tensors.safetensors")
        del header["config"]["init_kwargs"][name]
        old = tmp_path / f"without_{name}.zip"
        with zipfile.ZipFile(old, "w") as archive:
            archive.writestr("config.json", json.dumps(header))
            archive.writestr("tensors.safetensors", payload)
        return old

    return write


@pytest.fixture
def mc_max_age_masks_old_returns():
    """``check(agent)``: with ``mc_max_age`` an agent's Monte-Carlo value loss uses only the returns of recent steps
    (for every learner with that argument, after a short ``learn`` in which episodes finished)."""
    import numpy as np

    def check(agent) -> None:
        buffer = agent.replay_buffer
        buffer.data["returns"][:, (buffer.pos - 1) % buffer.size_per_env] = np.nan  # the newest step's episode runs on
        assert "critic/mc_loss" in agent.train()
        agent.mc_max_age = 1  # only the newest step's return may be used, and it is not known yet
        assert "critic/mc_loss" not in agent.train()
        agent.mc_max_age = 10**6  # older than anything stored: the same as all
        assert "critic/mc_loss" in agent.train()

    return check
