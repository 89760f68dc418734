"""What the world model imagines beside what really happens: one real episode and the model's open-loop dream.

From the same start state and under the same actions, the real episode (drawn by the env's renderer) is shown
beside the world model's imagination (drawn by the same renderer where the observation is the state, or the decoded
image itself), with the divergence plotted under both::

    result = dream(agent, "CA11/ContinuousCartPole-v0", seed=0, context=5)
    write_dream_video(result, "dream.gif")   # real | imagined, and the divergence with a cursor
    plot_dream(result, "dream.png")          # the divergence and each observation dimension, real vs imagined

Time alignment (Gymnasium's): ``a_t`` is taken after seeing ``o_t``, ``r_t`` and ``o_{t+1}`` follow it. The model
observes ``o_0 .. o_{context-1}`` (an RSSM filters them into its posterior; the feed-forward world model encodes the
last of them, having no memory), then imagines ``o_context .. o_{L-1}`` open loop (the prior, no observations) under
the recorded actions, ``L = context + horizon``. For ``t < context`` the imagined observation is the model's
reconstruction of what it observed. Rewards ``r_0 .. r_{L-2}`` are predicted from the state at ``o_t`` and ``a_t``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.classic_control import CartPoleEnv, PendulumEnv
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import ca11_gym  # noqa: F401  (registers the CA11/ ids, so environment ids can be passed)
from ca11_agents.common.spaces import ObsBatch, batch_observation, obs_as_tensor, stack_observations
from ca11_agents.common.threads import cpu_threads
from ca11_agents.world_models.rssm import stack_states
from ca11_gym.envs.cartpole import ContinuousCartPole
from ca11_gym.envs.pendulum import ContinuousPendulum

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless: pygame reads it when it first opens a display

__all__ = ["DreamResult", "divergence", "dream", "imagine_episode", "imagined_frame", "plot_dream", "write_dream_video"]

#: Steps after which :func:`dream` cuts an episode that has not ended (frames are kept in memory).
MAX_STEPS = 1000
_HEADER = 28  # pixels of the title strips above the two panels
_OBSERVED, _OPEN_LOOP = (230, 140, 30), (40, 90, 200)  # colours of the imagined panel's marker


@dataclass
class DreamResult:
    """One real episode and the model's dream of it, over ``L = context + horizon`` steps (see the module docstring).

    Observations are stacked ``(L, ...)`` (a dict of them for a ``Dict`` space) as the env gives them: the imagined
    ones in the real ones' shape, images as uint8 in the env's channel order, vectors as float32.
    """

    real_observations: ObsBatch  #: ``o_0 .. o_{L-1}``
    imagined_observations: ObsBatch  #: reconstructions for ``t < context``, open-loop predictions from ``context``
    real_rewards: np.ndarray  #: ``(L - 1,)`` ``r_0 .. r_{L-2}``
    imagined_rewards: np.ndarray  #: ``(L - 1,)`` the model's predictions of them
    actions: np.ndarray  #: ``(L - 1, ...)`` the env actions ``a_0 .. a_{L-2}`` the agent took
    observation_error: np.ndarray  #: ``(L,)`` squared error per dimension, normalised (:func:`divergence`)
    reward_error: np.ndarray  #: ``(L - 1,)`` ``|imagined - real|`` reward
    real_frames: np.ndarray  #: ``(L, H, W, 3)`` uint8 ``env.render()`` after reset and after each step
    imagined_frames: np.ndarray | None  #: ``(L, H, W, 3)`` uint8 (:func:`imagined_frame`), ``None``: no renderer
    context: int  #: observed steps
    episode_length: int  #: env steps of the real episode (``L - 1`` when the dream covers all of it)
    fps: int = 30  #: the env's ``render_fps``

    def __len__(self) -> int:
        """``L``: compared steps, the frames of :func:`write_dream_video`."""
        return len(self.observation_error)


def _policy(agent: Any) -> Any:
    policy = getattr(agent, "policy", agent)
    if not hasattr(policy, "rssm") and not hasattr(policy, "world_model"):
        raise TypeError(f"dream: expected a DreamerAgent, RSSMAgent or WorldModelAgent, got {type(agent).__name__}")
    return policy


def _leaves(obs: ObsBatch) -> dict[str, np.ndarray]:
    return dict(obs) if isinstance(obs, dict) else {"": obs}


def _like(decoded: torch.Tensor, real: np.ndarray) -> np.ndarray:
    """A decoded leaf ``(L, ...)`` as the env gives it: images rounded to uint8 in the real ones' channel order."""
    out = decoded.detach().cpu().numpy()
    if real.dtype != np.uint8 or real.ndim != 4:
        return out.astype(np.float32)
    if out.shape[1:] != real.shape[1:]:
        out = out.transpose(0, 2, 3, 1)  # the encoders' (L, C, H, W) -> the env's (L, H, W, C)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@torch.no_grad()
def imagine_episode(
    agent: Any, observations: ObsBatch | list[Any], actions: np.ndarray, *, context: int = 5, horizon: int | None = None
) -> tuple[ObsBatch, np.ndarray]:
    """The model's dream of a recorded episode: it sees ``observations[:context]`` and nothing after.

    Args:
        agent: a ``DreamerAgent``, ``RSSMAgent`` or ``WorldModelAgent``, or its policy.
        observations: ``o_0 .. o_T`` as the env gives them (a list, or stacked ``(T + 1, ...)``).
        actions: ``(T, A)`` the learner's action vectors (the last entry of ``predict``'s state, or
            ``policy.actions.from_env`` of the env's actions).
        context: observed steps, ``1 <= context <= T``.
        horizon: imagined steps, at most (and by default) ``T + 1 - context``.

    Returns:
        ``(observations, rewards)``: the imagined ``o_0 .. o_{L-1}`` stacked as the real ones (reconstructions
        before ``context``) and the predicted ``r_0 .. r_{L-2}``, ``L = context + horizon``. Latents follow their
        mode (deterministic), as the agent's deterministic ``predict`` does.
    """
    policy = _policy(agent)
    obs = stack_observations(observations) if isinstance(observations, list) else observations
    steps = len(next(iter(_leaves(obs).values())))
    if not 1 <= context < steps:
        raise ValueError(f"imagine_episode: context must be in [1, {steps - 1}] ({steps - 1} steps), got {context}")
    horizon = steps - context if horizon is None else min(int(horizon), steps - context)
    if horizon < 1:
        raise ValueError(f"imagine_episode: horizon must be >= 1, got {horizon}")
    length = context + horizon
    if len(actions) < length - 1:
        raise ValueError(f"imagine_episode: {length} observations need {length - 1} actions, got {len(actions)}")
    window = {k: v[:length] for k, v in obs.items()} if isinstance(obs, dict) else obs[:length]
    batch, _, _ = batch_observation(window, policy.observation_space, "imagine_episode")  # images channel-first
    device = policy.device
    act = torch.as_tensor(np.asarray(actions)[: length - 1], dtype=torch.float32, device=device).reshape(length - 1, -1)
    with cpu_threads(device):
        seen = obs_as_tensor(batch, device)
        if hasattr(policy, "rssm"):
            rssm = policy.rssm
            state, prev, posts = rssm.initial_state(1), torch.zeros(1, act.shape[1], device=device), []
            for t in range(context):  # the posterior's mode, as deterministic acting filters
                o_t = {k: v[t : t + 1] for k, v in seen.items()} if isinstance(seen, dict) else seen[t : t + 1]
                state = policy.filter(o_t, state, prev, torch.full((1,), float(t == 0), device=device), True)
                posts.append(state)
                prev = act[t : t + 1]
            prior = rssm.rollout(state, act[None, context - 1 :], deterministic=True)  # s_context .. s_{L-1}
            states = stack_states(posts).map(lambda x: x[0])  # (1, context, ...) -> (context, ...)
            feats = torch.cat([rssm.features(states), rssm.features(prior)[0]], 0)  # (L, F)
            decoded, rewards = rssm.decode(feats), rssm.reward(feats[:-1], act)
        else:
            wm, seen = policy.world_model, seen.float()
            z = wm.encode_observations(seen[:context])  # (context, latent)
            predicted, imagined_rewards = wm.rollout(seen[context - 1 : context], act[None, context - 1 :])
            decoded = torch.cat([wm.decode_latents(z), predicted[0]], 0)  # (L, O)
            rewards = torch.cat([wm.predict_reward(z[:-1], act[: context - 1]), imagined_rewards[0]], 0)
    real = _leaves(window)
    if isinstance(decoded, dict):
        return {k: _like(decoded[k], real[k]) for k in real}, rewards.cpu().numpy().astype(np.float64)
    return _like(decoded, real[""]), rewards.cpu().numpy().astype(np.float64)


def divergence(real: ObsBatch, imagined: ObsBatch) -> np.ndarray:
    """``(L,)`` mean squared error per dimension of ``imagined`` against ``real`` ``(L, ...)``, each dimension
    divided by its std over the real steps (dimensions constant over them by 1); images by the std of all their
    pixel values. A ``Dict``'s keys weigh the same (the mean of theirs)."""
    errors = []
    for key, r in _leaves(real).items():
        r, i = r.astype(np.float64).reshape(len(r), -1), _leaves(imagined)[key].astype(np.float64).reshape(len(r), -1)
        std = r.std() if _leaves(real)[key].ndim == 4 else r.std(0)
        errors.append((((i - r) / np.where(std > 1e-8, std, 1.0)) ** 2).mean(1))
    return np.mean(errors, 0)


# ------------------------------------------------------------------------------------------- imagined frames
def _image(observation: Any) -> np.ndarray | None:
    """The ``(H, W, 3)`` uint8 picture in an observation (a Dict's first image), or ``None``."""
    if isinstance(observation, dict):
        return next((im for im in map(_image, observation.values()) if im is not None), None)
    array = np.asarray(observation)
    if array.ndim != 3 or array.dtype != np.uint8:
        return None
    if array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # channel-first -> channel-last
    return np.repeat(array, 3, -1) if array.shape[-1] == 1 else array[..., :3]


def _physical_state(base: gym.Env, observation: Any) -> np.ndarray | None:
    """The ``state`` of the unwrapped env that shows ``observation``, for the envs whose observation is the state."""
    if isinstance(observation, dict):
        observation = observation.get("state", next(iter(observation.values())) if len(observation) == 1 else None)
    obs = None if observation is None else np.asarray(observation, dtype=np.float64)
    if obs is None or obs.ndim != 1:
        return None
    if isinstance(base, (ContinuousCartPole, CartPoleEnv)) and obs.shape == (4,):
        return obs.copy()  # (x, x_dot, theta, theta_dot)
    if isinstance(base, (ContinuousPendulum, PendulumEnv)) and obs.shape == (3,):
        return np.array([math.atan2(obs[1], obs[0]), obs[2]])  # (cos, sin, theta_dot) -> (theta, theta_dot)
    return None


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ``(h, w, 3)`` to ``size = (H, W)`` (pixels stay crisp squares)."""
    rows = np.arange(size[0]) * image.shape[0] // size[0]
    cols = np.arange(size[1]) * image.shape[1] // size[1]
    return np.ascontiguousarray(image[rows][:, cols])


def imagined_frame(env: gym.Env, observation: Any, *, size: tuple[int, int] | None = None) -> np.ndarray | None:
    """Draw an (imagined) observation with the env's own renderer: ``(H, W, 3)`` uint8, or ``None`` if it cannot.

    Image observations (also a ``Dict``'s image) are the picture: upscaled to ``size`` (default: the size of
    ``env.render()``). For CartPole (``CA11/ContinuousCartPole-v0``, ``CartPole-v1``) the observation is the state;
    for the pendulums (``CA11/ContinuousPendulum-v0``, ``Pendulum-v1``) the state is ``(atan2(sin, cos), theta_dot)``:
    it is set on ``env.unwrapped``, rendered, and the env's own state put back. Everything else the renderer draws
    (the applied force or torque) is the env's current one. Other envs: ``None``.
    """
    image = _image(observation)
    if image is not None:
        return _resize(image, size if size is not None else np.asarray(env.render()).shape[:2])
    base = env.unwrapped
    state = _physical_state(base, observation)
    if state is None:
        return None
    saved = None if base.state is None else np.array(base.state, dtype=np.float64)
    base.state = state
    try:
        return np.asarray(base.render())
    finally:
        if saved is not None:
            base.state = saved


# ------------------------------------------------------------------------------------------------------ dream
def _index(obs: ObsBatch, t: int) -> Any:
    return {k: v[t] for k, v in obs.items()} if isinstance(obs, dict) else obs[t]


def dream(
    agent: Any, env: str | gym.Env, *, seed: int = 0, context: int = 5, horizon: int | None = None,
    max_steps: int = MAX_STEPS,
) -> DreamResult:  # fmt: skip
    """Run one real episode with the agent's deterministic ``predict`` and dream it (see the module docstring).

    Args:
        agent: a trained ``DreamerAgent``, ``RSSMAgent`` or ``WorldModelAgent``.
        env: an env id (made with ``render_mode="rgb_array"``) or a ``gym.Env`` made so; an env passed in is reset
            with ``seed`` twice (the episode, then a replay of its actions to draw the imagined states with the
            force or torque the real frame shows) and not closed.
        seed: the episode's reset seed.
        context: steps the model observes (:func:`imagine_episode`).
        horizon: steps it imagines open loop; default: the rest of the episode.
        max_steps: an episode not ended by then is cut there (every frame is kept in memory: ~0.7 MB a step for a
            600x400 renderer, twice that with the imagined frames).

    Returns:
        A :class:`DreamResult` of ``L = context + horizon`` steps (``episode_length + 1`` by default).
    """
    _policy(agent)  # a learner with a world model, before an episode is spent
    owned = isinstance(env, str)
    env = gym.make(env, render_mode="rgb_array") if isinstance(env, str) else env
    if env.render_mode != "rgb_array":
        raise ValueError(f"dream: make the env with render_mode='rgb_array' to draw frames, not {env.render_mode!r}")
    try:
        obs, _ = env.reset(seed=seed)
        observations, frames, env_actions, actions, rewards = [obs], [np.asarray(env.render())], [], [], []
        state, start = None, np.ones(1, bool)
        for _ in range(max_steps):
            action, state = agent.predict(obs, state, start, deterministic=True)
            start = np.zeros(1, bool)
            env_actions.append(np.asarray(action))
            actions.append(np.asarray(state[-1])[0])  # the learner's action vector, carried in the state
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            frames.append(np.asarray(env.render()))
            rewards.append(float(reward))
            if terminated or truncated:
                break
        real = stack_observations(observations)
        imagined, imagined_rewards = imagine_episode(agent, real, np.stack(actions), context=context, horizon=horizon)
        length = len(next(iter(_leaves(imagined).values())))
        real = {k: v[:length] for k, v in real.items()} if isinstance(real, dict) else real[:length]
        drawn: list[np.ndarray | None] = []
        if _image(_index(imagined, 0)) is not None:
            drawn = [imagined_frame(env, _index(imagined, t), size=frames[0].shape[:2]) for t in range(length)]
        elif _physical_state(env.unwrapped, _index(imagined, 0)) is not None:
            env.reset(seed=seed)  # replay the actions: each imagined state is drawn with the real step's force
            for t in range(length):
                if t:
                    env.step(env_actions[t - 1])
                drawn.append(imagined_frame(env, _index(imagined, t)))
        real_rewards = np.asarray(rewards[: length - 1], dtype=np.float64)
        return DreamResult(
            real, imagined, real_rewards, imagined_rewards, np.stack(env_actions[: length - 1]),
            observation_error=divergence(real, imagined), reward_error=np.abs(imagined_rewards - real_rewards),
            real_frames=np.stack(frames[:length]), imagined_frames=np.stack(drawn) if drawn else None,  # type: ignore
            context=context, episode_length=len(rewards), fps=int(env.metadata.get("render_fps") or 30),
        )  # fmt: skip
    finally:
        if owned:
            env.close()


# ------------------------------------------------------------------------------------------------------ video
def _pixels(fig: Figure, height: int, width: int) -> np.ndarray:
    """Draw ``fig`` and return it as ``(height, width, 3)`` uint8 (cropped or padded white by rounding pixels)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # the figure's pixel size rounds figsize * dpi: fit it to (height, width)
    rgb = np.asarray(canvas.buffer_rgba())[:height, :width, :3]
    out = np.full((height, width, 3), 255, np.uint8)
    out[: rgb.shape[0], : rgb.shape[1]] = rgb
    return out


def _text(text: str, height: int, width: int, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    size = min(12.0, 0.9 * width / (0.85 * len(text)))  # points: a bold character is ~0.85 of its size in pixels
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=size, color=np.array(color) / 255, weight="bold")
    return _pixels(fig, height, width)


def _divergence_axes(fig: Figure, result: DreamResult, ax: Any) -> None:
    """The divergence over the episode on ``ax`` (observation error, log if positive) and a twin (reward error)."""
    steps = np.arange(len(result))
    ax.axvspan(-0.5, result.context - 0.5, color=np.array(_OBSERVED) / 255, alpha=0.15, label="observed")
    ax.axvline(result.context - 0.5, color=np.array(_OBSERVED) / 255, linestyle="--", linewidth=1.5)
    ax.plot(steps, result.observation_error, color="C0", label="observation error (normalised MSE)")
    if (result.observation_error > 0).all():
        ax.set_yscale("log")
    ax.set(xlim=(-0.5, len(result) - 0.5), xlabel="env step")
    ax.set_ylabel("observation error", color="C0")
    twin = ax.twinx()
    twin.plot(steps[1:], result.reward_error, color="C3", label="reward |error|")  # r_t arrives with o_{t+1}
    twin.set_ylabel("reward |error|", color="C3")
    (lines, labels), (more, names) = ax.get_legend_handles_labels(), twin.get_legend_handles_labels()
    ax.legend(lines + more, labels + names, loc="upper left", fontsize=7)


def _plot_strip(result: DreamResult, height: int, width: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The divergence plot once, as pixels, with the cursor's column of each step and the axes' rows."""
    fig = Figure(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    ax = fig.subplots()
    _divergence_axes(fig, result, ax)
    image = _pixels(fig, height, width)
    x = ax.transData.transform(np.stack([np.arange(len(result)), np.ones(len(result))], 1))[:, 0]
    box = ax.get_window_extent()
    rows = (max(0, int(height - box.y1)), min(height, int(math.ceil(height - box.y0))))
    return image, np.clip(np.rint(x).astype(int), 1, width - 2), rows


def _outline(image: np.ndarray, color: tuple[int, int, int], width: int = 4) -> np.ndarray:
    out = image.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = color, color, color, color
    return out


def write_dream_video(result: DreamResult, path: str | os.PathLike, *, fps: int | None = None) -> int:
    """Write the dream as a video: ``.gif`` (imageio, core install) or ``.mp4`` (needs ``imageio-ffmpeg``).

    Each frame is the real frame (left, "real") beside the imagined one (right: orange-framed "imagined: observed
    (filtering)" while ``t < context``, then "imagined: open loop"; a panel saying so where the env has no renderer
    for imagined states), over the divergence plot with a black cursor at the step and the context boundary dashed.
    The plot is drawn once; each frame only moves the cursor.

    Returns:
        The frames written: ``len(result)``, one per compared step ``o_0 .. o_{L-1}`` (for a dream of a whole
        episode: one per env step plus the initial one). The width is twice the real frame's.

    Raises:
        ValueError: another suffix, or ``.mp4`` without imageio's ffmpeg plugin.
    """
    from ca11_agents.experiments.media import write_video

    fps = int(fps or result.fps)
    height, width = result.real_frames.shape[1:3]
    headers = [
        np.concatenate([_text("real", _HEADER, width), _text(text, _HEADER, width, color)], 1)
        for text, color in (("imagined: observed (filtering)", _OBSERVED), ("imagined: open loop", _OPEN_LOOP))
    ]
    blank = _text("no renderer for imagined states", height, width, (120, 120, 120))
    plot, cursor, (top, bottom) = _plot_strip(result, max(150, int(0.45 * height)), 2 * width)

    def frames() -> Iterator[np.ndarray]:
        for t in range(len(result)):
            imagined = blank if result.imagined_frames is None else result.imagined_frames[t]
            if t < result.context:
                imagined = _outline(imagined, _OBSERVED)
            strip = plot.copy()
            strip[top:bottom, cursor[t] - 1 : cursor[t] + 1] = 0  # the cursor: a black line at step t
            yield np.concatenate([headers[t >= result.context], np.concatenate([result.real_frames[t], imagined], 1),
                                  strip])  # fmt: skip

    return write_video(frames(), path, fps)


def plot_dream(result: DreamResult, path: str | os.PathLike | None = None) -> Figure:
    """A static figure: the divergence over the episode (top); each vector observation dimension (a ``Dict``'s
    vector keys too; at most 12), real against imagined; for images, real (upper row) and imagined frames at 8
    steps. Written to ``path`` (PNG, SVG, ... from the suffix) if given."""
    real_leaves, imagined_leaves = _leaves(result.real_observations), _leaves(result.imagined_observations)
    series = [
        (f"{key}[{d}]" if key else f"obs[{d}]", real[:, d], imagined_leaves[key][:, d])
        for key, real in real_leaves.items() if real.ndim == 2 for d in range(real.shape[1])
    ][:12]  # fmt: skip
    image_key = next((key for key, real in real_leaves.items() if real.ndim == 4), None)
    picks = np.unique(np.linspace(0, len(result) - 1, 8).round().astype(int)) if image_key is not None else []
    cols = max(len(picks), min(4, max(1, len(series))))
    rows = 1 + math.ceil(len(series) / cols) + 2 * (image_key is not None)
    fig = Figure(figsize=(max(10.0, 3.2 * min(cols, 4)), 2.6 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, cols)
    _divergence_axes(fig, result, fig.add_subplot(grid[0, :]))
    steps = np.arange(len(result))
    for i, (name, real, imagined) in enumerate(series):
        ax = fig.add_subplot(grid[1 + i // cols, i % cols])
        ax.plot(steps, real, color="C0", label="real")
        ax.plot(steps, imagined, color="C3", linestyle="--", label="imagined")
        ax.axvline(result.context - 0.5, color=np.array(_OBSERVED) / 255, linestyle="--", linewidth=1)
        ax.set(title=name, xlabel="env step")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    for j, t in enumerate(picks):
        for row, (kind, frames) in enumerate((("real", real_leaves), ("imagined", imagined_leaves))):
            ax = fig.add_subplot(grid[rows - 2 + row, j])
            ax.imshow(_image(frames[image_key][t]))
            ax.set_title(f"{kind}, t={t}", fontsize=8)
            ax.set_axis_off()
    fig.suptitle(f"Dream: {result.context} observed steps, then {len(result) - result.context} imagined")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig
