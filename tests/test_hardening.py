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
    with pytest.raises(ValueError, match=r"extra\.zip.*3 archive members \(at most 2"):
        DreamerAgent.load(extra)
    duplicate = tmp_path / "duplicate.zip"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(duplicate, "w") as dst, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it writes
        for name in ("config.json", "tensors.safetensors", "config.json"):
            dst.writestr(name, src.read(name))
    with pytest.raises(ValueError, match=r"duplicate\.zip.*archive members"):
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
    with pytest.raises(ValueError, match=r"lying\.zip.*out of range"):
        DreamerAgent.load(lying)
    wrong = dict(header)
    wrong[name] = {**header[name], "dtype": "PICKLE"}
    raw = json.dumps(wrong).encode()
    weird = _rewrite(saved, tmp_path / "weird.zip", tensors=len(raw).to_bytes(8, "little") + raw + payload[8 + size :])
    with pytest.raises(ValueError, match=r"weird\.zip.*malformed header entry"):
        DreamerAgent.load(weird)


def test_a_checkpoint_carries_its_version_and_content_hash_and_checks_it(saved, tmp_path):
    from ca11_agents.common.checkpoint import checkpoint_info

    info = checkpoint_info(saved)
    assert info["kind"] == "DreamerAgent" and info["ca11_version"] == "0.1.0" and len(info["tensors_sha256"]) == 64
    with zipfile.ZipFile(saved) as archive:
        payload = bytearray(archive.read("tensors.safetensors"))
    payload[-1] ^= 0x01  # one bit of one weight: still a well-formed file
    with pytest.raises(ValueError, match=r"flipped\.zip.*do not match their recorded sha256"):
        DreamerAgent.load(_rewrite(saved, tmp_path / "flipped.zip", tensors=bytes(payload)))

    def drop(header):  # a checkpoint saved before versions and hashes were recorded still loads
        del header["ca11_version"], header["tensors_sha256"]

    DreamerAgent.load(_rewrite(saved, tmp_path / "old.zip", config=drop))
    assert checkpoint_info(tmp_path / "old.zip")["tensors_sha256"] is None


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
    big = DreamerAgent("MlpPolicy", ENV, seed=0, buffer_size=10_000, **TINY).learn(130)
    big.save_replay_buffer(tmp_path / "big.npz")  # the 130 stored steps (the file holds what was stored)
    with pytest.raises(ValueError, match=r"big\.npz.*130 steps.*holds \(100\)"):
        agent.load_replay_buffer(tmp_path / "big.npz")
    assert len(agent.replay_buffer) == 30  # untouched


def test_replay_files_hold_the_stored_steps_and_load_into_any_buffer_that_fits(tmp_path):
    small = DreamerAgent("MlpPolicy", ENV, seed=0, buffer_size=1_000_000, **TINY).learn(40)
    small.save_replay_buffer(tmp_path / "r.npz")
    assert (tmp_path / "r.npz").stat().st_size < 20_000  # 40 steps, not a million slots
    wrapped = DreamerAgent("MlpPolicy", ENV, seed=0, buffer_size=30, **TINY).learn(40)  # a ring that wrapped
    wrapped.save_replay_buffer(tmp_path / "w.npz")
    for source, path in ((small, "r.npz"), (wrapped, "w.npz")):
        target = DreamerAgent("MlpPolicy", ENV, seed=1, buffer_size=500, **TINY)
        target.load_replay_buffer(tmp_path / path)
        buffer, original = target.replay_buffer, source.replay_buffer
        assert buffer.size_per_env == 500 and buffer.count == original.count  # capacity kept, steps restored
        order = (original.pos - original.count + np.arange(original.count)) % original.size_per_env
        np.testing.assert_array_equal(buffer.data["rewards"][:, : buffer.count], original.data["rewards"][:, order])
        buffer.add(*(np.zeros((1, *v.shape[2:]), v.dtype) for k, v in buffer.data.items()
                     if k in ("observations", "actions", "rewards", "terminated", "is_first")))  # fmt: skip
        assert buffer.count == original.count + 1  # goes on after the loaded steps


# ------------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("grad_clip", -1.0, "grad_clip must be a number > 0"),
        ("grad_clip", 0.0, "grad_clip must be a number > 0"),
        ("grad_clip", math.nan, "grad_clip must be a number > 0"),
        ("critic_tau", 1.5, "critic_tau must be a finite number > 0 and <= 1"),
        ("imagination_starts", 0, "imagination_starts must be an integer >= 1 or None"),
        ("imagination_starts", -5, "imagination_starts must be an integer >= 1"),
        ("ent_coef", math.nan, "ent_coef must be a finite number >= 0"),
        ("mc_value_coef", math.inf, "mc_value_coef must be a finite number"),
        ("batch_size", 2.5, "batch_size must be an integer >= 1"),
        ("seq_len", 0, "seq_len must be an integer >= 1"),
        ("replay_value_coef", 0.3, r"seq_len must be >= 2 \(replay_value_coef > 0"),  # with TINY's seq_len=1 below
        ("batch_size", 10**400, "batch_size must be an integer >= 1"),
        ("learning_starts", -1, "learning_starts must be an integer >= 0"),
        ("gamma", 0.0, "gamma must be a finite number > 0 and <= 1"),
        ("train_freq", True, "train_freq must be an integer"),
        ("learning_rate", "fast", "learning_rate must be a finite number >= 0"),
        ("buffer_size", 3, "buffer_size=3 keeps 3 steps per env .*fewer than seq_len=4"),
        ("buffer_size", 10**15, "buffer_size=1000000000000000 steps of .* more than this machine's"),
        ("on_nonfinite", "ignore", "on_nonfinite must be one of 'raise', 'skip'"),
        ("actor_grad", "backprop", "actor_grad must be one of 'reinforce', 'dynamics'"),
    ],
)
def test_bad_arguments_are_refused_with_their_name(argument, value, message):
    extra = {"seq_len": 1} if argument == "replay_value_coef" else {}
    with pytest.raises(ValueError, match=f"DreamerAgent: {message}"):
        DreamerAgent("MlpPolicy", ENV, **{**TINY, argument: value, **extra})


def test_deliberate_extremes_that_users_rely_on_still_work():
    agent = DreamerAgent("MlpPolicy", ENV, **{**TINY, "verbose": True, "grad_clip": math.inf, "actor_lr": 0.0,
                                              "seq_len": 1, "seed": np.int64(3)})  # fmt: skip
    assert agent.verbose == 1 and agent.grad_clip == math.inf and agent.seed == 3
    with pytest.raises(ValueError, match="WorldModelAgent: seq_len must be >= 2 .*transitions"):
        WorldModelAgent("MlpPolicy", ENV, seq_len=1)


@pytest.mark.parametrize("cls", [WorldModelAgent, RSSMAgent])
def test_the_planners_share_the_same_checks(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: grad_clip must be a number > 0"):
        cls("MlpPolicy", ENV, grad_clip=-1.0)
    with pytest.raises(ValueError, match=f"{cls.__name__}: .*horizon must be an integer >= 1"):
        cls("MlpPolicy", ENV, horizon=0)
    with pytest.raises(ValueError, match=f"{cls.__name__}: .*(planner|method)"):
        cls("MlpPolicy", ENV, planner="random")


def test_the_no_update_warning_counts_the_window_and_the_schedule():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one update is due at step 21: no warning
        DreamerAgent("MlpPolicy", ENV, **{**TINY, "learning_starts": 20, "train_freq": 2}).learn(21)
    with pytest.warns(UserWarning, match="seq_len=32"):  # no 32-step window stored by step 20
        DreamerAgent("MlpPolicy", ENV, **{**TINY, "learning_starts": 0, "seq_len": 32}).learn(20)


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


def test_a_non_finite_reset_observation_is_refused_before_the_first_step():
    class NanReset(gym.Wrapper):
        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            return np.full_like(obs, np.nan), info

    with pytest.raises(ValueError, match="non-finite reset observation at env step 0"):
        DreamerAgent("MlpPolicy", NanReset(gym.make(ENV)), seed=0, **TINY).learn(30)


def test_one_non_finite_batch_does_not_poison_the_return_scale():
    from ca11_agents.dreamer.imagination import ReturnNormalizer

    norm = ReturnNormalizer()
    norm.update(torch.linspace(0.0, 10.0, 101))
    before = float(norm.range)
    norm.update(torch.full((50,), math.inf))
    assert float(norm.range) == before
    norm.update(torch.cat([torch.linspace(0.0, 10.0, 101), torch.tensor([math.nan])]))
    assert math.isfinite(float(norm.range))


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


def _header_only(saved: Path, dst: Path, header: dict) -> Path:
    raw = json.dumps(header).encode()
    return _rewrite(saved, dst, tensors=len(raw).to_bytes(8, "little") + raw)


def test_headers_and_configs_that_would_cost_minutes_are_refused_at_once(saved, tmp_path):
    import time

    cases = {
        "dims.zip": lambda: _header_only(saved, tmp_path / "dims.zip", {"x": {"dtype": "F32", "shape": [2] * 200_000,
                                                                           "data_offsets": [0, 4]}}),  # fmt: skip
        "deep.zip": lambda: _rewrite(saved, tmp_path / "deep.zip", config=lambda h: h["config"]["init_kwargs"][
            "policy_kwargs"].update(actor_hidden_dims=[1] * 100_000)),  # fmt: skip
        # Nested options are bounded too: a transformer core's context sizes every env's carried state.
        "context.zip": lambda: _rewrite(saved, tmp_path / "context.zip", config=lambda h: h["config"]["init_kwargs"][
            "policy_kwargs"].update(rssm_kwargs={"core": "transformer", "core_kwargs": {"context": 60_000}})),
    }
    for name, make in cases.items():
        path = make()
        start = time.perf_counter()
        with pytest.raises(ValueError, match=name.replace(".", r"\.")) as info:
            DreamerAgent.load(path)
        assert time.perf_counter() - start < 5.0 and len(str(info.value)) < 2_000
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(5_000):
            archive.writestr(f"m{i}", b"")
    with pytest.raises(ValueError, match=r"many\.zip.*5000 archive members"):
        DreamerAgent.load(many)


def test_a_wrong_env_is_named_as_such_not_as_a_broken_file(saved):
    with pytest.raises(ValueError, match="the env's observation space") as info:
        DreamerAgent.load(saved, env=gym.make("CA11/ContinuousCartPole-v0"))
    assert "is not a valid" not in str(info.value) and "agent.zip" in str(info.value)


def test_malformed_optimizer_settings_are_refused_with_the_file(saved, tmp_path):
    def bad_lr(header):
        header["config"]["optimizers"]["model"]["param_groups"][0]["lr"] = "abc"

    with pytest.raises(ValueError, match=r"lr\.zip.*lr='abc'"):
        DreamerAgent.load(_rewrite(saved, tmp_path / "lr.zip", config=bad_lr))

    def bad_scalars(header):
        header["config"]["optimizers"]["model"]["scalars"] = []

    with pytest.raises(ValueError, match=r"scalars\.zip"):
        DreamerAgent.load(_rewrite(saved, tmp_path / "scalars.zip", config=bad_scalars))


def test_a_stored_value_the_rules_refuse_can_be_overridden_at_load(saved, tmp_path):
    old = _rewrite(saved, tmp_path / "old.zip", config=lambda h: h["config"]["init_kwargs"].update(grad_clip=-1.0))
    with pytest.raises(ValueError, match=r"old\.zip.*grad_clip must be.*override it"):
        DreamerAgent.load(old)
    assert DreamerAgent.load(old, grad_clip=10.0).grad_clip == 10.0


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


# ----------------------------------------------------------------------------------------- benchmark markers
def test_benchmark_markers_are_read_with_a_bound_and_named_when_broken(tmp_path):
    from benchmarks.report import MAX_JSON_BYTES, finished_runs, read_json

    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "ok.json").write_text(json.dumps({"complete": True}))
    (runs / "ok.csv").write_text("algo\n")
    assert list(finished_runs(runs)) == ["ok"]
    (runs / "huge.json").write_bytes(b" " * (MAX_JSON_BYTES + 1))
    with pytest.raises(ValueError, match=r"huge\.json: larger than"):
        finished_runs(runs)
    (runs / "huge.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"huge\.json: expected a JSON object"):
        read_json(runs / "huge.json")
    (runs / "huge.json").write_bytes(b"\xff{")
    with pytest.raises(ValueError, match=r"huge\.json: not valid JSON"):
        read_json(runs / "huge.json")
