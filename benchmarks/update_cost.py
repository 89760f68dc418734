"""Cost of one update (and, with ``--actions N``, of one action) of a ca11 learner, for its default constructor and
for variants of it.

Usage::

    python -m benchmarks.update_cost [--algo dreamer] [--env CA11/ContinuousCartPole-v0] [--updates 300] \\
        [--repeats 2] [--actions 200] [--learn-steps 500] [--variant NAME='{"mc_value_coef": 0.0}' ...] \\
        [--device cuda] [--compile reduce-overhead]

A planner (``--algo world_model_agent`` or ``rssm_agent``) is cheap to train and costly to act: ``--actions N`` also
times N deterministic ``predict`` calls from the env's observations (a search per call) and reports actions per
second.

The policy alias follows the env's observation space (``CnnPolicy`` for ``CA11/PixelPendulum-v0``). Each configuration
fills its replay buffer with ``--fill`` random env steps (so it holds finished episodes), warms up with 20 updates,
then times ``--updates`` calls of the learner's ``train`` on one torch thread; the figure is the
best of ``--repeats`` such runs (the configurations take turns, so a slow phase of the machine hits all of them).
It also counts the aten operator calls of an update (``torch.profiler``) and times ``learn`` for ``--learn-steps``
more env steps on the learner's own schedule: the env steps per second that a training run gets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import warnings
from collections.abc import Iterator

import torch

import benchmarks.envs  # noqa: F401  (registers CA11/PixelPendulum-v0)
import ca11_gym  # noqa: F401  (registers the CA11 environments)
from benchmarks.adapters import policy_for
from benchmarks.algos import get_algo


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
        raise argparse.ArgumentTypeError(f"--variant {name}: expected a JSON object of the learner's arguments")
    return name, kwargs


def build(env_id: str, kwargs: dict, fill: int, algo: str = "dreamer", seed: int = 0, device: str = "cpu"):  # noqa: ANN201
    """A learner built with ``kwargs`` whose replay holds ``fill`` random steps, after 20 warm-up updates."""
    spec = get_algo(algo)
    policy = policy_for(spec, env_id)  # MlpPolicy, CnnPolicy or MultiInputPolicy by the space
    agent = spec.load_class()(policy, env_id, seed=seed, device=device, **{**kwargs, "learning_starts": fill})
    with warnings.catch_warnings():  # "ends before any update": filling the replay is the point here
        warnings.simplefilter("ignore", UserWarning)
        agent.learn(fill)
    for _ in range(20):
        agent.train()
    return agent


def time_updates(env_id: str, kwargs: dict, fill: int, updates: int, seed: int = 0, algo: str = "dreamer",
                 agent=None) -> float:  # noqa: ANN001  # fmt: skip
    """Seconds per update of a learner built with ``kwargs`` after ``fill`` random steps (or of ``agent``)."""
    agent = agent or build(env_id, kwargs, fill, algo, seed)
    _synchronize(agent)
    start = time.perf_counter()
    for _ in range(updates):
        agent.train()
    _synchronize(agent)
    return (time.perf_counter() - start) / updates


def _synchronize(agent) -> None:  # noqa: ANN001
    if agent.device.type == "cuda":
        torch.cuda.synchronize(agent.device)


@contextlib.contextmanager
def compiled_update(agent, mode: str) -> Iterator[float]:  # noqa: ANN001
    """Within the block, ``agent``'s update runs its two sequential parts compiled by ``torch.compile(mode=mode)``
    (``"reduce-overhead"`` adds CUDA graphs on a GPU): the world-model loss (the posterior over ``T`` steps) and the
    imagination rollout (``H`` steps of the prior and the actor). Yields the seconds the first three (compiling)
    updates took; both are restored on exit.

    A measurement, not a library option: it swaps ``DreamerAgent``'s module-level ``imagine`` while it lasts.
    """
    import ca11_agents.dreamer.dreamer as dreamer_module

    rssm, imagine = agent.policy.rssm, dreamer_module.imagine
    rssm.loss_terms = torch.compile(type(rssm).loss_terms.__get__(rssm), mode=mode)
    dreamer_module.imagine = torch.compile(imagine, mode=mode)
    try:
        start = time.perf_counter()
        for _ in range(3):
            agent.train()
        _synchronize(agent)
        yield time.perf_counter() - start
    finally:
        del rssm.loss_terms  # the instance attribute: the class's method again
        dreamer_module.imagine = imagine


def count_ops(agent, updates: int = 3) -> float:  # noqa: ANN001
    """aten operator calls per update (``torch.profiler``, CPU): the per-call overhead an update pays."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(updates):
            agent.train()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")) / updates


def time_learning(agent, steps: int) -> float:  # noqa: ANN001
    """Env steps per second of ``agent.learn(steps)`` continuing a run past ``learning_starts``: acting, storing,
    updating on the learner's own schedule (``train_freq``, ``gradient_steps``) and logging, all counted."""
    start = time.perf_counter()
    agent.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def time_actions(env_id: str, kwargs: dict, fill: int, actions: int, seed: int = 0, algo: str = "dreamer",
                 agent=None) -> float:  # noqa: ANN001  # fmt: skip
    """Seconds per deterministic ``predict`` along episodes of the env, by a learner built as for
    :func:`time_updates` (or by ``agent``)."""
    import gymnasium as gym

    agent = agent or build(env_id, kwargs, fill, algo, seed)
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    state, start, elapsed = None, True, 0.0
    for _ in range(actions):
        tic = time.perf_counter()
        action, state = agent.predict(obs, state, [start], deterministic=True)
        elapsed += time.perf_counter() - tic
        obs, _, terminated, truncated, _ = env.step(action)
        start = terminated or truncated
        if start:
            obs, _ = env.reset()
    return elapsed / actions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", default="dreamer", choices=("dreamer", "world_model_agent", "rssm_agent"))
    parser.add_argument("--env", default="CA11/ContinuousCartPole-v0")
    parser.add_argument("--actions", type=int, default=0, help="also time this many predict calls (0: none)")
    parser.add_argument("--fill", type=int, default=2000, help="random env steps stored before timing")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--learn-steps", type=int, default=500,
                        help="also time learn() for this many env steps after the fill: env steps/s (0: skip)")
    parser.add_argument("--variant", type=parse_variant, action="append", default=[], help="NAME='{json kwargs}'")
    parser.add_argument("--device", default="cpu", help="torch device of the learners (cpu, cuda)")
    parser.add_argument("--compile", default="", metavar="MODE",
                        help="also time every configuration with its world-model loss and imagination compiled by "
                             "torch.compile(mode=MODE), e.g. default or reduce-overhead (CUDA graphs); Dreamer only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    configs = [("default", {}), *args.variant]
    best: dict[str, float] = {}
    acting: dict[str, float] = {}
    steps_per_s: dict[str, float] = {}
    ops: dict[str, float] = {}
    compiled: dict[str, float] = {}
    for repeat in range(args.repeats):
        for name, kwargs in configs:
            agent = build(args.env, kwargs, args.fill, args.algo, device=args.device)
            seconds = time_updates(args.env, kwargs, args.fill, args.updates, agent=agent)
            best[name] = min(best.get(name, float("inf")), seconds)
            if repeat == 0:
                ops[name] = count_ops(agent)
            if args.compile and repeat == 0:
                with compiled_update(agent, args.compile) as compile_seconds:
                    seconds = time_updates(args.env, kwargs, args.fill, args.updates, agent=agent)
                compiled[name] = seconds
                print(f"{name} compiled ({args.compile}): first 3 updates {compile_seconds:.1f} s, then "
                      f"{1000 * seconds:.1f} ms per update", flush=True)  # fmt: skip
            if args.actions:
                seconds = time_actions(args.env, kwargs, args.fill, args.actions, agent=agent)
                acting[name] = min(acting.get(name, float("inf")), seconds)
            if args.learn_steps:
                steps_per_s[name] = max(steps_per_s.get(name, 0.0), time_learning(agent, args.learn_steps))
    for name, kwargs in configs:
        act = f"  {1 / acting[name]:6.1f} actions/s ({1000 * acting[name]:.1f} ms each)" if name in acting else ""
        learn = f"  {steps_per_s[name]:5.1f} env steps/s in learn()" if name in steps_per_s else ""
        print(
            f"{args.algo} {name:>12}: {1000 * best[name]:6.1f} ms per update  {ops[name]:7.0f} aten calls per update"
            f"{learn}{act}  {json.dumps(kwargs)}"
        )
        if name in compiled:
            print(f"{args.algo} {name:>12}: {1000 * compiled[name]:6.1f} ms per update compiled ({args.compile})")


if __name__ == "__main__":
    main()
