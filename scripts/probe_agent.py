"""What a saved DreamerAgent (or RSSMAgent) believes along one of its own episodes, next to what happened.
Needs the ``analysis`` extra (pandas): ``pip install ".[analysis]"``.

    python scripts/probe_agent.py outputs/demo/dreamer.zip --env CA11/ContinuousPendulum-v0 --seed 100 \\
        --every 20 --csv outputs/probe.csv --plot outputs/probe.png

Runs one deterministic episode (reset with ``--seed``) and records, for every step, the observation, the action, the
reward and termination, and the networks' view of the same step: the critic's and the slow critic's value of the
posterior state, the reward head's prediction and the continue head's probability. Next to the values it puts the
discounted return the episode actually paid from that step (``return_to_go``, with the agent's gamma; 0 after the
last step, so for an episode cut by the time limit the last steps' figures are lower bounds).

A critic far below ``return_to_go`` in the middle of a long episode, or flat where the episode is heading for its
end, is what kept the cart-pole from being solved before the Monte-Carlo value loss (benchmarks/README.md, "The
cart-pole"). Prints every ``--every``-th step and the last three; ``--csv`` and ``--plot`` write all of them.

``--algo rssm_agent`` probes the RSSM planner the same way: its terminal-value critic (empty columns for a planner
saved with ``terminal_value=0``, which has none) and its RSSM's heads, along the episode its planner plays.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym
import numpy as np
import torch

try:
    import pandas as pd
except ModuleNotFoundError as err:  # not in the core install
    raise ModuleNotFoundError(f'{err}: probe_agent.py needs the analysis extra, pip install ".[analysis]"') from err

import ca11_gym  # noqa: F401  (registers the CA11 environments)
from ca11_agents import DreamerAgent, RSSMAgent
from ca11_agents.world_models.encoders import channel_first_space
from ca11_agents.common.replay import discounted_returns
from ca11_agents.common.spaces import batch_observation, obs_as_tensor
from ca11_agents.world_models.rssm import RSSMState


#: The learners whose policy holds an RSSM and a critic to probe (the ``--algo`` names of the benchmarks and the server).
LEARNERS = {"dreamer": DreamerAgent, "rssm_agent": RSSMAgent}


@torch.no_grad()
def probe_episode(agent: DreamerAgent | RSSMAgent, env: gym.Env, seed: int) -> pd.DataFrame:
    """One deterministic episode of ``agent`` in ``env``, one row per step (see the module's docstring)."""
    policy, device = agent.policy, agent.device
    obs, _ = env.reset(seed=seed)
    state = policy.initial_state(1)  # Dreamer's is the RSSM's latent, the planner's (latent, plan)
    prev_action = torch.zeros(1, policy.actions.dim, device=device)
    is_first, rows, done = torch.ones(1, device=device), [], False
    while not done:
        batch, _, _ = batch_observation(obs, agent.observation_space, "probe_agent")
        action, state = policy.act(obs_as_tensor(batch, device), state, prev_action, is_first, deterministic=True)
        features = policy.rssm.features(state if isinstance(state, RSSMState) else state[0])
        # Vector observations are listed; frames and dicts are too large for a table.
        row = {f"obs_{i}": float(x) for i, x in enumerate(np.ravel(obs))} if np.ndim(obs) == 1 else {}
        row.update({f"action_{i}": float(x) for i, x in enumerate(action[0].cpu().numpy())})
        row.update(
            value=float(policy.critic(features)) if policy.critic is not None else np.nan,
            slow_value=float(policy.slow_critic(features)) if policy.slow_critic is not None else np.nan,
            predicted_reward=float(policy.rssm.reward(features, action)),
            continue_prob=float(policy.rssm.cont(features, action)),
        )
        obs, reward, terminated, truncated, _ = env.step(policy.actions.to_env(action.cpu().numpy())[0])
        row.update(reward=float(reward), terminated=bool(terminated), truncated=bool(truncated))
        rows.append(row)
        prev_action, is_first, done = action, torch.zeros(1, device=device), terminated or truncated
    table = pd.DataFrame(rows)
    table.insert(0, "step", np.arange(len(table)))
    table["return_to_go"] = discounted_returns(table["reward"].to_numpy(), agent.gamma)
    return table


def plot(table: pd.DataFrame, path: Path, title: str) -> None:
    """Values against the return actually paid, and the continue probability, over the episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=[3, 1])
    top.plot(table["step"], table["return_to_go"], label="discounted return paid from here", color="black")
    top.plot(table["step"], table["value"], label="critic")
    top.plot(table["step"], table["slow_value"], label="slow critic", linestyle="--")
    top.set_ylabel("value")
    top.legend()
    top.set_title(title)
    bottom.plot(table["step"], table["continue_prob"], color="tab:red")
    bottom.set_ylabel("P(continue)")
    bottom.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agent", type=Path, help="an agent saved with agent.save(...)")
    parser.add_argument("--algo", choices=sorted(LEARNERS), default="dreamer", help="the learner that saved it")
    parser.add_argument("--env", required=True, help="env id, e.g. CA11/ContinuousCartPole-v0")
    parser.add_argument("--seed", type=int, default=100, help="reset seed of the episode")
    parser.add_argument("--every", type=int, default=20, help="print every N-th step")
    parser.add_argument("--csv", type=Path, help="write every step here")
    parser.add_argument("--plot", type=Path, help="write the value / continue figure here (.png)")
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error(f"--every must be >= 1, got {args.every}")
    if not args.agent.is_file():
        print(f"error: no saved agent at {args.agent}", file=sys.stderr)
        return 2
    try:
        agent = LEARNERS[args.algo].load(args.agent, device="cpu")
        env = gym.make(args.env)
    except (ValueError, gym.error.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if channel_first_space(env.observation_space) != agent.observation_space:
        print(f"error: {args.env} observes {env.observation_space}, the agent was trained on "
              f"{agent.observation_space}", file=sys.stderr)  # fmt: skip
        return 2
    table = probe_episode(agent, env, args.seed)
    shown = pd.concat([table.iloc[:: args.every], table.iloc[-3:]]).drop_duplicates("step")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(shown.to_string(index=False))
    end = "terminated" if table["terminated"].iat[-1] else "truncated" if table["truncated"].iat[-1] else "ended"
    print(f"\n{len(table)} steps ({end}), return {table['reward'].sum():.1f}; critic - return paid: median "
          f"{(table['value'] - table['return_to_go']).median():+.1f} (gamma {agent.gamma})")
    for path in (args.csv, args.plot):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if args.csv is not None:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    if args.plot is not None:
        plot(table, args.plot, f"{args.agent.name} on {args.env}, seed {args.seed}")
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
