"""The course notebook's sections 1 and 2, end to end through the package.

Section 1 (world models and latent representations) on ContinuousCartPole: collect random transitions, pre-train
the VAE, train the world model (VAE, latent dynamics and reward model together), then evaluate it on held-out
transitions: one-step errors, an open-loop rollout against reality and the error against horizon, each next to the
"nothing changes" baseline.

Section 2 (recurrent state-space models) on SequenceEnvironment, a memory task: train the RSSM on random episodes,
then compare its reward error with the smallest error any memoryless predictor can reach on the same data.

Writes PNG figures and ``metrics.json`` into ``--out``::

    python scripts/walkthrough.py --out outputs/walkthrough             # the full budget, a few minutes on CPU
    python scripts/walkthrough.py --out /tmp/wt --budget tiny           # a smoke test, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import ca11_gym  # noqa: E402,F401  (registers the CA11/ environment ids)
from ca11_agents.data import (  # noqa: E402
    collect_sequence_data,
    collect_world_model_data,
    sample_sequences,
    sample_transitions,
    train_test_split,
)
from ca11_agents.evaluation import (  # noqa: E402
    evaluate_rssm,
    evaluate_world_model,
    memoryless_reward_mse,
    rssm_horizon_errors,
    rssm_one_step_predictions,
    rssm_open_loop_predictions,
    sequence_reward_variance,
    transition_windows,
    world_model_horizon_errors,
)
from ca11_agents.visualization import (  # noqa: E402
    plot_horizon_errors,
    plot_predictions,
    plot_rollout,
    plot_rssm_training,
    plot_world_model_training,
)
from ca11_agents.world_models import (  # noqa: E402
    LatentDynamicsModel,
    RecurrentStateSpaceModel,
    RewardModel,
    RSSMTrainer,
    Trainer,
    VariationalAutoencoder,
    WorldModel,
    WorldModelTrainer,
)

CARTPOLE_DIMS = ("cart position", "cart velocity", "pole angle", "pole angular velocity")
SEQUENCE_DIMS = ("cue", "recall flag")


@dataclasses.dataclass(frozen=True)
class Budget:
    """Sizes of one walkthrough run."""

    transitions: int
    """ContinuousCartPole transitions collected with random actions (80% train, 20% held out)."""
    collect_episodes: int
    """Episodes the transitions are spread over (``collect_world_model_data``'s ``episodes``)."""
    vae_steps: int
    """Gradient steps of VAE pre-training (notebook section 1.2)."""
    world_model_steps: int
    """Gradient steps of world-model training (sections 1.3 and the trainer cell)."""
    batch_size: int
    """Transitions per world-model batch (the notebook's 64)."""
    horizon: int
    """Longest open-loop horizon evaluated for the world model."""
    seq_episodes: int
    """SequenceEnvironment episodes collected with random actions (80% train, 20% held out)."""
    seq_episode_length: int
    """Steps per SequenceEnvironment episode (the notebook's 20)."""
    rssm_steps: int
    """RSSM gradient steps."""
    rssm_batch_size: int
    """Sequences per RSSM batch."""
    rssm_seq_len: int
    """Steps per RSSM training sequence."""
    rssm_hidden_dim: int
    """Size of the RSSM's deterministic state (the notebook's 128)."""
    rssm_learning_rate: float
    """Adam step size of the RSSM (3e-3 learns the memory task in far fewer steps than the notebook's 1e-3)."""
    rssm_context: int
    """Steps the RSSM observes before predicting open loop."""


BUDGETS = {
    "tiny": Budget(200, 2, 10, 20, 32, 5, 10, 12, 5, 4, 10, 32, 3e-3, 6),
    "full": Budget(1000, 5, 1000, 2000, 64, 30, 100, 20, 2000, 16, 20, 128, 3e-3, 10),
}


def section_1(budget: Budget, device: str, seed: int, out: Path, bar: tqdm) -> dict[str, Any]:
    """World models and latent representations, on ContinuousCartPole."""
    env = gym.make("CA11/ContinuousCartPole-v0")
    data = collect_world_model_data(env, steps=budget.transitions, episodes=budget.collect_episodes, seed=seed)
    env.close()
    train, test = train_test_split(data, 0.8)
    rng = np.random.default_rng(seed)
    obs_dim, action_dim, latent_dim = data["observations"].shape[1], data["actions"].shape[1], 32
    tqdm.write(f"[1.1] collected {len(data['rewards'])} transitions; {len(train['rewards'])} train, "
               f"{len(test['rewards'])} held out")

    # 1.2: the VAE alone (the generic Trainer trains any module with a loss(batch) method).
    vae = VariationalAutoencoder(obs_dim, latent_dim, [128, 64])
    vae_trainer = Trainer(vae, learning_rate=1e-3, device=device)
    bar.set_description("1.2 VAE")
    for _ in range(budget.vae_steps):
        vae_trainer.train_step({"observations": sample_transitions(train, budget.batch_size, rng)["observations"]})
        bar.update()
    plot_world_model_training(vae_trainer, "VAE pre-training", save_path=out / "vae_training.png")
    vae.eval()
    with torch.no_grad():
        recon = vae(torch.as_tensor(test["observations"], device=vae_trainer.device))[0].cpu().numpy()
    plot_predictions(test["observations"], recon, dim_names=CARTPOLE_DIMS, title="VAE reconstructions (held out)",
                     save_path=out / "vae_reconstructions.png")

    # 1.3: dynamics and reward model on top of the pre-trained VAE, all trained together (see WorldModel).
    world_model = WorldModel(
        vae, LatentDynamicsModel(latent_dim, action_dim, [128, 64], stochastic=True),
        RewardModel(latent_dim, action_dim, [64, 32]),
    )
    trainer = WorldModelTrainer(world_model, learning_rate=1e-3, device=device)
    bar.set_description("1.3 world model")
    for _ in range(budget.world_model_steps):
        trainer.train_step(sample_transitions(train, budget.batch_size, rng))
        bar.update()
    plot_world_model_training(trainer, "World model training", save_path=out / "world_model_training.png")

    # 1.4: evaluation on held-out transitions.
    one_step = evaluate_world_model(world_model, test, train_data=train)
    with torch.no_grad():
        next_obs, _ = world_model.predict_next_state_and_reward(
            torch.as_tensor(test["observations"], device=trainer.device),
            torch.as_tensor(test["actions"], device=trainer.device),
        )
    plot_predictions(test["next_observations"], next_obs.cpu().numpy(), reference=test["observations"],
                     dim_names=CARTPOLE_DIMS, title="One-step predictions: change of each variable (held out)",
                     save_path=out / "world_model_predictions.png")
    horizon = min(budget.horizon, len(test["rewards"]))
    horizons = world_model_horizon_errors(world_model, test, horizon, train_data=train)
    start = int(transition_windows(test, horizon)[0])
    with torch.no_grad():
        obs_pred, reward_pred = world_model.rollout(
            torch.as_tensor(test["observations"][start : start + 1], device=trainer.device),
            torch.as_tensor(test["actions"][None, start : start + horizon], device=trainer.device),
        )
    steps = slice(start, start + horizon)
    plot_rollout(test["next_observations"][steps], obs_pred[0].cpu().numpy(), test["rewards"][steps],
                 reward_pred[0].cpu().numpy(), dim_names=CARTPOLE_DIMS,
                 title="World model: open-loop rollout against reality", save_path=out / "world_model_rollout.png")
    plot_horizon_errors({"world model": horizons}, "World model (ContinuousCartPole): error against horizon",
                        save_path=out / "world_model_horizon_errors.png")
    tqdm.write(f"[1.4] one-step observation MSE {one_step['observation_mse']:.2e} "
               f"(baseline next = current: {one_step['baseline_observation_mse']:.2e})")
    return {"one_step": one_step, "horizon": {k: np.asarray(v).tolist() for k, v in horizons.items()}}


def section_2(budget: Budget, device: str, seed: int, out: Path, bar: tqdm) -> dict[str, Any]:
    """Recurrent state-space models, on SequenceEnvironment (recall the cue shown 5 steps ago)."""
    env = gym.make("CA11/SequenceEnvironment-v0", memory_size=5)
    episodes = collect_sequence_data(env, episodes=budget.seq_episodes, episode_length=budget.seq_episode_length,
                                     seed=seed + 1)
    env.close()
    train, test = train_test_split(episodes, 0.8)
    rng = np.random.default_rng(seed + 1)
    obs_dim, action_dim = episodes[0]["observations"].shape[1], episodes[0]["actions"].shape[1]
    tqdm.write(f"[2.1] collected {len(episodes)} episodes of {budget.seq_episode_length} steps")

    rssm = RecurrentStateSpaceModel(obs_dim, action_dim, 32, budget.rssm_hidden_dim)
    trainer = RSSMTrainer(rssm, learning_rate=budget.rssm_learning_rate, device=device)
    bar.set_description("2.2 RSSM")
    for _ in range(budget.rssm_steps):
        trainer.train_step(sample_sequences(train, budget.rssm_batch_size, budget.rssm_seq_len, rng))
        bar.update()
    plot_rssm_training(trainer, "RSSM training", save_path=out / "rssm_training.png")

    one_step = evaluate_rssm(rssm, test, train_episodes=train)
    # No predictor that sees only (o_t, a_t) can have a reward MSE below this: the RSSM's memory must beat it.
    one_step["memoryless_reward_mse_bound"] = memoryless_reward_mse(test, sequence_reward_variance)
    filtered = rssm_one_step_predictions(rssm, test[:1])
    episode = test[0]
    plot_rollout(episode["next_observations"], filtered["next_observations"][0], episode["rewards"],
                 filtered["rewards"][0], dim_names=SEQUENCE_DIMS,
                 title="RSSM one-step predictions along a held-out episode, after filtering every step before",
                 xlabel="step t + 1 (predicting o_{t+1} and r_t)", save_path=out / "rssm_predictions.png")
    context = budget.rssm_context
    horizon = budget.seq_episode_length - context + 1
    open_loop = rssm_open_loop_predictions(rssm, test[:1], context, horizon)
    steps = slice(context - 1, context - 1 + horizon)
    plot_rollout(episode["next_observations"][steps], open_loop["observations"][0], episode["rewards"][steps],
                 open_loop["rewards"][0], dim_names=SEQUENCE_DIMS,
                 title=f"RSSM: open loop after observing {context} steps, against reality",
                 save_path=out / "rssm_open_loop.png")
    horizons = rssm_horizon_errors(rssm, test, context, horizon, train_episodes=train)
    plot_horizon_errors({"RSSM": horizons}, f"RSSM (SequenceEnvironment): open-loop error after {context} steps",
                        save_path=out / "rssm_horizon_errors.png")
    tqdm.write(f"[2.2] one-step reward MSE {one_step['reward_mse']:.3f} (best memoryless predictor: "
               f"{one_step['memoryless_reward_mse_bound']:.3f}, training mean: {one_step['baseline_reward_mse']:.3f})")
    return {"one_step": one_step, "horizon": {k: np.asarray(v).tolist() for k, v in horizons.items()}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the walkthrough; returns the metrics it writes to ``metrics.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/walkthrough"), help="folder for figures and metrics")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="full", help="tiny: a smoke test in seconds")
    parser.add_argument("--device", default="auto", help='"auto", "cpu", "cuda", ...')
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    budget = BUDGETS[args.budget]
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    with tqdm(total=budget.vae_steps + budget.world_model_steps + budget.rssm_steps, unit="step") as bar:
        metrics: dict[str, Any] = {
            "budget": args.budget,
            "seed": args.seed,
            "world_model": section_1(budget, args.device, args.seed, args.out, bar),
            "rssm": section_2(budget, args.device, args.seed, args.out, bar),
        }
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    tqdm.write(f"figures and metrics.json written to {args.out} in {metrics['seconds']} s")
    return metrics


if __name__ == "__main__":
    main()
