"""The policy server (issue #16): ca11_agents.deploy.server in-process (FastAPI's TestClient) and one real uvicorn
process on a free loopback port.

A tiny Dreamer trained for 60 steps is saved once; whole episodes through ``/act`` equal the agent's offline
``predict(..., deterministic=True)`` of the same observations (exactly with torch, within 1e-5 with onnxruntime);
every bad request gets its 4xx and a message; the session limit, expiry and deletion hold; a tampered checkpoint is
refused at start-up.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import ca11_gym  # noqa: F401  (registers the CA11 environments)
from ca11_agents import DreamerAgent

pytest.importorskip("fastapi", reason="needs the deploy extra")
httpx = pytest.importorskip("httpx", reason="needs the deploy extra")

from fastapi.testclient import TestClient  # noqa: E402

from ca11_agents.deploy.server import create_app, load_policy, sha256_file  # noqa: E402

ENV = "CA11/ContinuousPendulum-v0"
TINY = dict(
    learning_starts=40, batch_size=3, seq_len=6, imagination_horizon=3, imagination_starts=8, train_freq=8,
    policy_kwargs=dict(hidden_dim=16, state_dim=8, classes=4, units=16, actor_hidden_dims=[16],
                       critic_hidden_dims=[16], bins=15),
)  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[DreamerAgent, Path]:
    agent = DreamerAgent("MlpPolicy", ENV, seed=0, **TINY).learn(60)
    path = tmp_path_factory.mktemp("server") / "dreamer.zip"
    agent.save(path)
    return agent, path


@pytest.fixture(scope="module")
def episode(saved: tuple[DreamerAgent, Path]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One episode driven by the agent's offline deterministic predict: its observations and actions."""
    agent, _ = saved
    env = gym.make(ENV)
    obs, _ = env.reset(seed=7)
    state, start, done, observations, actions = None, np.ones(1, bool), False, [], []
    while not done:
        action, state = agent.predict(obs, state, start, deterministic=True)
        observations.append(obs)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        start, done = np.zeros(1, bool), terminated or truncated
    return observations, actions


@pytest.fixture(scope="module")
def client(saved: tuple[DreamerAgent, Path]) -> TestClient:
    policy, info = load_policy(saved[1], "dreamer", "torch")
    return TestClient(create_app(policy, model_info=info, max_body_bytes=4096))


def run_episode(client: TestClient | httpx.Client, observations: list[np.ndarray]) -> list[np.ndarray]:
    sid = client.post("/sessions").json()["session_id"]
    actions = []
    for i, obs in enumerate(observations):
        response = client.post(f"/sessions/{sid}/act", json={"observation": obs.tolist()})
        assert response.status_code == 200, response.text
        assert response.json()["step"] == i + 1
        actions.append(np.asarray(response.json()["action"], np.float32))
    assert client.delete(f"/sessions/{sid}").status_code == 200
    return actions


def test_health_and_model_describe_the_checkpoint(client: TestClient, saved: tuple[DreamerAgent, Path]) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    model = client.get("/model").json()
    assert model["learner"] == "DreamerAgent" and model["backend"] == "torch"
    assert model["checkpoint_sha256"] == sha256_file(saved[1]) and model["ca11_version"] == "0.1.0"
    assert model["saved_ca11_version"] == "0.1.0" and len(model["saved_tensors_sha256"]) == 64  # inside the file
    assert model["observation_space"]["type"] == "Box" and model["observation_space"]["shape"] == [3]
    assert model["action_space"]["type"] == "Box" and model["action_space"]["shape"] == [1]


def test_a_whole_episode_equals_the_offline_predict_exactly(client: TestClient, episode) -> None:  # noqa: ANN001
    observations, expected = episode
    assert len(observations) > 20
    served = run_episode(client, observations)
    assert all(np.array_equal(a, np.asarray(b, np.float32)) for a, b in zip(served, expected, strict=True))
    # two interleaved sessions keep separate states: the second replays the same episode
    sids = [client.post("/sessions").json()["session_id"] for _ in range(2)]
    for obs, action in zip(observations[:10], expected[:10]):
        for sid in sids:
            got = client.post(f"/sessions/{sid}/act", json={"observation": obs.tolist()}).json()["action"]
            assert np.array_equal(np.asarray(got, np.float32), action)
    for sid in sids:
        client.delete(f"/sessions/{sid}")


def test_the_onnx_backend_agrees_within_1e_5(saved, episode, tmp_path: Path) -> None:  # noqa: ANN001
    pytest.importorskip("onnxruntime", reason="needs the deploy extra")
    agent, _ = saved
    agent.export_onnx(tmp_path / "policy.onnx")
    policy, info = load_policy(tmp_path / "policy.onnx", backend="onnx")
    assert info["learner"] == "DreamerAgent" and info["backend"] == "onnx"
    assert info["checkpoint_sha256"] == sha256_file(tmp_path / "policy.onnx")
    observations, expected = episode
    served = run_episode(TestClient(create_app(policy, model_info=info)), observations)
    assert np.max(np.abs(np.asarray(served) - np.asarray(expected, np.float32))) <= 1e-5


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"observation": [0.1, 0.2]}, 422, "expected shape [3], got [2]"),
        ({"observation": [[0.1, 0.2, 0.3]]}, 422, "expected shape [3], got [1, 3]"),
        ({"observation": [0.1, [0.2], 0.3]}, 422, "not a rectangular array"),
        ({"observation": ["a", "b", "c"]}, 422, "expected numbers"),
        ({"observation": [True, False, True]}, 422, "expected numbers"),
        ({"observation": {"x": [1, 2, 3]}}, 422, "expected numbers"),
        ({"observation": [10**40, 0, 0]}, 422, "expected numbers"),
        ({"obs": [0.1, 0.2, 0.3]}, 422, '{"observation": ...}'),
        ([0.1, 0.2, 0.3], 422, '{"observation": ...}'),
        ('{"observation": [NaN, 0, 0]}', 422, "NaN or infinite"),
        ('{"observation": [Infinity, 0, 0]}', 422, "NaN or infinite"),
        ('{"observation": [0.1, 0.2', 400, "malformed JSON"),
        (b"\xff\xfe", 400, "malformed JSON"),
        ("[" * 2000 + "]" * 2000, 400, "malformed JSON"),  # nested past the parser's recursion limit
        ('{"observation": [' + "0," * 3000 + "0]}", 413, "limit 4096"),
    ],
)
def test_bad_requests_get_a_4xx_and_a_message(client: TestClient, body, status: int, message: str) -> None:  # noqa: ANN001
    sid = client.post("/sessions").json()["session_id"]
    content = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response = client.post(f"/sessions/{sid}/act", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    good = client.post(f"/sessions/{sid}/act", json={"observation": [0.1, 0.2, 0.3]})
    assert good.status_code == 200 and good.json()["step"] == 1  # a refused request does not advance the episode
    client.delete(f"/sessions/{sid}")


def test_the_body_size_is_checked_without_a_content_length(client: TestClient) -> None:
    sid = client.post("/sessions").json()["session_id"]

    def chunks():  # noqa: ANN202  (a generator body is sent chunked, with no Content-Length)
        yield b'{"observation": ['
        for _ in range(2000):
            yield b"0.0,"
        yield b"0.0]}"

    response = client.post(f"/sessions/{sid}/act", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "larger than 4096" in response.json()["detail"]
    lying = client.post(f"/sessions/{sid}/act", content=b"x" * 10, headers={"content-length": "99999"})
    assert lying.status_code == 413
    client.delete(f"/sessions/{sid}")


def test_unknown_and_deleted_sessions_are_404(client: TestClient) -> None:
    assert client.post("/sessions/nope/act", json={"observation": [0, 0, 0]}).status_code == 404
    sid = client.post("/sessions").json()["session_id"]
    assert client.delete(f"/sessions/{sid}").json()["steps"] == 0
    for response in (client.post(f"/sessions/{sid}/act", json={"observation": [0, 0, 0]}),
                     client.delete(f"/sessions/{sid}")):  # fmt: skip
        assert response.status_code == 404 and "unknown or expired session" in response.json()["detail"]


def test_the_session_limit_and_idle_expiry(saved: tuple[DreamerAgent, Path]) -> None:
    policy, info = load_policy(saved[1])
    now = [0.0]
    client = TestClient(create_app(policy, model_info=info, max_sessions=2, session_ttl=10.0, clock=lambda: now[0]))
    first, second = (client.post("/sessions").json()["session_id"] for _ in range(2))
    full = client.post("/sessions")
    assert full.status_code == 503 and "2 sessions are open" in full.json()["detail"]
    now[0] = 8.0
    assert client.post(f"/sessions/{first}/act", json={"observation": [1, 0, 0]}).status_code == 200
    now[0] = 15.0  # second idle for 15 s > 10: expires; first idle for 7 s: kept
    third = client.post("/sessions")
    assert third.status_code == 201
    assert client.post(f"/sessions/{second}/act", json={"observation": [1, 0, 0]}).status_code == 404
    assert client.post(f"/sessions/{first}/act", json={"observation": [1, 0, 0]}).json()["step"] == 2
    assert client.get("/healthz").json()["sessions"] == 2


def test_a_tampered_checkpoint_is_refused_at_start_up(
    saved: tuple[DreamerAgent, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(saved[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="tampered.zip"):
        load_policy(tampered)
    with pytest.raises(ValueError, match="RSSMAgent"):  # a Dreamer file is not an RSSMAgent checkpoint
        load_policy(saved[1], "rssm_agent")
    from ca11_agents.deploy import serve

    assert serve.main([str(tampered), "--port", "1"]) == 2  # refused before anything listens
    assert "tampered.zip" in capsys.readouterr().err
    assert serve.main([str(saved[1]), "--workers", "0"]) == 2
    assert "--workers must be a positive integer" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_uvicorn_process_serves_a_scripted_episode(saved, episode) -> None:  # noqa: ANN001
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ca11_agents.deploy.serve", str(saved[1]), "--port", str(port), "--log-level",
         "warning"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, process.stdout.read().decode()[-2000:]  # type: ignore[union-attr]
                try:
                    if http.get("/healthz").json()["status"] == "ok":
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not answer within 60 s"
                    time.sleep(0.2)
            observations, expected = episode
            served = run_episode(http, observations[:15])
            assert all(np.array_equal(a, np.asarray(b, np.float32)) for a, b in zip(served, expected[:15]))
            assert http.post("/sessions/x/act", json={"observation": [0, 0, 0]}).status_code == 404
            # concurrent requests on one session are serialised: every step number once
            sid = http.post("/sessions").json()["session_id"]
            act = lambda _: http.post(f"/sessions/{sid}/act", json={"observation": [1, 0, 0]}).json()["step"]  # noqa: E731
            with ThreadPoolExecutor(4) as pool:
                assert sorted(pool.map(act, range(20))) == list(range(1, 21))
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize("algo", ["world_model_agent", "rssm_agent"])
def test_the_planners_serve_the_actions_they_predict_offline(algo: str, tmp_path: Path) -> None:
    """The planners behind the server: each session carries the planner's state (the RSSM's belief, the shifted
    plan), so a served episode takes exactly the actions of the offline deterministic predict."""
    import ca11_agents

    sizes = ({"latent_dim": 4, "vae_hidden_dims": [16], "dynamics_hidden_dims": [16], "reward_hidden_dims": [16],
              "ensemble_size": 2} if algo == "world_model_agent"
             else {"hidden_dim": 16, "state_dim": 8, "classes": 4, "units": 16, "bins": 15})  # fmt: skip
    cls = getattr(ca11_agents, {"world_model_agent": "WorldModelAgent", "rssm_agent": "RSSMAgent"}[algo])
    agent = cls("MlpPolicy", ENV, seed=0, learning_starts=40, batch_size=3, seq_len=4, train_freq=8, horizon=3,
                planner_kwargs=dict(candidates=8, elites=2, iterations=2), policy_kwargs=sizes).learn(60)  # fmt: skip
    agent.save(tmp_path / "planner.zip")
    env = gym.make(ENV, max_episode_steps=25)
    obs, _ = env.reset(seed=3)
    state, start, observations, offline = None, np.ones(1, bool), [], []
    for _ in range(25):
        action, state = agent.predict(obs, state, start, deterministic=True)
        observations.append(obs)
        offline.append(action)
        obs, *_ = env.step(action)
        start = np.zeros(1, bool)
    policy, info = load_policy(tmp_path / "planner.zip", algo, "torch")
    assert info["learner"] == cls.__name__
    served = run_episode(TestClient(create_app(policy, model_info=info)), observations)
    np.testing.assert_array_equal(np.stack(served), np.stack(offline))


def test_inference_workers_answer_any_session_exactly(saved: tuple[DreamerAgent, Path], episode) -> None:  # noqa: ANN001
    """--workers 2: the state travels with each call, so sessions interleaved over two worker processes still get
    exactly the offline actions."""
    from ca11_agents.deploy.server import PooledPolicy

    observations, expected = episode
    policy, info = load_policy(saved[1], "dreamer", "torch")
    pooled = PooledPolicy(saved[1], "dreamer", "torch", workers=2)
    try:
        client = TestClient(create_app(pooled, model_info=info))
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: run_episode(client, observations), range(4)))
    finally:
        pooled.close()
    for actions in results:
        np.testing.assert_array_equal(np.stack(actions), np.stack(expected))
