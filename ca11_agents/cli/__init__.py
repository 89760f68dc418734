"""The ca11 command: one entry point for training, watching, dreaming, experiments, benchmarks and deployment.

    ca11 train dreamer --env CA11/ContinuousPendulum-v0 --steps 3000 --out runs/pendulum
    ca11 train --resume runs/pendulum --steps 5000
    ca11 eval runs/pendulum --episodes 10
    ca11 render runs/pendulum --video pendulum.gif
    ca11 dream runs/pendulum --video dream.gif
    ca11 experiment world-model --config notebook --out runs/wm
    ca11 bench --algos dreamer,sb3_sac --envs CA11/ContinuousPendulum-v0 --seeds 3
    ca11 ablate ... / ca11 sweep ... / ca11 play ENV_ID / ca11 export RUN --onnx model.onnx / ca11 serve RUN

``ca11 COMMAND --help`` explains every option with its default. Bad arguments end with status 2 and a message that
names the argument; a run interrupted with Ctrl-C saves its checkpoint and replay first (status 130).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ca11_agents.cli import commands

#: Commands that hand their arguments to another module's own command line (its --help is theirs).
FORWARDED = {
    "bench": ("benchmarks.run", "compare learners and baselines over seeds (python -m benchmarks.run); bench extra"),
    "ablate": ("benchmarks.ablation", "remove one Dreamer ingredient at a time over seeds; bench extra"),
    "sweep": ("benchmarks.sweep", "Optuna hyperparameter search, optionally on Ray Tune; sweeps extra"),
    "play": ("ca11_gym.play", "play a ca11 environment with the keyboard in a pygame window"),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``ca11`` parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(prog="ca11", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_train(sub)
    commands.add_eval(sub)
    commands.add_render(sub)
    commands.add_dream(sub)
    commands.add_experiment(sub)
    commands.add_export(sub)
    commands.add_serve(sub)
    for name, (_, help_text) in FORWARDED.items():
        forward = sub.add_parser(name, help=f"{help_text} (ca11 {name} --help)", add_help=False)
        forward.add_argument("args", nargs=argparse.REMAINDER)  # listed here; main() forwards before parsing
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ca11`` with ``argv`` (default: the command line); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:  # before parsing: argparse would take the forwarded --help as ca11's
        import importlib

        try:
            module = importlib.import_module(FORWARDED[argv[0]][0])
        except ImportError as err:  # a missing extra (Ray, Optuna, pandas): its message names it
            print(f"ca11 {argv[0]}: error: {err}", file=sys.stderr)
            return 2
        return int(module.main(argv[1:]) or 0)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "pass_through", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "pass_through", False):
        args.args = unknown  # ca11 serve: the server's own options (python -m ca11_agents.deploy.serve --help)
    return commands.run(parser, args)
