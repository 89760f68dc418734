"""The pygame plumbing shared by every environment's ``render()``: a lazily imported pygame, one surface per frame,
shown in a window (``"human"``) or returned as an ``(H, W, 3)`` uint8 array (``"rgb_array"``).

Each environment draws its own picture on :meth:`PygameRenderer.canvas`; this class owns the window, the clock and
the conversion to arrays, so that no environment repeats them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.error import DependencyNotInstalled

RENDER_MODES = ("human", "rgb_array")


def import_pygame() -> Any:
    """Import pygame on first use (rendering is optional for training) with an install hint if it is missing."""
    try:
        import pygame
    except ImportError as exc:  # pragma: no cover - pygame is a core requirement, this guards broken installs
        raise DependencyNotInstalled('pygame is not installed: run `pip install "pygame>=2.5"`') from exc
    return pygame


class PygameRenderer:
    """A drawing surface of ``width`` x ``height`` pixels for one environment.

    Usage inside an environment::

        if self._renderer is None:
            self._renderer = PygameRenderer(600, 400, self.render_mode, self.metadata["render_fps"], "CartPole")
        pygame, canvas = self._renderer.pygame, self._renderer.canvas()
        pygame.draw.rect(canvas, ...)
        return self._renderer.present()
    """

    def __init__(self, width: int, height: int, render_mode: str, fps: int, caption: str = "ca11") -> None:
        if render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
        self.width, self.height, self.render_mode, self.fps = width, height, render_mode, fps
        self.pygame = import_pygame()
        self._window = None
        self._clock = None
        self._canvas = None
        self._caption = caption
        self._font = None

    def canvas(self, background: tuple[int, int, int] = (255, 255, 255)) -> Any:
        """A surface cleared to ``background``, to draw this frame on."""
        if self._canvas is None:
            self._canvas = self.pygame.Surface((self.width, self.height))
        self._canvas.fill(background)
        return self._canvas

    def font(self, size: int = 18) -> Any:
        """A default font for labels (initialises ``pygame.font`` on first use)."""
        if self._font is None:
            self.pygame.font.init()
            self._font = self.pygame.font.Font(None, size)
        return self._font

    def present(self) -> np.ndarray | None:
        """Show the canvas in the window (``"human"``) or return it as an ``(H, W, 3)`` uint8 array."""
        pygame = self.pygame
        if self.render_mode == "human":
            if self._window is None:
                pygame.display.init()  # not pygame.init(): only the display is needed
                pygame.display.set_caption(self._caption)
                self._window = pygame.display.set_mode((self.width, self.height))
                self._clock = pygame.time.Clock()
            self._window.blit(self._canvas, (0, 0))
            pygame.event.pump()
            pygame.display.flip()
            self._clock.tick(self.fps)
            return None
        return np.ascontiguousarray(np.transpose(pygame.surfarray.array3d(self._canvas), (1, 0, 2)))

    def close(self) -> None:
        """Close the window, if one was opened."""
        if self._window is not None:
            self.pygame.display.quit()
            self._window = None


class RendererOwner:
    """Mixin for the environments that draw through a :class:`PygameRenderer` kept in ``self._renderer``: it is made
    on first use, closed with the environment, and left out of pickles (the next ``render()`` makes a new one).

    The class it is mixed into provides ``render_mode``, ``metadata["render_fps"]`` and ``name``.
    """

    _renderer: PygameRenderer | None = None

    def _get_renderer(self, width: int, height: int) -> PygameRenderer:
        if self._renderer is None:
            self._renderer = PygameRenderer(width, height, self.render_mode, self.metadata["render_fps"], self.name)
        return self._renderer

    def _close_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the pygame surfaces."""
        return {**self.__dict__, "_renderer": None}
