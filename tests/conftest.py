"""Settings for the whole test session: headless pygame, and one thread per library (the suite shares 2 cores)."""

from __future__ import annotations

import os

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
