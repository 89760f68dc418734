"""The GPU check of DreamerAgent's speed, as one prepared script that runs in a few minutes on a GPU machine.

Usage (from the repository's root; needs the ``bench`` extra for the SAC baseline)::

    python -m benchmarks.device_check --device cuda --out benchmarks/results/YYYY-MM-DD-gpu

It writes, under ``--out``:

1. ``update_cost.txt``: :mod:`benchmarks.update_cost` on the device for the default DreamerAgent and the ``"gpu"``
   preset (ms and aten calls per update, env steps/s in ``learn``), then the default again with its world-model
   loss and imagination compiled (``torch.compile``, ``--compile-mode``; ``reduce-overhead`` adds CUDA graphs),
   with the compile time;
2. ``run/``: a short pendulum run of DreamerAgent beside SB3's SAC on the same device (``benchmarks.run``, one seed,
   ``--steps`` env steps), with its ``summary.md``;
3. ``device_check.json``: the device, torch's version and each step's wall-clock.

``--quick`` shrinks every budget so that the whole script runs in a minute on a CPU (what the tests run), and
``--device cpu`` gives the CPU figures to set beside the GPU ones.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import torch

from benchmarks import run as bench_run
from benchmarks import update_cost
from ca11_agents.dreamer.presets import DREAMER_PRESETS


def _captured(path: Path, fn, *args) -> float:  # noqa: ANN001
    """Run ``fn(*args)``, printing its output and writing it to ``path``; returns the seconds it took."""
    buffer = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        fn(*args)
    elapsed = time.perf_counter() - start
    path.write_text(buffer.getvalue())
    print(buffer.getvalue(), end="", flush=True)
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3000, help="env steps of the pendulum run")
    parser.add_argument("--compile-mode", default="reduce-overhead", help="torch.compile mode ('' skips compiling)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the script, measures nothing")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    budget = ["--fill", "40", "--updates", "2", "--repeats", "1", "--learn-steps", "4"] if quick else [
        "--fill", "2000", "--updates", "100", "--repeats", "2", "--learn-steps", "300"]  # fmt: skip
    env = ["--env", "CA11/ContinuousPendulum-v0", "--device", args.device]
    gpu = dict(DREAMER_PRESETS["gpu"])
    if quick:
        gpu.update(batch_size=2, seq_len=8)
    timings: dict[str, float] = {}
    timings["update_cost"] = _captured(
        args.out / "update_cost.txt", update_cost.main, [*env, *budget, "--variant", f"gpu_preset={json.dumps(gpu)}"]
    )
    if args.compile_mode:
        timings["update_cost_compiled"] = _captured(
            args.out / "update_cost_compiled.txt",
            update_cost.main,
            [*env, *budget, "--repeats", "1", "--learn-steps", "0", "--compile", args.compile_mode],
        )
    steps = 200 if quick else args.steps
    start = time.perf_counter()
    status = bench_run.main([
        "--algos", "dreamer,sb3_sac", "--envs", "CA11/ContinuousPendulum-v0", "--seeds", "1", "--steps", str(steps),
        "--eval-every", str(max(steps // 6, 1)), "--eval-episodes", "2" if quick else "10", "--no-ray",
        "--device", args.device, "--out", str(args.out / "run"),
    ])  # fmt: skip
    if status:
        raise SystemExit(f"device_check: the pendulum run failed (status {status}), see {args.out / 'run'}")
    timings["pendulum_run"] = time.perf_counter() - start
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    meta = {"device": args.device, "device_name": device, "torch": torch.__version__, "quick": quick,
            "wall_s": {k: round(v, 1) for k, v in timings.items()}}  # fmt: skip
    (args.out / "device_check.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
