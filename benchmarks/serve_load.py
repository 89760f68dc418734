"""Load on the policy server (``python -m ca11_agents.deploy.serve``): latency and throughput of ``/act`` with 1, 8
and 64 concurrent sessions, torch against onnxruntime, and a soak that checks errors, memory and every action.
Needs the ``deploy`` extra (``pip install ".[deploy]"``).

Usage (from the repository's root)::

    python -m benchmarks.serve_load --out benchmarks/results/YYYY-MM-DD-serve [--requests 3000] [--soak 100000]

A default-constructor DreamerAgent on ``CA11/ContinuousCartPole-v0`` is saved (untrained: an action costs the same
whatever the weights) and exported to ONNX. One episode of 500 observations is recorded offline with the agent's
deterministic ``predict`` (an untrained agent's episode ends early, so the observations come from a random-action
episode; the recurrent state makes every action depend on the whole history). The server runs in its own process
on core 0 (one torch thread), the load generator (httpx, asyncio) on core 1, both on the loopback. Every session
replays the recorded observations from the start of an episode and every action is compared with the offline one
(exactly for torch, within 1e-5 for onnxruntime). The soak sends ``--soak`` requests from 8 sessions against the
torch backend and reads the server's resident memory (``/proc``) after the warm-up and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare(out: Path, steps: int = 500) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Save and export the agent; record ``steps`` observations and the agent's offline deterministic actions."""
    import gymnasium as gym

    import ca11_gym  # noqa: F401
    from ca11_agents import DreamerAgent

    agent = DreamerAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=0, device="cpu")
    checkpoint = out / "dreamer.zip"
    agent.save(checkpoint)
    onnx_path = out / "dreamer.onnx"
    agent.export_onnx(onnx_path)
    env = gym.make("CA11/ContinuousCartPole-v0")
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    observations = []
    for _ in range(steps):  # random actions keep the pole up longer than an untrained actor
        observations.append(obs)
        obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, size=(1,)).astype(np.float32))
        if terminated or truncated:
            obs, _ = env.reset()
    observations = np.asarray(observations, np.float32)
    state, actions = None, []
    for t, o in enumerate(observations):
        action, state = agent.predict(o, state, [t == 0], deterministic=True)
        actions.append(action)
    return checkpoint, onnx_path, observations, np.asarray(actions, np.float32)


def start_server(path: Path, backend: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "ca11_agents.deploy.serve", str(path), "--backend", backend, "--port", str(port),
               "--log-level", "warning", "--max-sessions", "1024"]  # fmt: skip
    if sys.platform.startswith("linux"):
        command = ["taskset", "-c", "0", *command]
    return subprocess.Popen(command, env=env)


async def _session(client, observations: np.ndarray, expected: np.ndarray, requests: int, tol: float,
                   latencies: list[float], errors: list[str]) -> None:  # noqa: ANN001  # fmt: skip
    """Open sessions and replay the episode until ``requests`` acts are sent; check every action."""
    sent = 0
    while sent < requests:
        session = (await client.post("/sessions")).json()["session_id"]
        for t in range(min(len(observations), requests - sent)):
            start = time.perf_counter()
            response = await client.post(f"/sessions/{session}/act", json={"observation": observations[t].tolist()})
            latencies.append(time.perf_counter() - start)
            sent += 1
            if response.status_code != 200:
                errors.append(f"{response.status_code}: {response.text[:200]}")
                continue
            action = np.asarray(response.json()["action"], np.float32)
            if not np.allclose(action, expected[t], rtol=0.0, atol=tol):
                errors.append(f"step {t}: action {action} differs from offline {expected[t]}")
        await client.delete(f"/sessions/{session}")


async def load(port: int, sessions: int, requests: int, observations: np.ndarray, expected: np.ndarray,
               tol: float) -> dict:  # fmt: skip
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=sessions, max_keepalive_connections=sessions)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60.0) as client:
        start = time.perf_counter()
        per = requests // sessions
        await asyncio.gather(*(_session(client, observations, expected, per, tol, latencies, errors)
                               for _ in range(sessions)))  # fmt: skip
        wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"sessions": sessions, "requests": len(latencies), "errors": len(errors), "first_errors": errors[:3],
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "throughput_per_s": round(len(latencies) / wall, 1), "wall_s": round(wall, 1)}  # fmt: skip


def _wait_healthy(port: int, process: subprocess.Popen, deadline: float = 120.0) -> None:
    import httpx

    start = time.perf_counter()
    while time.perf_counter() - start < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not answer /healthz in time")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=3000, help="acts per (backend, concurrency) measurement")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--soak", type=int, default=100_000, help="acts of the soak (0: skip)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint, onnx_path, observations, expected = prepare(args.out)
    results: dict = {"rows": [], "episode_steps": len(observations)}
    for backend, path, tol in (("torch", checkpoint, 0.0), ("onnx", onnx_path, 1e-5)):
        port = _free_port()
        server = start_server(path, backend, port)
        try:
            _wait_healthy(port, server)
            asyncio.run(load(port, 1, 50, observations, expected, tol))  # warm-up
            for sessions in (int(c) for c in args.concurrency.split(",")):
                row = {"backend": backend, **asyncio.run(load(port, sessions, args.requests, observations, expected,
                                                                 tol))}  # fmt: skip
                print(json.dumps(row), flush=True)
                results["rows"].append(row)
            if backend == "torch" and args.soak:
                before = _rss_mb(server.pid)
                soak = asyncio.run(load(port, 8, args.soak, observations, expected, tol))
                soak.update(backend=backend, rss_before_mb=round(before, 1), rss_after_mb=round(_rss_mb(server.pid), 1))
                print(json.dumps({"soak": soak}), flush=True)
                results["soak"] = soak
        finally:
            server.terminate()
            server.wait(timeout=30)
    (args.out / "serve_load.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if sys.platform.startswith("linux"):
        os.sched_setaffinity(0, {1 % os.cpu_count()})  # the load generator beside the server's core
    main()
