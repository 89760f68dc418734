"""Watching a trained learner: deterministic episodes (``ca11 eval``), rendered to a window or to a video file
(``ca11 render``), and the one video writer of the suite (:func:`write_video`: GIF on the core install, MP4 through
imageio's ffmpeg plugin).

Episodes follow SB3's recurrent ``predict`` convention (the state passed back, ``episode_start`` true on the first
step only), so recurrent learners (Dreamer, the RSSM planner, RecurrentPPO) keep their memory through an episode.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # rgb_array rendering needs no window

#: Video containers :func:`write_video` writes.
VIDEO_SUFFIXES = (".gif", ".mp4")


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float) -> int:
    """Write ``(H, W, 3)`` uint8 ``frames`` (any iterable: they are streamed, not held) to ``path``: ``.gif``
    (imageio's pillow plugin, core install) or ``.mp4`` (H.264 through the ``imageio-ffmpeg`` package:
    ``pip install "ca11[video]"``). Returns the number of frames written.

    A GIF merges identical consecutive frames into one longer frame (Pillow), so it plays for as long, with fewer
    frames; an MP4 keeps every frame."""
    import imageio.v2 as imageio
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"video file {path} must end in {' or '.join(VIDEO_SUFFIXES)}")
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ValueError(f"writing {path.name} needs imageio's ffmpeg plugin: pip install \"ca11[video]\" (or "
                         "pip install imageio-ffmpeg); or write a .gif")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        writer = iio.imopen(path, "w", plugin="pillow", extension=".gif")
        append = lambda frame: writer.write(frame, duration=1000 / fps, loop=0, is_batch=False)  # noqa: E731
    else:
        writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", macro_block_size=1)
        append = writer.append_data
    count = 0
    with writer:
        for frame in frames:
            if suffix == ".mp4":  # H.264 in yuv420p needs even sides
                frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), constant_values=255)
            append(frame)
            count += 1
    if count == 0:
        path.unlink(missing_ok=True)
        raise ValueError(f"no frames to write to {path}")
    return count


def observation_transform(run: Any) -> Callable[[Any], Any] | None:
    """How a run's learner sees observations: VecNormalize's normalisation for the baselines trained with it (with
    the statistics saved beside the loaded checkpoint: best_model.zip's or last.zip's), else ``None``."""
    from ca11_agents.experiments.runs import BEST, BEST_STATISTICS, STATISTICS, make_envs

    normalize = run.state.get("hyperparams", {}).get("normalize")
    if not normalize:
        return None
    best = run.checkpoint is not None and run.checkpoint.name == BEST and (run.path / BEST_STATISTICS).is_file()
    statistics = run.path / (BEST_STATISTICS if best else STATISTICS)
    if not statistics.is_file():
        raise ValueError(f"{run.path} was trained with VecNormalize but has no {statistics.name}")
    _, eval_env = make_envs(run.config, 1, normalize if isinstance(normalize, dict) else {}, statistics)
    return eval_env.normalize_obs


def make_env(run: Any, render_mode: str | None = None) -> Any:
    """One env of the run's task (``gym.make`` with the run's kwargs), checked against the learner's spaces."""
    import gymnasium as gym

    from benchmarks.tasks import import_env_packages
    from ca11_agents.world_models.encoders import channel_first_space

    import_env_packages()
    env = gym.make(run.config.env.id, render_mode=render_mode, **run.config.env.kwargs)
    if run.model.observation_space not in (env.observation_space, channel_first_space(env.observation_space)):
        env.close()
        raise ValueError(f"the run's learner observes {run.model.observation_space}, but {run.config.env.id} "
                         f"gives {env.observation_space}")  # fmt: skip
    return env


def run_episode(agent: Any, env: Any, seed: int, transform: Callable[[Any], Any] | None = None,
                frames: list[np.ndarray] | None = None) -> tuple[float, int]:  # fmt: skip
    """One deterministic episode; returns ``(return, steps)``; appends every rendered frame to ``frames``."""
    for frame, outcome in _episode(agent, env, seed, transform, render=frames is not None):
        if frames is not None:
            frames.append(frame)
    return outcome["return"], outcome["steps"]


def evaluate_run(run: Any, episodes: int = 10, seed: int = 0) -> list[dict[str, Any]]:
    """``episodes`` deterministic episodes of a loaded run (episode ``i`` reset with ``seed + i``)."""
    env, transform = make_env(run), observation_transform(run)
    try:
        results = []
        for i in range(episodes):
            episode_return, steps = run_episode(run.model, env, seed + i, transform)
            results.append({"episode": i, "seed": seed + i, "return": episode_return, "steps": steps})
        return results
    finally:
        env.close()


def render_run(run: Any, episodes: int = 1, seed: int = 0, video: str | os.PathLike | None = None,
               frame_skip: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    """Play ``episodes`` deterministic episodes in a pygame window, or, with ``video``, into that file (every
    episode one after the other, frames streamed to the file as they are rendered; a GIF keeps every
    ``frame_skip``-th frame at the same speed)."""
    env, transform = make_env(run, "rgb_array" if video is not None else "human"), observation_transform(run)
    fps = env.metadata.get("render_fps", 30)
    results: list[dict[str, Any]] = []

    def play(frames: list[np.ndarray] | None) -> Iterator[np.ndarray]:
        for i in range(episodes):
            episode = _episode(run.model, env, seed + i, transform)
            for t, (frame, outcome) in enumerate(episode):
                if frames is not None and t % frame_skip == 0:
                    yield frame
                if outcome is not None:
                    results.append({"episode": i, "seed": seed + i, **outcome})

    try:
        if video is None:
            for _ in play(None):
                pass
        else:
            write_video(play([]), video, fps / frame_skip)
    finally:
        env.close()
    return results


def _episode(agent: Any, env: Any, seed: int, transform: Callable[[Any], Any] | None, render: bool = True
             ) -> Iterator[tuple[np.ndarray | None, dict[str, Any] | None]]:  # fmt: skip
    """One deterministic episode as a stream of ``(frame, None)`` (frames ``None`` unless ``render``), the last
    item ``(frame, {"return": ..., "steps": ...})``."""
    draw = env.render if render else (lambda: None)
    obs, _ = env.reset(seed=seed)
    state, start = None, np.ones(1, dtype=bool)
    total, steps, done, frame = 0.0, 0, False, draw()
    while not done:
        yield frame, None
        action, state = agent.predict(obs if transform is None else transform(obs), state=state, episode_start=start,
                                      deterministic=True)  # fmt: skip
        start = np.zeros(1, dtype=bool)
        obs, reward, terminated, truncated, _ = env.step(action)
        total, steps, done, frame = total + float(reward), steps + 1, terminated or truncated, draw()
    yield frame, {"return": total, "steps": steps}
