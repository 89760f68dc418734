"""The RSSM's pluggable parts: encoder and decoder from the space, the representation loss and the dynamics core."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from ca11_agents import DreamerAgent
from ca11_agents.world_models.encoders import CNNEncoder, MLPEncoder
from ca11_agents.world_models.rssm import RecurrentStateSpaceModel

SMALL = dict(state_dim=8, hidden_dim=16, classes=4, units=16, reward_bins=31)


def batch(obs: torch.Tensor | dict, b: int = 2, t: int = 5, a: int = 2) -> dict:
    return {"observations": obs, "actions": torch.rand(b, t, a) * 2 - 1, "rewards": torch.rand(b, t),
            "terminated": torch.zeros(b, t), "is_first": torch.zeros(b, t)}  # fmt: skip


def test_the_space_chooses_the_encoder_and_the_loss_trains_on_frames():
    space = spaces.Box(0, 255, (3, 16, 16), np.uint8)
    rssm = RecurrentStateSpaceModel(space, 2, cnn_depth=4, **SMALL)
    assert isinstance(rssm.encoder, CNNEncoder)
    assert isinstance(RecurrentStateSpaceModel(4, 2, **SMALL).encoder, MLPEncoder)
    frames = torch.randint(0, 256, (2, 5, 3, 16, 16), dtype=torch.uint8)
    loss, terms, post = rssm.loss_terms(batch(frames))
    loss.backward()
    assert post.deter.shape == (2, 5, 16) and torch.isfinite(loss)
    assert all(p.grad is not None for p in rssm.encoder.parameters())
    assert rssm.decode(rssm.features(post)).shape == (2, 5, 3, 16, 16)


class ProjectionLoss(nn.Module):
    """A decoder-free representation loss: features must predict a fixed random projection of the observation."""

    def __init__(self, feature_dim: int, obs_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(feature_dim, 3)
        self.register_buffer("proj", torch.randn(obs_dim, 3))
        self.calls = 0

    def loss(self, features: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return (self.head(features) - obs @ self.proj).pow(2).sum(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


def test_a_representation_loss_and_a_dynamics_core_plug_in():
    rssm = RecurrentStateSpaceModel(
        4, 2, decoder=ProjectionLoss(16 + 8, 4), core=nn.GRUCell, **SMALL
    )
    assert isinstance(rssm.gru, nn.GRUCell)
    loss, terms, _ = rssm.loss_terms(batch(torch.randn(2, 5, 4)))
    loss.backward()
    assert rssm.decoder.calls == 1 and rssm.decoder.head.weight.grad is not None
    assert rssm.gru.weight_hh.grad is not None
    with pytest.raises(ValueError, match="unknown core 'lstm'"):
        RecurrentStateSpaceModel(4, 2, core="lstm", **SMALL)


def test_rssm_arguments_reach_the_agent_and_its_checkpoint(tmp_path):
    sizes = dict(hidden_dim=16, state_dim=16, classes=4, units=16, actor_hidden_dims=[16], critic_hidden_dims=[16])
    kwargs = dict(policy_kwargs=dict(**sizes, bins=31, rssm_kwargs={"layers": 2, "core": "gru"}))
    agent = DreamerAgent("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=20, batch_size=2, seq_len=4,
                         imagination_horizon=2, train_freq=8, **kwargs).learn(40)  # fmt: skip
    assert len([m for m in agent.policy.rssm.encoder if isinstance(m, nn.Linear)]) == 2
    agent.save(tmp_path / "a.zip")
    loaded = DreamerAgent.load(tmp_path / "a.zip")
    obs = np.zeros(3, np.float32)
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_the_termination_weight_scales_the_continue_loss_of_terminal_steps_only():
    data = batch(torch.randn(2, 5, 3))
    data["terminated"][0, 2] = 1.0
    losses = {}
    for weight in (1.0, 10.0):
        torch.manual_seed(0)  # the same networks, the same posterior draws
        rssm = RecurrentStateSpaceModel(3, 2, **SMALL, termination_weight=weight)
        torch.manual_seed(1)
        losses[weight] = rssm.loss_terms(data)[1]["continue_loss"].item() * data["terminated"].numel()
    torch.manual_seed(0)
    rssm = RecurrentStateSpaceModel(3, 2, **SMALL)
    torch.manual_seed(1)
    _, _, post = rssm.loss_terms(data)
    logits = rssm.cont_head(torch.cat([rssm.features(post), data["actions"]], -1)).squeeze(-1)
    terminal = torch.nn.functional.softplus(logits[0, 2]).item()  # -log(1 - sigmoid): the "ends here" term
    assert losses[10.0] - losses[1.0] == pytest.approx(9.0 * terminal, rel=1e-4)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="termination_weight"):
            RecurrentStateSpaceModel(3, 2, **SMALL, termination_weight=bad)


def test_standardised_observations_weigh_every_dimension_alike_and_train_their_statistics(tmp_path):
    torch.manual_seed(0)
    obs = torch.randn(2, 5, 3) * torch.tensor([1.0, 0.01, 100.0])
    rssm = RecurrentStateSpaceModel(3, 2, **SMALL, obs_norm=True)
    assert not rssm.encoder.symlog_obs and not rssm.decoder.symlog_obs  # standardised, not also symlogged
    with torch.no_grad():  # a probe (no gradients) leaves the statistics as they were
        rssm.loss_terms(batch(obs))
    assert rssm.obs_norm.count_0.item() == 0
    rssm.loss_terms(batch(obs))  # training does fold the batch in
    assert rssm.obs_norm.count_0.item() == 10
    normalised = rssm.obs_norm.normalize(obs)
    feats = torch.randn(2, 5, rssm.feature_dim)
    assert torch.allclose(rssm.decode(feats), rssm.obs_norm.denormalize(rssm.decoder(feats)))  # observation units
    assert torch.allclose(rssm.embed(obs), rssm.encoder(normalised))
    assert torch.allclose(rssm.decoder.loss(feats, normalised), (rssm.decoder(feats) - normalised).pow(2).sum(-1))
    # The agent's checkpoint carries the statistics.
    agent = DreamerAgent("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=20, batch_size=2, seq_len=4,
                         imagination_horizon=2, train_freq=8,
                         policy_kwargs=dict(hidden_dim=16, state_dim=16, classes=4, units=16, bins=31,
                                            actor_hidden_dims=[16], critic_hidden_dims=[16],
                                            rssm_kwargs={"obs_norm": True})).learn(40)  # fmt: skip
    stats = agent.policy.rssm.obs_norm
    assert stats.count_0.item() > 0 and not torch.equal(stats.var_0, torch.ones(3))
    agent.save(tmp_path / "a.zip")
    loaded = DreamerAgent.load(tmp_path / "a.zip").policy.rssm.obs_norm
    assert torch.equal(loaded.mean_0, stats.mean_0) and torch.equal(loaded.var_0, stats.var_0)
