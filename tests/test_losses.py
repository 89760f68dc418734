"""The DreamerV3 transforms and loss terms, each against a hand computation."""

import pytest
import torch

from ca11_agents.common.distributions import TwoHotSymlog, softmax, symexp, symlog, unimix_probs
from ca11_agents.common.losses import kl_balanced, lambda_returns, replay_lambda_returns
from ca11_agents.world_models.rssm import RecurrentStateSpaceModel


def test_symlog_symexp_round_trip():
    x = torch.tensor([-1e4, -3.0, -1e-3, 0.0, 1e-3, 2.5, 1e5], dtype=torch.float64)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-9)
    assert symlog(torch.tensor(0.0)) == 0.0


def test_two_hot_round_trip_and_weights():
    twohot = TwoHotSymlog(bins=255)
    values = torch.tensor([-500.0, -16.2, -1.0, 0.0, 0.3, 7.0, 1000.0])
    target = twohot.encode(values)
    assert torch.allclose(target.sum(-1), torch.ones(len(values)))
    assert ((target > 0).sum(-1) <= 2).all()  # at most two neighbouring buckets
    # Logits that reproduce the target distribution decode to the original values.
    decoded = twohot.mean(torch.log(target.clamp_min(1e-30)))
    assert torch.allclose(decoded, values, rtol=1e-4, atol=1e-4)


def test_two_hot_loss_is_minimal_at_the_target():
    twohot = TwoHotSymlog(bins=31, low=-5, high=5)
    target = torch.tensor([2.0])
    good = torch.log(twohot.encode(target).clamp_min(1e-30))
    assert twohot.loss(good, target) < twohot.loss(torch.zeros(1, 31), target)


def test_lambda_returns_match_hand_computation():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    c = torch.tensor([[1.0, 0.5, 1.0]])
    v = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    gamma, lam = 0.9, 0.8
    r2 = 3.0 + gamma * 1.0 * 40.0
    r1 = 2.0 + gamma * 0.5 * ((1 - lam) * 30.0 + lam * r2)
    r0 = 1.0 + gamma * 1.0 * ((1 - lam) * 20.0 + lam * r1)
    expected = torch.tensor([[r0, r1, r2]])
    assert torch.allclose(lambda_returns(r, c, v, gamma, lam), expected)
    # lam = 0: one-step TD targets; lam = 1: discounted sums bootstrapped at the horizon.
    assert torch.allclose(lambda_returns(r, c, v, gamma, 0.0), r + gamma * c * v[:, 1:])
    mc = lambda_returns(r, torch.ones_like(c), v, 1.0, 1.0)
    assert torch.allclose(mc, torch.tensor([[46.0, 45.0, 43.0]]))


def test_lambda_returns_reject_misaligned_shapes():
    with pytest.raises(ValueError, match="H \\+ 1"):
        lambda_returns(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), 0.99, 0.95)


def test_kl_balancing_clips_at_free_bits_and_weights_terms():
    dyn = torch.tensor([0.2, 3.0])
    rep = torch.tensor([0.2, 3.0])
    loss, d, r = kl_balanced(dyn, rep, free_bits=1.0, dyn_scale=0.5, rep_scale=0.1)
    assert torch.equal(d, torch.tensor([1.0, 3.0]))
    assert torch.allclose(loss, torch.tensor([0.6, 1.8]))


def test_kl_balancing_routes_gradients_to_prior_and_posterior_separately():
    rssm = RecurrentStateSpaceModel(3, 1, state_dim=8, hidden_dim=8, classes=4)
    post = torch.randn(5, 2, 4, requires_grad=True)
    prior = torch.randn(5, 2, 4, requires_grad=True)
    dyn, rep = rssm.kl(post, prior)
    dyn.sum().backward(retain_graph=True)
    assert post.grad is None and prior.grad is not None  # dynamics term trains the prior only
    prior.grad = None
    rep.sum().backward()
    assert post.grad is not None and prior.grad is None  # representation term trains the posterior only
    # Both are the same divergence, which unimix keeps finite even for extreme logits.
    extreme = torch.full((1, 2, 4), -1e4)
    extreme[..., 0] = 1e4
    assert torch.isfinite(rssm.kl(extreme, -extreme)[0]).all()
    assert torch.allclose(unimix_probs(extreme, 0.01).min(), torch.tensor(0.01 / 4))


def test_return_normaliser_tracks_the_percentile_range_and_never_scales_up():
    from ca11_agents.dreamer.imagination import ReturnNormalizer

    norm = ReturnNormalizer(decay=0.5)
    returns = torch.linspace(0.0, 100.0, 1001)
    assert torch.allclose(norm.update(returns), torch.tensor(90.0), atol=0.1)  # 95th - 5th percentile
    # An exponential moving average: halfway towards the new batch's range with decay 0.5.
    assert torch.allclose(norm.update(returns * 2), torch.tensor(135.0), atol=0.2)
    small = ReturnNormalizer()
    assert small.update(torch.linspace(0.0, 0.3, 100)) == 1.0  # small returns are not blown up


def test_replay_lambda_returns_cut_at_episode_boundaries():
    gamma, lam = 0.9, 0.5
    r = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    v = torch.tensor([[10.0, 20.0, 30.0, 40.0, 50.0]])
    # Steps 0-1 end in a termination, steps 2-3 in a truncation, step 4 starts a third episode.
    terminated = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]])
    is_first = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]])
    r3 = 4.0 + gamma * 40.0  # truncated: the unseen next state is valued as v_3
    r2 = 3.0 + gamma * ((1 - lam) * 40.0 + lam * r3)
    r1 = 2.0  # terminated
    r0 = 1.0 + gamma * ((1 - lam) * 20.0 + lam * r1)
    expected = torch.tensor([[r0, r1, r2, r3]])
    assert torch.allclose(replay_lambda_returns(r, terminated, is_first, v, gamma, lam), expected)
    # Without boundaries it is lambda_returns with continue 1 along the window.
    none = torch.zeros_like(r)
    assert torch.allclose(
        replay_lambda_returns(r, none, none, v, gamma, lam), lambda_returns(r[:, :-1], none[:, :-1] + 1, v, gamma, lam)
    )
    with pytest.raises(ValueError, match="must all be"):
        replay_lambda_returns(r, terminated, is_first, v[:, :-1], gamma, lam)


def test_twohot_loss_and_mean_match_the_dense_two_hot_formulas():
    """The gathered loss and the matmul mean are the DreamerV3 formulas over all bins, values and gradients."""
    twohot = TwoHotSymlog(bins=255)
    logits = torch.randn(6, 5, 255, dtype=torch.float64, requires_grad=True)
    target = torch.randn(6, 5, dtype=torch.float64) * 30.0
    loss = twohot.loss(logits, target)
    dense = -(twohot.encode(target) * torch.log_softmax(logits, -1)).sum(-1)
    torch.testing.assert_close(loss, dense)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    (dense_grad,) = torch.autograd.grad(dense.sum(), logits)
    torch.testing.assert_close(grad, dense_grad)
    expected = symexp((torch.softmax(logits, -1) * twohot.buckets.double()).sum(-1))
    torch.testing.assert_close(twohot.mean(logits), expected)


@pytest.mark.parametrize("classes", [2, 8, 32, 33, 255])
def test_the_fast_softmax_is_torchs_softmax(classes):
    logits = (torch.randn(64, 4, classes, dtype=torch.float64) * 20.0).requires_grad_()
    weights = torch.randn(64, 4, classes, dtype=torch.float64)
    ours, ref = softmax(logits), torch.softmax(logits, -1)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(
        torch.autograd.grad((ours * weights).sum(), logits)[0], torch.autograd.grad((ref * weights).sum(), logits)[0]
    )


def test_twohot_loss_broadcasts_targets_as_the_dense_formula_does():
    twohot = TwoHotSymlog(bins=15)
    logits, target = torch.randn(4, 3, 15), torch.randn(4, 1)
    dense = -(twohot.encode(target.expand(4, 3)) * torch.log_softmax(logits, -1)).sum(-1)
    torch.testing.assert_close(twohot.loss(logits, target), dense)
    torch.testing.assert_close(twohot.loss(logits, torch.tensor(0.5)), twohot.loss(logits, torch.full((4, 3), 0.5)))
