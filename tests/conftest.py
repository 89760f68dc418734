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
