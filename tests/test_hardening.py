"""Hostile files, careless arguments and broken inputs: each is refused with a message that names it, memory stays
bounded, and nothing the user had is lost."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import ca11_gym  # noqa: F401
from ca11_agents import DreamerAgent, RSSMAgent, WorldModelAgent
from ca11_agents.common import checkpoint

TINY = dict(learning_starts=20, batch_size=2, seq_len=4, imagination_horizon=3, imagination_starts=4,
            policy_kwargs=dict(hidden_dim=16, state_dim=8, units=16, actor_hidden_dims=[16], critic_hidden_dims=[16],
                               bins=15))  # fmt: skip
ENV = "CA11/ContinuousPendulum-v0"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "agent.zip"
    DreamerAgent("MlpPolicy", ENV, seed=0, **TINY).learn(30).save(path)
    return path


def _rewrite(src: Path, dst: Path, config=None, tensors: bytes | None = None, extra: dict | None = None) -> Path:
    """A copy of checkpoint ``src`` with its config (a function of the header) or tensor bytes replaced."""
    with zipfile.ZipFile(src) as archive:
        header = json.loads(archive.read("config.json"))
        payload = archive.read("tensors.safetensors")
    if config is not None:
        config(header)
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(header))
        archive.writestr("tensors.safetensors", payload if tensors is None else tensors)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return dst


def _zip_bomb(src: Path, dst: Path, inflated: int) -> Path:
    """A checkpoint whose tensors member declares one zero tensor of ``inflated`` bytes: a few hundred kB on disk."""
    with zipfile.ZipFile(src) as archive:
        config = archive.read("config.json")
    count = inflated // 4
    header = json.dumps({"policy/huge": {"dtype": "F32", "shape": [count], "data_offsets": [0, 4 * count]}}).encode()
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", config)
        with archive.open("tensors.safetensors", "w", force_zip64=True) as member:
            member.write(len(header).to_bytes(8, "little") + header)
            chunk = bytes(1 << 24)
            for _ in range(4 * count // len(chunk)):
                member.write(chunk)
    return dst


def _peak_rss_mb_of_load(path: Path) -> tuple[float, str]:
    """Peak resident memory (MB) that loading ``path`` adds in a fresh process, and how the load ended."""
    code = textwrap.dedent(f"""
        import resource, torch
        from ca11_agents import DreamerAgent
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            DreamerAgent.load({str(path)!r}); outcome = "loaded"
        except ValueError as exc:
            outcome = "ValueError: " + str(exc)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
        print(outcome)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    added, outcome = out.stdout.strip().split("\n", 1)
    return float(added), outcome


# ----------------------------------------------------------------------------------------- hostile checkpoints
@pytest.mark.slow
def test_a_zip_bomb_checkpoint_is_refused_before_it_inflates(saved, tmp_path):
    bomb = _zip_bomb(saved, tmp_path / "bomb.zip", inflated=1 << 30)  # 1 GiB of zeros in ~1 MB
    assert bomb.stat().st_size < 4 << 20
    added, outcome = _peak_rss_mb_of_load(bomb)
    assert "bomb.zip" in outcome and "inflate" in outcome
    assert added < 64  # MB: nothing near the declared GiB was allocated


@pytest.mark.slow
def test_a_config_asking_for_enormous_networks_is_refused_before_building_them(saved, tmp_path):
    def enormous(header):
        header["config"]["init_kwargs"]["policy_kwargs"].update(hidden_dim=20_000, units=20_000)

    hostile = _rewrite(saved, tmp_path / "enormous.zip", config=enormous)
    added, outcome = _peak_rss_mb_of_load(hostile)
    assert "enormous.zip" in outcome and "expected" in outcome  # the weights' shapes, checked on the meta device
    assert added < 64  # the real networks (GBs) were never built


def test_checkpoints_with_extra_duplicate_or_oversized_members_are_refused(saved, tmp_path):
    extra = _rewrite(saved, tmp_path / "extra.zip", extra={"payload.pkl": b"cos\nsystem\n"})
    with pytest.raises(ValueError, match=r"extra\.zip.*unexpected archive members"):
        DreamerAgent.load(extra)
    duplicate = tmp_path / "duplicate.zip"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(duplicate, "w") as dst, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it writes
        for name in ("config.json", "tensors.safetensors", "config.json"):
            dst.writestr(name, src.read(name))
    with pytest.raises(ValueError, match=r"duplicate\.zip.*unexpected archive members"):
        DreamerAgent.load(duplicate)
    big_config = _rewrite(saved, tmp_path / "big.zip", config=lambda h: h.update(padding="x" * (2 << 20)))
    with pytest.raises(ValueError, match=r"big\.zip.*config\.json declares"):
        DreamerAgent.load(big_config)


def test_tensor_headers_that_lie_about_their_data_are_refused(saved, tmp_path):
    with zipfile.ZipFile(saved) as archive:
        payload = archive.read("tensors.safetensors")
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8 : 8 + size])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [10**9]  # claims more data than the member holds
    raw = json.dumps(header).encode()
    lying = _rewrite(saved, tmp_path / "lying.zip", tensors=len(raw).to_bytes(8, "little") + raw + payload[8 + size :])
    with pytest.raises(ValueError, match=r"lying\.zip.*bytes"):
        DreamerAgent.load(lying)
    wrong = dict(header)
    wrong[name] = {**header[name], "dtype": "PICKLE"}
    raw = json.dumps(wrong).encode()
    weird = _rewrite(saved, tmp_path / "weird.zip", tensors=len(raw).to_bytes(8, "little") + raw + payload[8 + size :])
    with pytest.raises(ValueError, match=r"weird\.zip.*malformed header entry"):
        DreamerAgent.load(weird)


def test_a_checkpoint_does_not_choose_where_tensorboard_writes(saved, tmp_path):
    hostile = _rewrite(saved, tmp_path / "tb.zip",
                       config=lambda h: h["config"]["init_kwargs"].update(tensorboard_log="/etc/ca11"))  # fmt: skip
    assert DreamerAgent.load(hostile).tensorboard_log is None
    chosen = DreamerAgent.load(hostile, tensorboard_log=str(tmp_path / "tb"))
    assert chosen.tensorboard_log == str(tmp_path / "tb")


# --------------------------------------------------------------------------------------------- file permissions
def test_saving_never_touches_the_umask_and_keeps_an_existing_files_mode(saved, tmp_path, monkeypatch):
    agent = DreamerAgent.load(saved)

    def forbidden(*_):
        raise AssertionError("os.umask called: another thread could create a world-writable file meanwhile")

    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", forbidden)
        agent.save(tmp_path / "new.zip")
        assert stat.S_IMODE((tmp_path / "new.zip").stat().st_mode) == 0o640  # 0o666 less the umask 0o027
        private = tmp_path / "private.zip"
        agent.save(private)
        private.chmod(0o600)
        agent.save(private)
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        agent.save_replay_buffer(tmp_path / "replay.npz")
        assert stat.S_IMODE((tmp_path / "replay.npz").stat().st_mode) == 0o640
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temporary(saved, tmp_path):
    target = tmp_path / "keep.zip"
    target.write_bytes(saved.read_bytes())

    def explode(_):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_write(target, explode)
    assert target.read_bytes() == saved.read_bytes() and not list(tmp_path.glob(".*.tmp"))


# ----------------------------------------------------------------------------------------------- replay files
def test_a_failed_replay_load_keeps_the_buffer_and_names_the_file(tmp_path):
    agent = DreamerAgent("MlpPolicy", ENV, seed=0, **TINY).learn(30)
    before = {k: v.copy() for k, v in agent.replay_buffer.data.items()}
    path = tmp_path / "replay.npz"
    agent.save_replay_buffer(path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(broken, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data[: len(data) // 2] if name == "rewards.npy" else data)
    with pytest.raises(ValueError, match="broken.npz"):
        agent.load_replay_buffer(broken)
    for key, value in before.items():
        np.testing.assert_array_equal(agent.replay_buffer.data[key], value)


def test_a_replay_file_larger_than_the_buffer_is_refused_before_reading(tmp_path):
    agent = DreamerAgent("MlpPolicy", ENV, seed=0, buffer_size=100, **TINY).learn(30)
    big = DreamerAgent("MlpPolicy", ENV, seed=0, buffer_size=10_000, **TINY).learn(30)
    big.save_replay_buffer(tmp_path / "big.npz")
    with pytest.raises(ValueError, match=r"big\.npz.*10000 steps.*holds \(100\)"):
        agent.load_replay_buffer(tmp_path / "big.npz")


# ------------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("grad_clip", -1.0, "grad_clip must be a finite number > 0"),
        ("grad_clip", 0.0, "grad_clip must be a finite number > 0"),
        ("critic_tau", 1.5, "critic_tau must be a finite number > 0 and <= 1"),
        ("imagination_starts", 0, "imagination_starts must be an integer >= 1 or None"),
        ("imagination_starts", -5, "imagination_starts must be an integer >= 1"),
        ("ent_coef", math.nan, "ent_coef must be a finite number >= 0"),
        ("mc_value_coef", math.inf, "mc_value_coef must be a finite number"),
        ("batch_size", 2.5, "batch_size must be an integer >= 1"),
        ("seq_len", 1, "seq_len must be an integer >= 2"),
        ("learning_starts", -1, "learning_starts must be an integer >= 0"),
        ("gamma", 0.0, "gamma must be a finite number > 0 and <= 1"),
        ("train_freq", True, "train_freq must be an integer"),
        ("learning_rate", "fast", "learning_rate must be a finite number > 0"),
        ("buffer_size", 3, "buffer_size=3 keeps 3 steps per env .*fewer than seq_len=4"),
        ("buffer_size", 10**15, "buffer_size=1000000000000000 steps of .* more than this machine's"),
        ("on_nonfinite", "ignore", "on_nonfinite must be 'raise' or 'skip'"),
    ],
)
def test_bad_arguments_are_refused_with_their_name(argument, value, message):
    with pytest.raises(ValueError, match=f"DreamerAgent: {message}"):
        DreamerAgent("MlpPolicy", ENV, **{**TINY, argument: value})


@pytest.mark.parametrize("cls", [WorldModelAgent, RSSMAgent])
def test_the_planners_share_the_same_checks(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: grad_clip must be a finite number > 0"):
        cls("MlpPolicy", ENV, grad_clip=-1.0)
    with pytest.raises(ValueError, match=f"{cls.__name__}: .*horizon must be an integer >= 1"):
        cls("MlpPolicy", ENV, horizon=0)


def test_integral_floats_are_accepted_as_sizes_and_learn_checks_its_budget():
    agent = DreamerAgent("MlpPolicy", ENV, **{**TINY, "buffer_size": 1e4})  # as SB3 configs often write it
    assert agent.buffer_size == 10_000 and isinstance(agent.buffer_size, int)
    for bad in (-1, 2.5, "10"):
        with pytest.raises(ValueError, match="total_timesteps must be an integer >= 0"):
            agent.learn(bad)


# -------------------------------------------------------------------------------------------- non-finite data
class _Poisoned(gym.Wrapper):
    """Returns a NaN reward (or observation) at its ``at``-th step."""

    def __init__(self, env, at: int, field: str) -> None:
        super().__init__(env)
        self.at, self.field, self.steps = at, field, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps == self.at:
            if self.field == "reward":
                reward = math.nan
            else:
                obs = np.full_like(obs, np.inf)
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize("field", ["reward", "observation"])
def test_non_finite_env_data_is_refused_where_it_enters(field):
    agent = DreamerAgent("MlpPolicy", _Poisoned(gym.make(ENV), at=7, field=field), seed=0, **TINY)
    with pytest.raises(ValueError, match=f"non-finite {field} at env step 7"):
        agent.learn(30)
    assert np.isfinite(agent.replay_buffer.data["rewards"][:, :7]).all()  # nothing poisoned was stored


def test_a_non_finite_loss_raises_by_default_or_is_skipped_with_a_warning():
    agent = DreamerAgent("MlpPolicy", ENV, seed=0, **TINY).learn(30)
    agent.replay_buffer.data["observations"][:] = np.inf  # what a NaN-producing env would have left in the loss
    with pytest.raises(ValueError, match="non-finite world_model/loss"):
        agent.train()
    agent.on_nonfinite = "skip"
    weights = [p.detach().clone() for p in agent.policy.parameters()]
    with pytest.warns(RuntimeWarning, match="update skipped"):
        assert agent.train() == {}
    assert all(torch.equal(a, b) for a, b in zip(weights, agent.policy.parameters()))


# ------------------------------------------------------------------------------------------------ env edges
def test_env_edge_cases_get_a_message_that_names_them():
    vec = gym.make_vec("CA11/ContinuousCartPole-v0", num_envs=3, vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected an action of shape \(3, 1\), got the scalar 0.5"):
        vec.step(0.5)
    for env_id in ("CA11/ContinuousCartPole-v0", "CA11/ContinuousPendulum-v0"):
        with pytest.raises(ValueError, match="max_episode_steps must be a positive integer, got 0"):
            gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", max_episode_steps=0)
    with pytest.raises(ValueError, match="g must be a finite number, got nan"):
        gym.make("CA11/ContinuousPendulum-v0", g=math.nan)
    with pytest.raises(ValueError, match="g must be a finite number"):
        gym.make_vec("CA11/ContinuousPendulum-v0", num_envs=2, vectorization_mode="vector_entry_point", g=math.inf)
