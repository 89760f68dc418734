"""The advanced world-model options (issue #15): the transformer dynamics core, the contrastive and
redundancy-reduction representation losses, calibrated uncertainty, and the parameterised envs."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control import CartPoleEnv, PendulumEnv
from torch import nn

import ca11_gym  # noqa: F401  (registers the CA11 environments)
from ca11_agents import DreamerAgent, RSSMAgent
from ca11_agents.common.distributions import TwoHotSymlog, sample_one_hot, unimix_probs
from ca11_agents.world_models import (
    ContrastiveRepresentation,
    LatentDynamicsModel,
    RecurrentStateSpaceModel,
    RedundancyReduction,
    TransformerCore,
    interval_coverage,
)
from ca11_gym.envs.cartpole import ContinuousCartPole, ContinuousCartPoleVectorEnv
from ca11_gym.envs.pendulum import ContinuousPendulum, ContinuousPendulumVectorEnv

_NETS = dict(hidden_dim=16, state_dim=16, classes=4, units=16, bins=31)
OPTIONS = {
    "transformer": {"core": "transformer", "core_kwargs": {"context": 4, "heads": 2}},
    "contrastive": {"representation": "contrastive"},
    "redundancy": {"representation": "redundancy"},
}


def _rollout(agent, env_id: str, steps: int = 15) -> np.ndarray:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=1)
    state, start, actions = None, np.ones(1, bool), []
    for _ in range(steps):
        action, state = agent.predict(obs, state, start, deterministic=True)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        start = np.array([terminated or truncated])
        if start[0]:
            obs, _ = env.reset()
    return np.array(actions)


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_each_option_trains_saves_and_loads_with_identical_predictions(option, tmp_path):
    agent = DreamerAgent(
        "MlpPolicy", "Pendulum-v1", seed=0, learning_starts=40, batch_size=4, seq_len=8, imagination_horizon=3,
        imagination_starts=8, train_freq=8,
        policy_kwargs=dict(**_NETS, actor_hidden_dims=[16], critic_hidden_dims=[16], rssm_kwargs=OPTIONS[option]),
    ).learn(80)  # fmt: skip
    assert agent._n_updates > 0
    terms = agent.train()
    assert all(math.isfinite(float(v)) for v in terms.values())
    agent.save(tmp_path / "agent.zip")
    loaded = DreamerAgent.load(tmp_path / "agent.zip", env="Pendulum-v1")
    assert loaded.policy.rssm.deter_dim == agent.policy.rssm.deter_dim
    assert np.array_equal(_rollout(agent, "Pendulum-v1"), _rollout(loaded, "Pendulum-v1"))


def test_the_rssm_planner_plans_over_a_transformer_core(tmp_path):
    agent = RSSMAgent(
        "MlpPolicy", "CA11/SequenceEnvironment-v0", seed=0, learning_starts=30, batch_size=2, seq_len=8, horizon=2,
        planner_kwargs=dict(candidates=8, elites=2, iterations=1),
        policy_kwargs=dict(**_NETS, rssm_kwargs=OPTIONS["transformer"]),
    ).learn(60)  # fmt: skip
    rssm = agent.policy.rssm
    env_id = "CA11/SequenceEnvironment-v0"
    obs, _ = gym.make(env_id).reset(seed=0)
    _, (deter, *_) = agent.predict(obs, None, np.ones(1, bool), deterministic=True)
    assert deter.shape == (1, rssm.deter_dim) and rssm.deter_dim > rssm.hidden_dim  # h, the cache and the mask
    agent.save(tmp_path / "rssm.zip")
    assert np.array_equal(_rollout(agent, env_id), _rollout(RSSMAgent.load(tmp_path / "rssm.zip"), env_id))


def test_the_transformer_cached_steps_equal_its_uncached_forward():
    torch.manual_seed(0)
    core = TransformerCore(8, 6, context=3, layers=2, heads=2)
    with torch.no_grad():
        for block in core.blocks:
            block.age_bias.normal_()  # relative positions matter: a zero bias would not test their order
    xs, is_first = torch.randn(2, 9, 8), torch.zeros(2, 9)
    is_first[:, 0], is_first[1, 4] = 1, 1  # the second sequence starts a new episode at step 4
    state, outputs = torch.zeros(2, core.state_size), []
    for t in range(9):
        state = core(xs[:, t], state * (1 - is_first[:, t : t + 1]))  # a reset zeroes the state, as the RSSM does
        outputs.append(state[:, :6])
    torch.testing.assert_close(torch.stack(outputs, 1), core.sequence(xs, is_first), atol=1e-5, rtol=1e-5)
    # The memory is bounded: each of the 2 layers looks 2 steps back, so x_0 reaches h_4 but not h_5.
    changed = xs.clone()
    changed[0, 0, 0] += 10.0  # one entry: LayerNorm would not see a shift of them all
    assert torch.allclose(core.sequence(changed)[0, 5:], core.sequence(xs)[0, 5:], atol=1e-6)
    assert not torch.allclose(core.sequence(changed)[0, 4], core.sequence(xs)[0, 4])


def test_the_notebook_rssm_takes_the_options():
    rssm = RecurrentStateSpaceModel(3, 1, 16, 16, classes=4, units=16, core="transformer",
                                    representation="contrastive")  # fmt: skip
    batch = {"observations": torch.randn(2, 6, 3), "actions": torch.randn(2, 6, 1), "rewards": torch.randn(2, 6)}
    loss, metrics = rssm.loss(batch)
    loss.backward()
    assert math.isfinite(metrics["reconstruction_loss"])
    pred, reward, hidden = rssm.imagine(torch.randn(2, 1, 3), torch.randn(2, 1, 1), torch.zeros(2, rssm.deter_dim))
    assert pred.shape == (2, 1, 3) and reward.shape == (2, 1) and hidden.shape == (2, rssm.deter_dim)
    with pytest.raises(ValueError, match="representation"):
        RecurrentStateSpaceModel(3, 1, 16, 16, classes=4, representation="pixels")


def test_the_contrastive_loss_is_lowest_for_matched_pairs():
    space = gym.spaces.Box(-1, 1, (4,), np.float32)
    parts = dict(units=8, layers=1, symlog_obs=True, cnn_depth=4)
    module = ContrastiveRepresentation(space, 12, 4, 4, parts, temperature=0.1, probe_fraction=0.0)
    module.query, module.key = nn.Identity(), nn.Identity()  # compare the raw vectors
    embed = torch.eye(4) + 0.1  # four distinct embeddings
    matched = module.info_nce(embed, embed)
    shuffled = module.info_nce(embed.roll(1, 0), embed)
    assert matched.shape == (4,) and bool((matched < shuffled).all())
    assert float(matched.mean()) < 0.05  # nearly certain of the right partner among real negatives


def test_steps_that_start_an_episode_are_negatives_only_in_the_contrastive_loss():
    space = gym.spaces.Box(-1, 1, (4,), np.float32)
    parts = dict(units=8, layers=1, symlog_obs=True, cnn_depth=4)
    module = ContrastiveRepresentation(space, 4, 4, 4, parts, probe_fraction=0.0)
    module.query, module.key = nn.Identity(), nn.Identity()
    embed = torch.eye(4).reshape(2, 2, 4) + 0.1
    h = embed.roll(1, 0)  # every prediction wrong: each step's loss is positive
    is_first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = module.loss(h, None, embed, is_first)
    assert loss.shape == (2, 2) and float(loss[0, 0]) == float(loss[1, 1]) == 0.0
    # The other steps are scored against all four embeddings, the window starts' included.
    full = module.info_nce(h.reshape(4, 4), embed.reshape(4, 4)).reshape(2, 2)
    assert torch.equal(loss[0, 1], full[0, 1]) and torch.equal(loss[1, 0], full[1, 0]) and float(full[0, 0]) > 0.0


def test_the_redundancy_loss_vanishes_for_decorrelated_identical_views():
    space = gym.spaces.Box(-1, 1, (4,), np.float32)
    parts = dict(units=8, layers=1, symlog_obs=True, cnn_depth=4)
    module = RedundancyReduction(space, 4, 4, 4, parts, probe_fraction=0.0)
    module.projector = nn.Identity()
    views = torch.tensor(np.random.default_rng(0).standard_normal((4096, 4)), dtype=torch.float32)
    same = module.loss(views.reshape(64, 64, 4), None, views.reshape(64, 64, 4))
    other = module.loss(views.reshape(64, 64, 4), None, views.roll(1, 0).reshape(64, 64, 4))
    assert float(same) < 0.01 < 0.5 < float(other)


def test_decoder_free_models_dream_through_the_probe():
    rssm = RecurrentStateSpaceModel(3, 1, 16, 16, classes=4, units=16, representation="redundancy")
    assert rssm.decode(torch.zeros(5, rssm.feature_dim)).shape == (5, 3)
    blind = RecurrentStateSpaceModel(3, 1, 16, 16, classes=4, representation="redundancy",
                                     representation_kwargs={"probe_fraction": 0.0})  # fmt: skip
    with pytest.raises(RuntimeError, match="probe"):
        blind.decode(torch.zeros(5, blind.feature_dim))


def test_interval_coverage_of_a_known_gaussian():
    generator = torch.Generator().manual_seed(0)
    mean, std = torch.randn(200_000, generator=generator), torch.rand(200_000, generator=generator) + 0.1
    target = mean + std * torch.randn(200_000, generator=generator)
    coverage = interval_coverage(mean, std, target)
    assert abs(coverage[0.68] - 0.68) < 0.005 and abs(coverage[0.95] - 0.95) < 0.005
    assert interval_coverage(mean, 2 * std, target)[0.68] > 0.9  # too wide: over-covers
    with pytest.raises(ValueError, match="levels"):
        interval_coverage(mean, std, target, levels=(95,))


def test_the_ensemble_predictive_adds_disagreement_to_the_members_noise():
    model = LatentDynamicsModel(2, 1, (8,), stochastic=True, ensemble_size=4)
    z, action = torch.randn(10, 2), torch.randn(10, 1)
    means, stds = model.members(z, action)
    mean, std = model.predictive(z, action)
    torch.testing.assert_close(mean, means.mean(0))
    torch.testing.assert_close(std.pow(2), stds.pow(2).mean(0) + means.var(0, unbiased=False))
    assert set(model.calibration(z, action, z)) == {"members", "ensemble"}
    assert set(LatentDynamicsModel(2, 1, (8,), stochastic=False, ensemble_size=3).calibration(z, action, z)) == {
        "ensemble"
    }


def _pendulum_v1(mass: float, length: float) -> PendulumEnv:
    env = PendulumEnv(g=10.0)
    env.m, env.l = mass, length
    return env


def _cartpole_v1(gravity: float, masscart: float, masspole: float, length: float) -> CartPoleEnv:
    env = CartPoleEnv()
    env.gravity, env.masscart, env.masspole, env.length = gravity, masscart, masspole, length
    env.total_mass, env.polemass_length = masspole + masscart, masspole * length  # CartPole-v1 derives them once
    return env


@pytest.mark.parametrize("physics", [{}, {"mass": 1.3, "length": 0.8}])
def test_the_pendulum_matches_pendulum_v1_with_its_physics_changed(physics):
    ours, theirs = ContinuousPendulum(**physics), _pendulum_v1(physics.get("mass", 1.0), physics.get("length", 1.0))
    obs, _ = ours.reset(seed=3)
    ref, _ = theirs.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert np.array_equal(obs, ref)
        a = rng.uniform(-1, 1, (1,)).astype(np.float32)
        obs, reward, *_ = ours.step(a)
        ref, ref_reward, *_ = theirs.step(np.array([2.0 * a[0]], dtype=np.float64))  # the torque in float64
        assert reward == ref_reward


@pytest.mark.parametrize("physics", [{}, {"gravity": 12.0, "masscart": 1.5, "masspole": 0.3, "length": 0.75}])
def test_the_cartpole_matches_cartpole_v1_with_its_physics_changed(physics):
    ours = ContinuousCartPole(**physics)
    defaults = {"gravity": 9.8, "masscart": 1.0, "masspole": 0.1, "length": 0.5}
    theirs = _cartpole_v1(**{**defaults, **physics})
    obs, _ = ours.reset(seed=5)
    ref, _ = theirs.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(100):
        assert np.array_equal(obs, ref)
        push = int(rng.integers(2))
        obs, _, terminated, *_ = ours.step(np.array([1.0 if push else -1.0], np.float32))
        ref, _, ref_terminated, *_ = theirs.step(push)
        assert terminated == ref_terminated
        if terminated:
            seed = int(rng.integers(100))
            obs, _ = ours.reset(seed=seed)
            ref, _ = theirs.reset(seed=seed)


def test_the_vector_twins_follow_the_changed_physics():
    single, vector = ContinuousPendulum(mass=2.0), ContinuousPendulumVectorEnv(num_envs=1, mass=2.0)
    single_cart, vector_cart = ContinuousCartPole(length=1.0), ContinuousCartPoleVectorEnv(num_envs=1, length=1.0)
    for one, many in ((single, vector), (single_cart, vector_cart)):
        obs, _ = one.reset(seed=2)
        batch, _ = many.reset(seed=2)
        for _ in range(8):  # before the cart-pole's pole falls (the vector env would reset it)
            assert np.array_equal(obs, batch[0])
            obs, *_ = one.step(np.array([0.5], np.float32))
            batch, *_ = many.step(np.array([[0.5]], np.float32))


@pytest.mark.parametrize(
    ("env_id", "kwargs", "name"),
    [
        ("CA11/ContinuousPendulum-v0", {"mass": 0.0}, "mass"),
        ("CA11/ContinuousPendulum-v0", {"length": 11.0}, "length"),
        ("CA11/ContinuousCartPole-v0", {"masspole": -1.0}, "masspole"),
        ("CA11/ContinuousCartPole-v0", {"gravity": math.nan}, "gravity"),
    ],
)
def test_out_of_range_physics_are_named(env_id, kwargs, name):
    with pytest.raises(ValueError, match=name):
        gym.make(env_id, **kwargs)


def test_decoded_values_and_probabilities_keep_float32_under_bf16_autocast():
    twohot = TwoHotSymlog()
    target = torch.tensor([-297.8, -296.7, -295.6, -294.5, -293.4])
    logits = torch.log(twohot.encode(target) + 1e-6)  # two-hot predictions of returns a unit apart
    reference = twohot.mean(logits)
    assert torch.allclose(reference, target, atol=1.0)
    layer = nn.Linear(twohot.bins, twohot.bins)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(twohot.bins))
        layer.bias.zero_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        head = layer(logits)  # a network's output: bfloat16 under autocast
        assert head.dtype == torch.bfloat16
        decoded = twohot.mean(head)
        probs = unimix_probs(head[:, :8], 0.01)
        one_hot = sample_one_hot(probs)
    assert decoded.dtype == probs.dtype == torch.float32
    # bf16 logits round, but the decoding itself no longer does (it was off by up to 8 and not monotone).
    assert torch.allclose(decoded, reference, atol=0.5) and bool((decoded.diff() > 0.5).all())
    assert set(one_hot.detach().unique().tolist()) <= {0.0, 1.0}


def test_bf16_imagined_returns_are_float32(monkeypatch):
    import ca11_agents.dreamer.imagination as imagination

    seen = []
    original = imagination.lambda_returns

    def recording(rewards, continues, values, gamma, lam):
        seen.append({rewards.dtype, continues.dtype, values.dtype})
        return original(rewards, continues, values, gamma, lam)

    monkeypatch.setattr(imagination, "lambda_returns", recording)
    agent = DreamerAgent("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=40, batch_size=4, seq_len=8,
                         imagination_horizon=3, imagination_starts=8, policy_kwargs=_NETS, precision="bf16")  # fmt: skip
    agent.learn(44)
    agent.train()
    assert seen and all(dtypes == {torch.float32} for dtypes in seen)


@pytest.mark.parametrize("cls", [DreamerAgent, RSSMAgent])
def test_bf16_mixed_precision_trains_and_is_saved(cls, tmp_path):
    kwargs = dict(learning_starts=40, batch_size=4, seq_len=8, policy_kwargs=_NETS, precision="bf16")
    if cls is DreamerAgent:
        kwargs.update(imagination_horizon=3, imagination_starts=8)
    agent = cls("MlpPolicy", "Pendulum-v1", seed=0, **kwargs).learn(60)
    assert all(math.isfinite(float(v)) for v in agent.train().values())
    assert all(p.dtype == torch.float32 for p in agent.policy.parameters())  # autocast casts copies, not weights
    agent.save(tmp_path / "agent.zip")
    assert cls.load(tmp_path / "agent.zip").precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        cls("MlpPolicy", "Pendulum-v1", precision="fp8")


def test_a_transformer_agent_exports_to_onnx_with_the_same_actions(tmp_path):
    pytest.importorskip("onnxruntime")
    from ca11_agents.deploy.onnx_export import OnnxPolicy

    nets = dict(**_NETS, actor_hidden_dims=[16], critic_hidden_dims=[16], rssm_kwargs=OPTIONS["transformer"])
    agent = DreamerAgent("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=40, batch_size=4, seq_len=8,
                         policy_kwargs=nets).learn(50)  # fmt: skip
    agent.export_onnx(tmp_path / "agent.onnx")
    onnx = OnnxPolicy(tmp_path / "agent.onnx")
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    ours = theirs = None
    for step in range(12):  # past the 4-step window: the cache slides in both
        start = np.array([step == 0])
        action, ours = agent.predict(obs, ours, start, deterministic=True)
        exported, theirs = onnx.predict(obs, theirs, start)
        np.testing.assert_allclose(exported, action, atol=1e-5)
        obs, *_ = env.step(action)


def test_float32_math_finds_its_tensors_wherever_they_are_passed():
    from ca11_agents.common.distributions import float32_math

    @float32_math
    def dtypes(*args, **kwargs):
        return [v.dtype for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]

    low = torch.ones(2, dtype=torch.bfloat16)
    assert dtypes(low, other=low) == [torch.float32, torch.float32]
    assert dtypes("self", 1.0, probs=low) == [torch.float32]
    assert dtypes(3) == [] and dtypes(torch.ones(2)) == [torch.float32]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dtypes(torch.ones(2), low) == [torch.float32, torch.float32]
