"""The learner loop every ca11 learner shares: a new learner fills two hooks (acting and one update) and gets the
env loop, replay, episode returns, the update schedule, logging, callbacks and safe checkpoints."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from torch import nn

from ca11_agents.common import threads
from ca11_agents.common.base import ModelBasedAlgorithm
from ca11_agents.common.policies import RecurrentLatentPolicy
from ca11_agents.world_models.rssm import RSSMState


class LinearPolicy(RecurrentLatentPolicy):
    """Acts linearly on the observation and counts steps in its 'latent'."""

    def __init__(self, observation_space, action_space) -> None:
        super().__init__(observation_space, action_space)
        self.net = nn.Linear(int(np.prod(observation_space.shape)), self.actions.dim)

    def initial_state(self, n_envs: int) -> RSSMState:
        zeros = torch.zeros(n_envs, 1)
        return RSSMState(zeros, zeros, zeros)

    @torch.no_grad()
    def act(self, obs, state, prev_action, is_first, deterministic):
        steps = state.deter * (1 - is_first[:, None]) + 1  # steps since the episode began
        return torch.tanh(self.net(obs.float())), RSSMState(steps, steps, steps)


class CountingLearner(ModelBasedAlgorithm):
    """A learner whose update only counts and reports the batch it sampled."""

    policy_aliases = {"MlpPolicy": LinearPolicy}
    tb_log_name = "Counting"

    def __init__(self, policy: Any = "MlpPolicy", env: Any = None, learning_rate: float = 1e-3,
                 buffer_size: int | None = None, learning_starts: int = 10, batch_size: int | None = 2,
                 seq_len: int = 4, train_freq: int | None = 5, gradient_steps: int = 2, gamma: float = 0.9,
                 policy_kwargs: dict | None = None, stats_window_size: int = 100, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: Any = "cpu",
                 _init_setup_model: bool = True) -> None:  # fmt: skip
        super().__init__(policy, env, learning_rate, buffer_size=buffer_size, learning_starts=learning_starts,
                         batch_size=batch_size, seq_len=seq_len, train_freq=train_freq, gradient_steps=gradient_steps,
                         gamma=gamma, policy_kwargs=policy_kwargs, stats_window_size=stats_window_size,
                         tensorboard_log=tensorboard_log, verbose=verbose, seed=seed, device=device)  # fmt: skip
        self.batches: list[dict] = []
        if _init_setup_model:
            self._setup_model()

    def train(self) -> dict[str, torch.Tensor]:
        batch = self.replay_buffer.sample(self.batch_size, self.seq_len)
        self.batches.append(batch)
        self._n_updates += 1
        return {"mean_reward": batch["rewards"].mean()}


class Steps(BaseCallback):
    def _on_step(self) -> bool:
        return True


def test_a_new_learner_fills_two_hooks_and_gets_the_loop(tmp_path):
    learner = CountingLearner(env="Pendulum-v1", seed=0)
    learner.set_logger(configure(str(tmp_path), ["csv"]))
    callback = Steps()
    learner.learn(410, callback=callback, log_interval=1)
    assert learner.num_timesteps == 410 and callback.n_calls == 410
    # from step 10 on, one round of 2 updates every 5 steps
    assert learner._n_updates == 2 * ((410 - 10 + 1) // 5)
    replay = learner.replay_buffer
    assert len(replay) == 410 and replay.data["is_first"][0, [0, 200, 400]].tolist() == [1, 1, 1]
    # the first two (time-limited) episodes have their discounted returns, the running one not yet
    assert np.isfinite(replay.data["returns"][0, :400]).all() and np.isnan(replay.data["returns"][0, 400:410]).all()
    assert learner._latent.deter[0, 0] == 10  # the carried latent: 10 steps into the third episode
    log = (tmp_path / "progress.csv").read_text()
    assert "train/mean_reward" in log and "rollout/ep_rew_mean" in log


def test_the_new_learner_saves_and_loads_safely(tmp_path):
    learner = CountingLearner(env="Pendulum-v1", seed=0).learn(30)
    learner.save(tmp_path / "counting.zip")
    loaded = CountingLearner.load(tmp_path / "counting.zip")
    assert loaded.num_timesteps == 30 and loaded.batch_size == 2 and loaded.gamma == 0.9
    obs = np.array([0.1, 0.2, 0.3], np.float32)
    np.testing.assert_array_equal(learner.predict(obs)[0], loaded.predict(obs)[0])


class ThreadProbe(BaseCallback):
    """Records torch's intra-op thread count at every env step of ``learn``."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: set[int] = set()

    def _on_step(self) -> bool:
        self.counts.add(torch.get_num_threads())
        return True


@pytest.fixture
def busy_machine_defaults(monkeypatch):
    """As on a fresh process of a 3-core machine: torch's default of 3 threads, no thread variables set."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CA11_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "TORCH_DEFAULT_THREADS", 3)
    previous = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(previous)


def test_learn_and_predict_use_one_thread_on_a_cpu_and_restore_the_users_count(busy_machine_defaults):
    probe = ThreadProbe()
    learner = CountingLearner(env="Pendulum-v1", seed=0).learn(20, callback=probe)
    assert probe.counts == {1} and torch.get_num_threads() == 3
    seen = []
    real_act = learner.policy.act
    learner.policy.act = lambda *a, **k: (seen.append(torch.get_num_threads()), real_act(*a, **k))[1]
    learner.predict(np.zeros(3, np.float32))
    assert seen == [1] and torch.get_num_threads() == 3


def test_a_thread_count_the_user_chose_is_kept(busy_machine_defaults, monkeypatch):
    torch.set_num_threads(2)  # set_num_threads with another count than torch's default: the user chose
    probe = ThreadProbe()
    CountingLearner(env="Pendulum-v1", seed=0).learn(20, callback=probe)
    assert probe.counts == {2}
    torch.set_num_threads(3)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # so did whoever set OMP_NUM_THREADS
    assert threads.learner_threads() is None
    monkeypatch.setenv("CA11_NUM_THREADS", "2")  # ca11's own switch wins; 0 leaves torch alone
    assert threads.learner_threads() == 2
    probe = ThreadProbe()
    CountingLearner(env="Pendulum-v1", seed=0).learn(20, callback=probe)
    assert probe.counts == {2} and torch.get_num_threads() == 3
    monkeypatch.setenv("CA11_NUM_THREADS", "0")
    assert threads.learner_threads() is None
    monkeypatch.setenv("CA11_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="CA11_NUM_THREADS must be an integer"):
        threads.learner_threads()


def test_learn_warns_when_it_ends_before_any_update():
    learner = CountingLearner(env="Pendulum-v1", seed=0, learning_starts=50, train_freq=5)
    with pytest.warns(UserWarning, match=r"before any update.*learning_starts=50"):
        learner.learn(30)
    assert learner._n_updates == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learner.learn(30, reset_num_timesteps=False)  # steps 30..60: updates run from step 50 on
    assert learner._n_updates > 0
