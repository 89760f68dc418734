"""ONNX export (issue #16): onnxruntime against torch's ``predict(deterministic=True)`` over whole episodes.

Each case trains a tiny Dreamer for a few updates, exports it, then steps two copies of the env from the same seed,
one driven by the agent's actions and one by :class:`OnnxPolicy`'s: the actions and the carried states agree to
1e-5 at every step and both envs end every episode with exactly the same return. Then what a deployment relies
on: the sidecar (hash, spaces, version), refusal of a tampered ONNX file or sidecar, batches, the planners' error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import ca11_gym  # noqa: F401  (registers the CA11 environments)
from ca11_agents import DreamerAgent, RSSMAgent, WorldModelAgent
from ca11_gym.wrappers import PixelObservation

pytest.importorskip("onnx", reason="needs the deploy extra")
pytest.importorskip("onnxruntime", reason="needs the deploy extra")

from ca11_agents.deploy import OnnxPolicy  # noqa: E402

TINY = dict(
    learning_starts=40,
    batch_size=3,
    seq_len=6,
    imagination_horizon=3,
    imagination_starts=8,
    train_freq=8,
    buffer_size=400,
    policy_kwargs=dict(
        hidden_dim=16, state_dim=8, classes=4, units=16, actor_hidden_dims=[16], critic_hidden_dims=[16], bins=15,
        cnn_depth=4,
    ),
)
TOLERANCE = 1e-5


def pixels(env_id: str, include_state: bool = False) -> gym.Env:
    return PixelObservation(gym.make(env_id, render_mode="rgb_array"), size=64, include_state=include_state)


class MultiDiscreteTask(gym.Env):
    """Twenty steps of random observations; reward 1 for choosing 1 in the first of two parts."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), float(action[0] == 1), False, self.t >= 20, {}


#: (policy alias, env factory, episodes compared).
CASES = {
    "pendulum": ("MlpPolicy", lambda: gym.make("CA11/ContinuousPendulum-v0"), 2),
    "cartpole": ("MlpPolicy", lambda: gym.make("CA11/ContinuousCartPole-v0"), 3),
    "sequence": ("MlpPolicy", lambda: gym.make("CA11/SequenceEnvironment-v0"), 5),
    "discrete": ("MlpPolicy", lambda: gym.make("CartPole-v1"), 3),
    "multidiscrete": ("MlpPolicy", MultiDiscreteTask, 3),
    "pixels": ("CnnPolicy", lambda: pixels("CA11/ContinuousPendulum-v0"), 1),
    "dict": ("MultiInputPolicy", lambda: pixels("CartPole-v1", include_state=True), 2),
}


def trained(alias: str, make_env, steps: int = 60) -> DreamerAgent:  # noqa: ANN001
    return DreamerAgent(alias, make_env(), seed=0, **TINY).learn(steps)


def compare_episodes(
    agent: DreamerAgent, policy: OnnxPolicy, make_env, episodes: int  # noqa: ANN001
) -> tuple[float, float, int]:
    """Drive one env with the agent and one with ``policy`` from the same seeds, and run ``policy`` on the agent's
    observations too. Returns the largest difference of actions and carried states on the same observations, the
    largest difference of episode returns, and the steps compared."""
    env_torch, env_onnx = make_env(), make_env()
    discrete = not isinstance(env_torch.action_space, gym.spaces.Box)
    worst, worst_return, steps = 0.0, 0.0, 0
    for episode in range(episodes):
        obs_t, _ = env_torch.reset(seed=100 + episode)
        obs_o, _ = env_onnx.reset(seed=100 + episode)
        state_t = state_same = state_o = None
        start, done_t, done_o = np.ones(1, bool), False, False
        returns, lengths = [0.0, 0.0], [0, 0]
        while not (done_t and done_o):
            if not done_t:  # parity: the agent and the ONNX policy on the same observations
                action_t, state_t = agent.predict(obs_t, state_t, start, deterministic=True)
                action_same, state_same = policy.predict(obs_t, state_same, start, deterministic=True)
                assert np.asarray(action_same).dtype == np.asarray(action_t).dtype
                assert np.shape(action_same) == np.shape(action_t)
                for a, b in [(action_t, action_same), *zip(state_t, state_same)]:
                    worst = max(worst, float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max()))
                assert worst <= TOLERANCE, f"step {steps}: onnxruntime differs from torch by {worst}"
                obs_t, reward, term, trunc, _ = env_torch.step(action_t)
                returns[0], lengths[0], done_t = returns[0] + float(reward), lengths[0] + 1, term or trunc
                steps += 1
            if not done_o:  # the ONNX policy alone drives its own env
                action_o, state_o = policy.predict(obs_o, state_o, start, deterministic=True)
                obs_o, reward, term, trunc, _ = env_onnx.step(action_o)
                returns[1], lengths[1], done_o = returns[1] + float(reward), lengths[1] + 1, term or trunc
            start = np.zeros(1, bool)
        assert lengths[0] == lengths[1], f"episode {episode}: lengths {lengths}"
        if discrete:  # identical actions: identical episodes
            assert returns[0] == returns[1], f"episode {episode}: returns {returns}"
        else:  # actions equal to ~1e-7 steer continuous dynamics to returns equal to as many digits
            assert returns[0] == pytest.approx(returns[1], rel=1e-5, abs=1e-5), f"episode {episode}: {returns}"
        worst_return = max(worst_return, abs(returns[0] - returns[1]))
    return worst, worst_return, steps


@pytest.mark.parametrize("case", list(CASES))
def test_onnxruntime_matches_torch_over_whole_episodes(case: str, tmp_path: Path) -> None:
    alias, make_env, episodes = CASES[case]
    agent = trained(alias, make_env)
    sidecar = agent.export_onnx(tmp_path / "policy.onnx")
    assert sidecar == tmp_path / "policy.onnx.json"
    import onnx

    onnx.checker.check_model(str(tmp_path / "policy.onnx"))
    policy = OnnxPolicy(tmp_path / "policy.onnx")
    worst, worst_return, steps = compare_episodes(agent, policy, make_env, episodes)
    print(f"\n{case}: max |onnxruntime - torch| = {worst:.3g} over {steps} steps, returns differ by {worst_return:.3g}")
    assert steps >= episodes


def test_batches_match_and_the_sidecar_describes_the_export(tmp_path: Path) -> None:
    agent = trained("MlpPolicy", lambda: gym.make("CA11/ContinuousPendulum-v0"))
    agent.export_onnx(tmp_path / "p.onnx")
    meta = json.loads((tmp_path / "p.onnx.json").read_text())
    import hashlib
    from importlib.metadata import version

    assert meta["format"] == "ca11-onnx-policy" and meta["ca11_version"] == version("ca11")
    assert meta["onnx_sha256"] == hashlib.sha256((tmp_path / "p.onnx").read_bytes()).hexdigest()
    assert meta["learner"] == "DreamerAgent" and meta["opset"] == 17
    assert meta["action_scaling"] == {
        "kind": "box", "low": [-1.0], "high": [1.0], "formula": "low + (action + 1) / 2 * (high - low)",
    }  # fmt: skip
    assert [x["name"] for x in meta["inputs"]] == ["obs", "deter", "stoch", "prev_action", "is_first"]
    assert meta["inputs"][1]["shape"] == ["batch", 16] and meta["outputs"][0]["shape"] == ["batch", 1]
    policy = OnnxPolicy(tmp_path / "p.onnx")
    # a batch of 3 envs, one of which restarts at the second step
    obs = np.random.default_rng(0).uniform(-1, 1, (2, 3, 3)).astype(np.float32)
    s_t = s_o = None
    for t, start in enumerate([np.ones(3, bool), np.array([False, True, False])]):
        a_t, s_t = agent.predict(obs[t], s_t, start, deterministic=True)
        a_o, s_o = policy.predict(obs[t], s_o, start)
        assert a_o.shape == (3, 1)
        for x, y in [(a_t, a_o), *zip(s_t, s_o)]:
            np.testing.assert_allclose(y, x, atol=TOLERANCE, rtol=0)
    with pytest.raises(ValueError, match="deterministic=True"):
        policy.predict(obs[0], deterministic=False)
    with pytest.raises(ValueError, match="state shapes"):
        policy.predict(obs[0], s_o[:2] + (np.zeros((3, 2), np.float32),), None)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "cartpole.onnx"
    trained("MlpPolicy", lambda: gym.make("CartPole-v1")).export_onnx(path)
    return path


def copy_export(source: Path, folder: Path) -> Path:
    target = folder / source.name
    target.write_bytes(source.read_bytes())
    Path(f"{target}.json").write_bytes(Path(f"{source}.json").read_bytes())
    return target


def test_a_tampered_onnx_file_is_refused(exported: Path, tmp_path: Path) -> None:
    path = copy_export(exported, tmp_path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one byte of a weight
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"refusing {path}.*sha256"):
        OnnxPolicy(path)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["action_space"].update(n=3),  # an edited space: the sidecar's checksum no longer matches
        lambda m: m.update(onnx_sha256="0" * 64),  # an edited hash
        lambda m: m.update(format_version=99),
        lambda m: m.update(format="something-else"),
    ],
    ids=["space", "hash", "version", "format"],
)
def test_a_tampered_sidecar_is_refused(exported: Path, tmp_path: Path, edit) -> None:  # noqa: ANN001
    path = copy_export(exported, tmp_path)
    sidecar = Path(f"{path}.json")
    meta = json.loads(sidecar.read_text())
    edit(meta)
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"refusing the sidecar {sidecar}"):
        OnnxPolicy(path)


def test_a_missing_malformed_or_oversized_sidecar_is_refused(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = copy_export(exported, tmp_path)
    sidecar = Path(f"{path}.json")
    sidecar.write_text("{not json")
    with pytest.raises(ValueError, match="refusing the sidecar"):
        OnnxPolicy(path)
    sidecar.unlink()
    with pytest.raises(ValueError, match="cannot read the ONNX sidecar"):
        OnnxPolicy(path)
    copy_export(exported, tmp_path)
    monkeypatch.setattr("ca11_agents.deploy.onnx_export.MAX_SIDECAR_BYTES", 100)
    with pytest.raises(ValueError, match="larger than 100 bytes"):
        OnnxPolicy(path)


def test_the_copied_export_still_loads(exported: Path, tmp_path: Path) -> None:
    policy = OnnxPolicy(copy_export(exported, tmp_path))
    action, state = policy.predict(np.zeros(4, np.float32))
    assert action.shape == () and action.dtype == np.int64 and [s.shape for s in state] == [(1, 16), (1, 8), (1, 2)]


@pytest.mark.parametrize("learner", [RSSMAgent, WorldModelAgent])
def test_the_planners_say_they_do_not_export(learner, tmp_path: Path) -> None:  # noqa: ANN001
    agent = learner("MlpPolicy", gym.make("CA11/ContinuousPendulum-v0"), seed=0)
    with pytest.raises(NotImplementedError, match=rf"{learner.__name__} acts by planning.*DreamerAgent.export_onnx"):
        agent.export_onnx(tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx").exists()


def test_a_missing_extra_is_named(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install \"\.\[deploy\]\""):
        OnnxPolicy(exported)
