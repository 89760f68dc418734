"""Cost of one DreamerAgent update, for the default constructor and for variants of it.

Usage::

    python -m benchmarks.update_cost [--env CA11/ContinuousCartPole-v0] [--updates 300] [--repeats 2] \\
        [--variant NAME='{"mc_value_coef": 0.0}' ...]

The policy alias follows the env's observation space (``CnnPolicy`` for ``CA11/PixelPendulum-v0``). Each configuration
fills its replay buffer with ``--fill`` random env steps (so it holds finished episodes), warms up with 20 updates,
then times ``--updates`` calls of :meth:`DreamerAgent.train` on one torch thread; the figure is the
best of ``--repeats`` such runs (the configurations take turns, so a slow phase of the machine hits all of them).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import benchmarks.envs  # noqa: F401  (registers CA11/PixelPendulum-v0)
import ca11_gym  # noqa: F401  (registers the CA11 environments)
from benchmarks.algos import get_algo, policy_for
from ca11_agents import DreamerAgent


def parse_variant(text: str) -> tuple[str, dict]:
    """``NAME=JSON`` -> ``(NAME, kwargs)``, with an error that names the malformed part."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME='{{\"arg\": value}}'")
    try:
        kwargs = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--variant {name}: not JSON ({exc})") from exc
    if not isinstance(kwargs, dict):
        raise argparse.ArgumentTypeError(f"--variant {name}: expected a JSON object of DreamerAgent arguments")
    return name, kwargs


def time_updates(env_id: str, kwargs: dict, fill: int, updates: int, seed: int = 0) -> float:
    """Seconds per update of a DreamerAgent built with ``kwargs`` after ``fill`` random steps."""
    policy = policy_for(get_algo("dreamer"), env_id)  # MlpPolicy, CnnPolicy or MultiInputPolicy by the space
    agent = DreamerAgent(policy, env_id, seed=seed, device="cpu", **{**kwargs, "learning_starts": fill})
    agent.learn(fill)
    for _ in range(20):
        agent.train()
    start = time.perf_counter()
    for _ in range(updates):
        agent.train()
    return (time.perf_counter() - start) / updates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CA11/ContinuousCartPole-v0")
    parser.add_argument("--fill", type=int, default=2000, help="random env steps stored before timing")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variant", type=parse_variant, action="append", default=[], help="NAME='{json kwargs}'")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    configs = [("default", {}), *args.variant]
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, kwargs in configs:
            seconds = time_updates(args.env, kwargs, args.fill, args.updates)
            best[name] = min(best.get(name, float("inf")), seconds)
    for name, kwargs in configs:
        print(f"{name:>12}: {1000 * best[name]:6.1f} ms per update  {json.dumps(kwargs)}")


if __name__ == "__main__":
    main()
