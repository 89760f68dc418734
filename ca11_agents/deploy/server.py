"""A policy server: a FastAPI app that answers actions for a trained learner and keeps each client's recurrent
state server-side (issue #16). Needs the ``deploy`` extra (``pip install ".[deploy]"``: fastapi, uvicorn; onnx and
onnxruntime for ``--backend onnx``); run it with ``python -m ca11_agents.deploy.serve CHECKPOINT``.

Endpoints::

    GET    /healthz                 {"status": "ok", "sessions": n}
    GET    /model                   learner, backend, spaces, ca11 version, sha256 of the checkpoint file
    POST   /sessions                {"session_id": ...}: a new episode (503 when max_sessions are open)
    POST   /sessions/{id}/act       {"observation": [...]} (a dict of lists for a Dict space) -> {"action", "step"}
    DELETE /sessions/{id}           ends the episode

A session's first ``act`` passes ``episode_start=True``; every later one carries the state the previous returned, so
a whole episode of ``act`` calls is the offline ``predict(..., deterministic=True)`` of that episode. Requests on
one session are serialised by its lock, inference by one model lock (or, with ``workers`` > 1, spread over that many
processes: :class:`PooledPolicy`). Sessions idle for ``session_ttl`` seconds
expire. Bad requests get a 4xx with a message in ``detail``: an oversized body (413, from Content-Length or the
bytes read), malformed JSON (400), a wrong shape, dtype, non-finite value or key (422), an unknown or expired
session (404).
"""

import contextlib
import importlib.metadata
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from ca11_agents.common.checkpoint import checkpoint_info, sha256_file
from ca11_agents.common.spaces import is_image, space_to_json

#: The learner classes ``--algo`` names.
ALGOS = {"dreamer": "DreamerAgent", "world_model_agent": "WorldModelAgent", "rssm_agent": "RSSMAgent"}


class PooledPolicy:
    """``workers`` processes, each with its own copy of the policy, answering ``predict`` calls: a session's state
    lives in the server process and travels with each call (it is small: the RSSM's latent, a plan), so any worker
    can answer any session and requests of different sessions run in parallel (the single-process server
    serialises them behind one model lock). What crosses the process boundary is pickled between the server's own
    processes; no file is ever unpickled."""

    concurrent = True

    def __init__(self, path: str | os.PathLike, algo: str, backend: str, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        probe, _ = load_policy(path, algo, backend)  # refused files stop here, in the server process
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
        self.pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                        initargs=(str(path), algo, backend))  # fmt: skip
        for future in [self.pool.submit(_ready) for _ in range(workers)]:
            future.result()  # every worker loaded before the server answers

    def predict(self, observation: Any, state: Any, episode_start: Any, deterministic: bool = True) -> Any:
        return self.pool.submit(_worker_predict, observation, state, episode_start, deterministic).result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


_WORKER_POLICY: Any = None


def _start_worker(path: str, algo: str, backend: str) -> None:
    global _WORKER_POLICY
    import torch

    torch.set_num_threads(1)
    _WORKER_POLICY, _ = load_policy(path, algo, backend)


def _ready() -> bool:
    return _WORKER_POLICY is not None


def _worker_predict(observation: Any, state: Any, episode_start: Any, deterministic: bool) -> Any:
    return _WORKER_POLICY.predict(observation, state, episode_start, deterministic)


class TorchPolicy:
    """A loaded learner's deterministic ``predict`` (the recurrent convention, env actions)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.observation_space, self.action_space = agent.observation_space, agent.action_space

    def predict(self, observation: Any, state: Any, episode_start: Any, deterministic: bool = True) -> Any:
        return self.agent.predict(observation, state, episode_start, deterministic=deterministic)


def load_policy(path: str | os.PathLike, algo: str = "dreamer", backend: str = "torch") -> tuple[Any, dict]:
    """``(policy, model_info)`` for :func:`create_app`: the checkpoint through the learner's safe ``load``
    (``backend="torch"``), or an ONNX file and its sidecar through :class:`OnnxPolicy` (``backend="onnx"``).

    Raises:
        ValueError: an unknown algo or backend, or a file the loader refuses (tampered, truncated, another class);
            the message names the file.
        FileNotFoundError: no file at ``path``.
    """
    import ca11_agents

    path = Path(path)
    if backend == "torch":
        if algo not in ALGOS:
            raise ValueError(f"unknown algo {algo!r} (known: {sorted(ALGOS)})")
        learner = ALGOS[algo]
        policy: Any = TorchPolicy(getattr(ca11_agents, learner).load(path, device="cpu"))
        if not path.is_file() and path.with_suffix(".zip").is_file():
            path = path.with_suffix(".zip")  # load's own fallback for a name saved without an extension
    elif backend == "onnx":
        from ca11_agents.deploy.onnx_export import OnnxPolicy

        if not path.is_file():
            raise FileNotFoundError(f"no ONNX file at {path}")
        policy = OnnxPolicy(path)
        learner = str(policy.meta.get("learner"))
    else:
        raise ValueError(f"unknown backend {backend!r} (known: torch, onnx)")
    info = {
        "learner": learner,
        "backend": backend,
        "checkpoint": path.name,
        "checkpoint_sha256": sha256_file(path),
        "ca11_version": importlib.metadata.version("ca11"),
        # What the checkpoint says of itself (torch backend): the ca11 version it was saved with and its tensors'
        # sha256, verified when it was loaded.
        **({f"saved_{k}": v for k, v in checkpoint_info(path).items() if k != "kind"} if backend == "torch" else {}),
        "observation_space": space_to_json(policy.observation_space),
        "action_space": space_to_json(policy.action_space),
    }
    return policy, info


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _numbers(value: Any, space: spaces.Box, where: str) -> np.ndarray:
    """``value`` (nested lists) as an array of ``space``'s shape (or an image's other channel order) and dtype."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged lists
        raise BadRequest(422, f"{where}: not a rectangular array of numbers ({error})") from None
    if array.dtype.kind not in "iuf":
        raise BadRequest(422, f"{where}: expected numbers, got values of type {array.dtype.kind!r} ({array.dtype})")
    shapes = [space.shape]
    if is_image(space):
        shapes += [tuple(space.shape[i] for i in (1, 2, 0)), tuple(space.shape[i] for i in (2, 0, 1))]
    if array.shape not in shapes:
        raise BadRequest(422, f"{where}: expected shape {list(space.shape)}, got {list(array.shape)}")
    if not np.all(np.isfinite(array)):
        raise BadRequest(422, f"{where}: NaN or infinite values")
    dtype = np.dtype(space.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not np.all(array == np.round(array)) or array.min() < info.min or array.max() > info.max:
            raise BadRequest(422, f"{where}: expected integers in [{info.min}, {info.max}] ({dtype})")
    return array.astype(dtype)


def parse_observation(value: Any, space: spaces.Space) -> Any:
    if isinstance(space, spaces.Dict):
        if not isinstance(value, dict) or set(value) != set(space.spaces):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise BadRequest(422, f"observation: expected an object with keys {sorted(space.spaces)}, got {got}")
        return {key: _numbers(value[key], sub, f"observation[{key!r}]") for key, sub in space.spaces.items()}
    if not isinstance(space, spaces.Box):
        raise BadRequest(422, f"observation spaces of type {type(space).__name__} are not served")
    return _numbers(value, space, "observation")


class Session:
    def __init__(self, now: float) -> None:
        self.lock = threading.Lock()
        self.state: Any = None
        self.step = 0
        self.last_used = now


def _elements(space: spaces.Space) -> int:
    if isinstance(space, spaces.Dict):
        return sum(_elements(sub) for sub in space.spaces.values())
    return math.prod(space.shape or (1,))


def create_app(
    policy: Any,
    *,
    model_info: dict[str, Any],
    max_sessions: int = 256,
    session_ttl: float = 600.0,
    max_body_bytes: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """The FastAPI app serving ``policy`` (anything with ``predict(observation, state, episode_start,
    deterministic)`` and ``observation_space``, e.g. from :func:`load_policy`). ``max_body_bytes`` defaults to 32
    bytes per observation element plus 4 KiB; ``clock`` (seconds) decides when sessions expire."""
    from fastapi import FastAPI, HTTPException, Request
    from starlette.concurrency import run_in_threadpool

    space = policy.observation_space
    limit = max_body_bytes if max_body_bytes is not None else 4096 + 32 * _elements(space)
    sessions: dict[str, Session] = {}
    registry_lock, model_lock = threading.Lock(), threading.Lock()
    app = FastAPI(title="ca11 policy server", version=model_info.get("ca11_version", ""))

    def expire() -> None:  # with registry_lock held
        now = clock()
        for key in [k for k, s in sessions.items() if now - s.last_used > session_ttl and not s.lock.locked()]:
            del sessions[key]

    def lookup(session_id: str) -> Session:
        with registry_lock:
            expire()
            session = sessions.get(session_id)
        if session is None:
            raise HTTPException(404, f"unknown or expired session {session_id[:64]!r}")
        return session

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HTTPException(400, "malformed Content-Length header")
            if int(declared) > limit:
                raise HTTPException(413, f"request body of {declared} bytes (limit {limit})")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(413, f"request body larger than {limit} bytes")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as error:
            raise HTTPException(400, f"malformed JSON body: {str(error)[:200]}") from None

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "sessions": len(sessions)}

    @app.get("/model")
    def model() -> dict[str, Any]:
        return {**model_info, "max_sessions": max_sessions, "session_ttl": session_ttl, "max_body_bytes": limit}

    @app.post("/sessions", status_code=201)
    def new_session() -> dict[str, str]:
        with registry_lock:
            expire()
            if len(sessions) >= max_sessions:
                raise HTTPException(503, f"{max_sessions} sessions are open (the limit): end one with DELETE "
                                         f"/sessions/{{id}} or wait for idle ones to expire ({session_ttl:g} s)",
                                    headers={"Retry-After": str(max(1, int(session_ttl)))})  # fmt: skip
            session_id = uuid.uuid4().hex
            sessions[session_id] = Session(clock())
        return {"session_id": session_id}

    @app.post("/sessions/{session_id}/act")
    async def act(session_id: str, request: Request) -> dict[str, Any]:
        lookup(session_id)  # 404 before the body is read
        payload = await read_json(request)
        if not isinstance(payload, dict) or "observation" not in payload:
            raise HTTPException(422, 'expected a JSON object {"observation": ...}')
        try:
            observation = parse_observation(payload["observation"], space)
        except BadRequest as error:
            raise HTTPException(error.status, error.message) from None
        session = lookup(session_id)
        return await run_in_threadpool(step, session_id, session, observation)

    def step(session_id: str, session: Session, observation: Any) -> dict[str, Any]:
        with session.lock:
            with registry_lock:
                if sessions.get(session_id) is not session:
                    raise HTTPException(404, f"unknown or expired session {session_id[:64]!r}")
                session.last_used = clock()
            with contextlib.nullcontext() if getattr(policy, "concurrent", False) else model_lock:
                try:
                    action, state = policy.predict(observation, session.state, np.array([session.step == 0]), True)
                except ValueError as error:  # what the policy's own checks refuse
                    raise HTTPException(422, str(error)[:500]) from None
            session.state, session.step = state, session.step + 1
            session.last_used = clock()
            return {"action": np.asarray(action).tolist(), "step": session.step}

    @app.delete("/sessions/{session_id}")
    def end_session(session_id: str) -> dict[str, Any]:
        session = lookup(session_id)
        with session.lock, registry_lock:
            sessions.pop(session_id, None)
        return {"session_id": session_id, "steps": session.step}

    return app
