"""The planners and the planning learners: CEM and MPPI on a model whose optimum is known, the warm start, the
ensemble's uncertainty, and both kinds of dynamics training. The SB3 contract of the planning learners is tested
with every learner's in test_agent_spaces.py."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import ca11_gym  # noqa: F401  (registers the CA11 environments)
from ca11_agents import Planner, RSSMAgent, WorldModelAgent

# A linear system with a quadratic cost: x_{t+1} = x_t + B a_t, reward -(|x_{t+1}|^2 + LAM |a_t|^2). Its optimal
# open-loop sequence over H steps from X0 is a least-squares solution (the bounds [-1, 1] are not active).
H, B, LAM = 8, 0.5, 0.05
X0 = np.array([0.3, -0.2])


def optimal_sequence() -> np.ndarray:
    lower = np.tril(np.ones((H, H)))
    design = np.vstack([B * lower, np.sqrt(LAM) * np.eye(H)])
    return np.stack(
        [np.linalg.lstsq(design, np.concatenate([-x * np.ones(H), np.zeros(H)]), rcond=None)[0] for x in X0], -1
    )  # (H, 2)


def toy_objective(actions: torch.Tensor) -> torch.Tensor:  # (n, N, H, 2) -> (n, N)
    states = torch.as_tensor(X0, dtype=torch.float32) + B * actions.cumsum(2)
    return -(states.pow(2).sum((-1, -2)) + LAM * actions.pow(2).sum((-1, -2)))


def planner(method: str, **kwargs) -> Planner:
    settings = dict(method=method, horizon=H, candidates=256, elites=16, iterations=12, momentum=0.0)
    return Planner(2, **{**settings, **kwargs})


@pytest.mark.parametrize(("method", "settings"), [("cem", {}), ("mppi", {"iterations": 20, "temperature": 0.1})])
def test_the_planner_finds_the_known_optimal_first_action(method, settings):
    torch.manual_seed(0)
    action, _, _ = planner(method, **settings).plan(toy_objective, torch.zeros(1, H, 2))
    np.testing.assert_allclose(action[0].numpy(), optimal_sequence()[0], atol=0.06)


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_cem_and_mppi_improve_on_random_shooting_with_the_same_budget(method):
    torch.manual_seed(0)
    iterations = 6
    _, _, best = planner(method, iterations=iterations).plan(toy_objective, torch.zeros(1, H, 2))
    shooting = toy_objective(torch.rand(1, 256 * iterations, H, 2) * 2 - 1).max()  # as many sequences, uniform
    assert float(best) > float(shooting) + 0.05


def test_exploration_noise_is_the_plans_spread_a_fixed_std_or_none():
    # The same draws (seeded global generator) refine the same plan; only the noise around its mean differs.
    objective = lambda candidates: -(candidates**2).sum((-2, -1))  # noqa: E731  (best at 0: no clamping)
    actions = {}
    for std in (None, 0.0, 0.1, 0.2):
        torch.manual_seed(0)
        planner = Planner(2, horizon=3, candidates=32, elites=4, iterations=2, exploration_std=std)
        actions[std] = planner.plan(objective, planner.initial_plan(5, torch.device("cpu")), deterministic=False)[0]
    mean = actions[0.0]  # no noise: the plan's mean
    torch.testing.assert_close((actions[0.1] - mean) / 0.1, (actions[0.2] - mean) / 0.2)  # one draw, scaled
    assert float((actions[0.1] - mean).abs().max()) > 0 and not torch.equal(actions[None], mean)
    with pytest.raises(ValueError, match="exploration_std"):
        Planner(1, exploration_std=-0.1)


def test_discrete_cem_finds_the_best_choices():
    target = torch.tensor([2, 0, 1, 1])  # the rewarded choice at each of 4 steps, out of 3

    def objective(actions):  # (n, N, 4, 3) one-hot
        return actions[..., torch.arange(4), target].sum(-1)

    torch.manual_seed(0)
    plan = Planner(3, (3,), horizon=4, candidates=64, elites=8, iterations=4)
    action, nxt, best = plan.plan(objective, plan.initial_plan(2))
    assert action.tolist() == [[0.0, 0.0, 1.0]] * 2 and best.tolist() == [4.0, 4.0]
    assert torch.allclose(nxt.sum(-1), torch.ones(2, 4))  # the plan stays a distribution at each step


def test_the_plan_is_shifted_and_reset_at_episode_starts():
    plan = Planner(1, horizon=3)
    current = torch.tensor([[[0.1], [0.2], [0.3]], [[0.4], [0.5], [0.6]]])
    torch.testing.assert_close(plan.shift(current)[:, :, 0], torch.tensor([[0.2, 0.3, 0.0], [0.5, 0.6, 0.0]]))
    torch.testing.assert_close(
        plan.reset(current, torch.tensor([1.0, 0.0]))[:, :, 0], torch.tensor([[0.0, 0.0, 0.0], [0.4, 0.5, 0.6]])
    )


def test_deterministic_planning_is_a_function_of_its_inputs():
    torch.manual_seed(0)
    plan = planner("cem", iterations=2)
    first = plan.plan(toy_objective, torch.zeros(1, H, 2))[0]
    torch.rand(5)  # whatever else used the global generator in between
    assert torch.equal(first, plan.plan(toy_objective, torch.zeros(1, H, 2))[0])


def test_deterministic_searches_draw_new_candidates_at_every_state():
    # The same plan and state give the same candidates; another state (key) or another warm start gives other ones.
    # Candidates drawn alike at every step biased the evaluations of the planners (benchmarks/README.md).
    plan, drawn = planner("cem", iterations=1), []

    def recording(candidates: torch.Tensor) -> torch.Tensor:
        drawn.append(candidates.clone())
        return toy_objective(candidates)

    warm, key = torch.zeros(1, H, 2), torch.zeros(1, 4)
    for start, state in ((warm, key), (warm, key.clone()), (warm, key + 0.1), (warm + 0.1, key)):
        plan.plan(recording, start, deterministic=True, key=(state,))
    noise = [d[:, 1:] - start.unsqueeze(1) for d, start in zip(drawn, (warm, warm, warm, warm + 0.1))]
    assert torch.equal(noise[0], noise[1])
    assert not torch.allclose(noise[0], noise[2]) and not torch.allclose(noise[0], noise[3])


def test_bad_planner_settings_are_named():
    with pytest.raises(ValueError, match="method"):
        Planner(1, method="random")
    with pytest.raises(ValueError, match="elites"):
        Planner(1, candidates=8, elites=16)
    with pytest.raises(ValueError, match="planner_kwargs"):
        WorldModelAgent("MlpPolicy", "Pendulum-v1", planner_kwargs={"candidate": 8})


_SMALL_WM = dict(
    learning_starts=100,
    batch_size=16,
    seq_len=4,
    horizon=4,
    planner_kwargs=dict(candidates=16, elites=4, iterations=2),
    policy_kwargs=dict(latent_dim=4, vae_hidden_dims=[32], dynamics_hidden_dims=[32], reward_hidden_dims=[32]),
)


@pytest.fixture(scope="module")
def pendulum_world_model() -> WorldModelAgent:
    return WorldModelAgent("MlpPolicy", "Pendulum-v1", seed=0, **_SMALL_WM).learn(400)


def test_ensemble_disagreement_grows_away_from_the_data(pendulum_world_model):
    agent = pendulum_world_model
    seen = agent.replay_buffer.data["observations"][0, :400]
    actions = np.zeros((6, 1), np.float32)
    near = np.mean([agent.uncertainty(obs, actions) for obs in seen[::40]], 0)
    far = agent.uncertainty(np.array([4.0, -4.0, 40.0], np.float32), actions)  # |cos|, |sin| > 1: never seen
    assert near.shape == far.shape == (6,)
    assert far.mean() > 10 * near.mean()
    batch = agent.uncertainty(seen[:3], np.zeros((3, 6, 1), np.float32))
    assert batch.shape == (3, 6)


@pytest.mark.parametrize("stochastic", [True, False])
def test_stochastic_and_deterministic_dynamics_both_train(stochastic):
    kwargs = {**_SMALL_WM, "policy_kwargs": {**_SMALL_WM["policy_kwargs"], "stochastic": stochastic}}
    agent = WorldModelAgent("MlpPolicy", "Pendulum-v1", seed=0, **kwargs).learn(100)
    first = [float(agent.train()["world_model/prediction_loss"]) for _ in range(5)]
    for _ in range(300):
        agent.train()
    last = [float(agent.train()["world_model/prediction_loss"]) for _ in range(5)]
    assert np.mean(last) < 0.5 * np.mean(first)
    action, (plan, _) = agent.predict(np.zeros(3, np.float32), deterministic=True)
    assert action.shape == (1,) and plan.shape == (1, 4, 1)


def test_the_continue_model_learns_where_episodes_end():
    agent = WorldModelAgent("MlpPolicy", "CA11/ContinuousCartPole-v0", seed=0, **_SMALL_WM).learn(600)
    data = agent.replay_buffer.data
    obs, actions, ended = (torch.as_tensor(data[k][0, :600]) for k in ("observations", "actions", "terminated"))
    world_model = agent.policy.world_model
    with torch.no_grad():
        alive = world_model.predict_continue(world_model.encode_observations(obs), actions)
    assert ended.sum() > 5 and float(alive[ended > 0].mean()) < float(alive[ended == 0].mean()) - 0.2


def test_the_rssm_planner_carries_its_belief_and_plan():
    agent = RSSMAgent(
        "MlpPolicy", "CA11/SequenceEnvironment-v0", seed=0, learning_starts=30, batch_size=2, seq_len=8, horizon=2,
        planner_kwargs=dict(candidates=8, elites=2, iterations=1),
        policy_kwargs=dict(hidden_dim=16, state_dim=16, classes=4, units=16, bins=31),
    ).learn(60)  # fmt: skip
    env = gym.make("CA11/SequenceEnvironment-v0")
    obs, _ = env.reset(seed=0)
    _, state = agent.predict(obs, None, np.ones(1, bool), deterministic=True)
    deter, stoch, plan, prev = state
    assert deter.shape == (1, 16) and stoch.shape == (1, 16) and plan.shape == (1, 2, 1) and prev.shape == (1, 1)
    assert not np.allclose(plan, agent.policy.planner.initial_plan(1).numpy())  # the refined plan, shifted
    obs, *_ = env.step(np.zeros(1, np.float32))
    _, carried = agent.predict(obs, state, np.zeros(1, bool), deterministic=True)
    _, fresh = agent.predict(obs, state, np.ones(1, bool), deterministic=True)
    _, reference = agent.predict(obs, None, deterministic=True)
    assert all(np.array_equal(a, b) for a, b in zip(fresh, reference))  # an episode start forgets belief and plan
    assert not np.allclose(carried[0], fresh[0])  # the carried belief remembers
    with pytest.raises(ValueError, match="plan"):
        agent.predict(obs, (deter, stoch, np.zeros((1, 5, 1), np.float32), prev))


def test_planning_speed_is_logged(tmp_path):
    from stable_baselines3.common.logger import configure

    agent = WorldModelAgent("MlpPolicy", "Pendulum-v1", seed=0, **{**_SMALL_WM, "learning_starts": 50})
    agent.set_logger(configure(str(tmp_path), ["csv"]))
    agent.learn(400, log_interval=1)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert "time/planned_actions_per_s" in header and "train/world_model/continue_loss" in header


def test_the_world_model_trains_on_transitions_within_episodes():
    agent = WorldModelAgent("MlpPolicy", "Pendulum-v1", seed=0, **_SMALL_WM)
    seen = {}
    agent.policy.world_model.loss_terms = lambda batch: seen.update(batch) or (torch.zeros((), requires_grad=True), {})
    obs = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1).expand(1, 6, 3)  # o_t = t
    batch = {
        "observations": obs,
        "actions": torch.arange(6, dtype=torch.float32).reshape(1, 6, 1),
        "rewards": torch.arange(6, dtype=torch.float32).reshape(1, 6) * 10,
        "terminated": torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]),  # the episode ends after step 2
        "is_first": torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]),  # o_3 starts the next one
    }
    agent._model_loss(batch)
    assert seen["observations"][0, :, 0].tolist() == [0, 1, 2, 3, 4]
    assert seen["next_observations"][0, :, 0].tolist() == [1, 2, 3, 4, 5]
    assert seen["actions"][0, :, 0].tolist() == [0, 1, 2, 3, 4] and seen["rewards"][0].tolist() == [0, 10, 20, 30, 40]
    assert seen["terminated"][0].tolist() == [0, 0, 1, 0, 0]  # the last step's end trains the continue model
    assert seen["valid"][0].tolist() == [1, 1, 0, 1, 1]  # o_3 does not follow o_2


def test_warm_up_actions_are_not_planned():
    agent = WorldModelAgent("MlpPolicy", "Pendulum-v1", seed=0, **{**_SMALL_WM, "learning_starts": 50}).learn(50)
    assert agent.policy.stats() == {}  # 50 random actions: no search ran
    agent.learn(10, reset_num_timesteps=False)
    assert agent.policy.stats()["time/planned_actions_per_s"] > 0


def test_bad_planner_arguments_of_the_agents_are_named():
    with pytest.raises(ValueError, match="horizon= and planner="):
        RSSMAgent("MlpPolicy", "Pendulum-v1", planner_kwargs={"horizon": 5})
    with pytest.raises(ValueError, match="grad_clip"):
        WorldModelAgent("MlpPolicy", "Pendulum-v1", grad_clip=0.0)
    with pytest.raises(ValueError, match="MPPI"):
        Planner(1, method="mppi", candidates=1)
    with pytest.raises(ValueError, match="min_prob"):
        Planner(2, (2,), min_prob=-0.5)
    assert Planner(1, method="mppi", candidates=4).candidates == 4  # MPPI has no elites to check


def test_the_uncertainty_weight_is_the_policys():
    agent = WorldModelAgent("MlpPolicy", "Pendulum-v1", uncertainty_weight=0.5, **_SMALL_WM)
    agent.uncertainty_weight = -1.0
    assert agent.policy.uncertainty_weight == -1.0
    agent.policy.uncertainty_weight = 2.0
    assert agent._init_kwargs()["uncertainty_weight"] == 2.0  # what a checkpoint stores is what plans


_SMALL_RSSM = dict(
    learning_starts=30, batch_size=2, seq_len=8, horizon=3, planner_kwargs=dict(candidates=8, elites=2, iterations=1),
    policy_kwargs=dict(hidden_dim=16, state_dim=16, classes=4, units=16, bins=31, critic_hidden_dims=(16,)),
)  # fmt: skip


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_the_rssm_planner_scores_the_critics_value_of_the_last_state(weight):
    agent = RSSMAgent("MlpPolicy", "Pendulum-v1", seed=0, terminal_value=weight, plan_lambda=1.0, **_SMALL_RSSM)
    policy = agent.policy
    with torch.no_grad():
        for p in policy.critic.parameters():  # a critic whose values are not all 0 (its output layer starts at 0)
            p.normal_(0.0, 0.3)
    state, actions = policy.rssm.initial_state(4), torch.rand(4, 3, 1) * 2 - 1
    with torch.no_grad():
        scored = policy.rollout_returns(state, actions)
        summed, alive, last = 0.0, 1.0, state
        for t in range(3):
            reward, cont, last = policy._step(last, actions[:, t])
            summed, alive = summed + agent.gamma**t * alive * reward, alive * cont
        value = policy.critic(policy.rssm.features(last))
    torch.testing.assert_close(scored, summed + weight * agent.gamma**3 * alive * value)
    assert float((scored - summed).abs().min()) > 1e-3
    plain = RSSMAgent("MlpPolicy", "Pendulum-v1", seed=0, terminal_value=0.0, **_SMALL_RSSM)
    assert plain.policy.critic is None and "critic" not in plain.optimizers  # PlaNet: the summed rewards alone


def test_the_world_model_planner_scores_each_members_value_of_its_last_latent():
    agent = WorldModelAgent("MlpPolicy", "Pendulum-v1", seed=0, terminal_value=1.0, plan_lambda=1.0, **_SMALL_WM)
    policy = agent.policy
    with torch.no_grad():
        for p in policy.critic.parameters():
            p.normal_(0.0, 0.3)
        z, candidates = torch.randn(1, 4), torch.rand(1, 6, 4, 1) * 2 - 1  # 6 candidates of 4 steps
        scored = policy.score(z, candidates, sample=False)
        policy.terminal_value = 0.0
        summed = policy.score(z, candidates, sample=False)
        state, alive, step = z.expand(5, 6, 4), 1.0, policy._step(False)  # 5 members, 6 rows
        for t in range(4):
            _, cont, state = step(state, candidates[0, :, t])
            alive = alive * cont
        expected = summed + (agent.gamma**4 * alive * policy.critic(state)).mean(0)  # the members' mean
    torch.testing.assert_close(scored, expected)


@pytest.mark.parametrize("learner", [RSSMAgent, WorldModelAgent])
@pytest.mark.parametrize("lam", [0.0, 0.6])
def test_plan_lambda_scores_the_mixture_of_n_step_returns_along_the_plan(learner, lam):
    # The lambda-return of H imagined steps is (1 - lam) * sum_{n<H} lam^(n-1) G(n) + lam^(H-1) G(H), where G(n) is
    # the n-step return: rewards of the first n steps, then the value of state n, each behind the continue products.
    small = _SMALL_RSSM if learner is RSSMAgent else _SMALL_WM
    agent = learner("MlpPolicy", "Pendulum-v1", seed=0, terminal_value=0.5, plan_lambda=lam, **small)
    policy, horizon, gamma = agent.policy, 4, agent.gamma
    with torch.no_grad():
        for p in policy.critic.parameters():
            p.normal_(0.0, 0.3)
        if learner is RSSMAgent:
            state, step = policy.rssm.initial_state(6), policy._step
        else:
            state, step = torch.randn(5, 6, 4), policy._step(False)  # 5 members, 6 rows
        actions = torch.rand(6, horizon, 1) * 2 - 1
        scored = policy.discounted_return(step, state, actions, policy._terminal())
        rewards, alive, values = [], [1.0], []
        for t in range(horizon):
            reward, cont, state = step(state, actions[:, t])
            rewards.append(reward)
            alive.append(alive[-1] * cont)
            values.append(0.5 * policy.critic(policy.value_features(state)))
        n_step = [
            sum(gamma**k * alive[k] * rewards[k] for k in range(n)) + gamma**n * alive[n] * values[n - 1]
            for n in range(1, horizon + 1)
        ]
        mixed = sum((1 - lam) * lam ** (n - 1) * n_step[n - 1] for n in range(1, horizon))
        expected = mixed + lam ** (horizon - 1) * n_step[-1]
    torch.testing.assert_close(scored, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="plan_lambda"):
        learner("MlpPolicy", "Pendulum-v1", plan_lambda=1.5)


@pytest.mark.parametrize("learner", [RSSMAgent, WorldModelAgent])
def test_a_checkpoint_from_before_plan_lambda_scores_the_last_state_alone(learner, tmp_path, checkpoint_without):
    agent = _value_agent(learner, plan_lambda=0.9)
    agent.save(tmp_path / "new.zip")
    assert learner.load(tmp_path / "new.zip").policy.plan_lambda == 0.9
    loaded = learner.load(checkpoint_without(tmp_path / "new.zip", "plan_lambda"))
    assert loaded.plan_lambda == 1.0 and loaded.policy.plan_lambda == 1.0


def _value_agent(learner: type, **kwargs):
    small = _SMALL_RSSM if learner is RSSMAgent else _SMALL_WM
    return learner("MlpPolicy", "Pendulum-v1", seed=0, **{**small, "seq_len": 8, "terminal_value": 1.0, **kwargs})


@pytest.mark.parametrize("learner", [RSSMAgent, WorldModelAgent])
@pytest.mark.parametrize(("terminated", "expected"), [(0.0, 2.0), (1.0, 1.0)])
def test_the_terminal_value_critic_learns_the_replayed_returns(learner, terminated, expected):
    # Reward 1 at every step, gamma 0.5: a running episode is worth 1 + 0.5 + 0.25 + ... = 2, a terminating step 1.
    agent = _value_agent(learner, gamma=0.5, critic_tau=1.0, critic_lr=3e-3, mc_value_coef=0.0)
    batch = {
        "observations": torch.randn(2, 8, 3),
        "actions": torch.zeros(2, 8, 1),
        "rewards": torch.ones(2, 8),
        "terminated": torch.full((2, 8), terminated),
        "is_first": torch.zeros(2, 8),
    }
    _, _, features = agent._model_loss(batch)
    for _ in range(300):
        terms = agent._train_value(batch, features)
    assert set(terms) == {"critic/loss", "critic/target", "critic/td_loss"}
    values = agent.policy.critic(features.detach())[:, :-1]
    torch.testing.assert_close(values, torch.full_like(values, expected), atol=0.15, rtol=0.0)


@pytest.mark.parametrize("learner", [RSSMAgent, WorldModelAgent])
def test_the_monte_carlo_value_loss_pulls_the_critic_towards_the_stored_returns(learner):
    # TD(lambda) targets say 2 (reward 1, gamma 0.5); the stored Monte-Carlo returns say 4 where they are known.
    # With both losses at equal weight the critic settles between them, and unknown (NaN) returns are ignored.
    batch = {
        "observations": torch.randn(2, 8, 3),
        "actions": torch.zeros(2, 8, 1),
        "rewards": torch.ones(2, 8),
        "terminated": torch.zeros(2, 8),
        "is_first": torch.zeros(2, 8),
        "returns": torch.full((2, 8), 4.0),
    }
    finals = {}
    for coef, returns in ((1.0, 4.0), (1.0, float("nan")), (0.0, 4.0)):
        agent = _value_agent(learner, gamma=0.5, critic_tau=1.0, critic_lr=3e-3, mc_value_coef=coef)
        batch["returns"] = torch.full((2, 8), returns)
        _, _, features = agent._model_loss(batch)
        for _ in range(300):
            terms = agent._train_value(batch, features)
        assert ("critic/mc_loss" in terms) == (coef > 0 and returns == 4.0)
        finals[coef, returns == 4.0] = float(agent.policy.critic(features.detach())[:, :-1].mean())
    assert 2.3 < finals[1.0, True] < 3.7
    assert abs(finals[1.0, False] - 2.0) < 0.15 and abs(finals[0.0, True] - 2.0) < 0.15


@pytest.mark.parametrize("learner", [RSSMAgent, WorldModelAgent])
def test_returns_cut_by_a_time_limit_are_bootstrapped_from_the_slow_critic(learner):
    # Episodes of 20 steps; no update before step 30, so the first episode's stored returns end with the slow
    # critic's value of its final observation (gamma * v), and are the plain discounted rewards without a critic.
    stored = {}
    for weight in (1.0, 0.0):
        env = gym.make("Pendulum-v1", max_episode_steps=20)
        small = _SMALL_RSSM if learner is RSSMAgent else _SMALL_WM
        agent = learner("MlpPolicy", env, seed=0, **{**small, "learning_starts": 30, "terminal_value": weight})
        if weight:
            with torch.no_grad():
                for p in agent.policy.slow_critic.parameters():  # values that are not all 0
                    p.normal_(0.0, 0.3)
        with pytest.warns(UserWarning, match="before any update"):  # the point: no critic update yet
            agent.learn(25)
        data = agent.replay_buffer.data
        returns, rewards = data["returns"][0], data["rewards"][0]
        assert np.isfinite(returns[:20]).all() and np.isnan(returns[20:25]).all()
        np.testing.assert_allclose(returns[:19], rewards[:19] + agent.gamma * returns[1:20], rtol=1e-5, atol=1e-4)
        stored[weight] = returns[19] - rewards[19]
    assert stored[0.0] == 0.0 and abs(stored[1.0]) > 1e-3


@pytest.mark.parametrize("learner", [RSSMAgent, WorldModelAgent])
def test_mc_max_age_leaves_older_returns_out_of_the_planners_value_loss(
    learner, tmp_path, checkpoint_without, mc_max_age_masks_old_returns
):
    env = gym.make("Pendulum-v1", max_episode_steps=20)  # episodes end, so returns are stored
    small = _SMALL_RSSM if learner is RSSMAgent else _SMALL_WM
    agent = learner("MlpPolicy", env, seed=0, **{**small, "seq_len": 8, "learning_starts": 50, "mc_value_coef": 1.0})
    agent.learn(60)
    mc_max_age_masks_old_returns(agent)
    agent.save(tmp_path / "new.zip")
    assert learner.load(tmp_path / "new.zip").mc_max_age == 10**6
    assert learner.load(checkpoint_without(tmp_path / "new.zip", "mc_max_age")).mc_max_age is None
    with pytest.raises(ValueError, match="mc_max_age"):
        learner("MlpPolicy", "Pendulum-v1", mc_max_age=0)


@pytest.mark.parametrize("learner", [RSSMAgent, WorldModelAgent])
def test_a_checkpoint_from_before_the_terminal_value_loads_without_it(learner, tmp_path, checkpoint_without):
    agent = _value_agent(learner, terminal_value=0.0)
    agent.save(tmp_path / "new.zip")
    loaded = learner.load(checkpoint_without(tmp_path / "new.zip", "terminal_value"))
    assert loaded.terminal_value == 0.0 and loaded.policy.critic is None
    obs = np.array([1.0, 0.0, 0.0], np.float32)
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])
    _value_agent(learner).save(tmp_path / "critic.zip")
    with_critic = learner.load(tmp_path / "critic.zip")
    assert with_critic.policy.critic is not None and "critic" in with_critic.optimizers


def test_the_rssm_planner_standardises_observations_and_loads_files_from_before_it_did(tmp_path, monkeypatch):
    from ca11_agents.planning.policies import RSSMPlannerPolicy

    new = _value_agent(RSSMAgent)
    assert new.policy.rssm.obs_norm is not None  # its default
    new.save(tmp_path / "new.zip")
    assert RSSMAgent.load(tmp_path / "new.zip").policy.rssm.obs_norm is not None
    monkeypatch.setattr(RSSMPlannerPolicy, "rssm_defaults", {})  # the policy before obs_norm was its default
    old = _value_agent(RSSMAgent)
    old.learn(40)
    old.save(tmp_path / "old.zip")
    monkeypatch.undo()
    loaded = RSSMAgent.load(tmp_path / "old.zip")
    assert loaded.policy.rssm.obs_norm is None  # the model it was trained as
    obs = np.array([1.0, 0.0, 0.0], np.float32)
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], old.predict(obs, deterministic=True)[0])
    chosen = RSSMAgent.load(tmp_path / "new.zip", policy_kwargs={**_SMALL_RSSM["policy_kwargs"]})
    assert chosen.policy.rssm.obs_norm is not None  # a file holding the statistics keeps them


def test_the_terminal_value_weight_is_the_policys():
    agent = _value_agent(RSSMAgent)
    agent.terminal_value = 0.5
    assert agent.policy.terminal_value == 0.5
    agent.policy.terminal_value = 2.0
    assert agent._init_kwargs()["terminal_value"] == 2.0  # what a checkpoint stores is what plans
