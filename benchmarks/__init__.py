"""Benchmarks of the ca11 learners against model-free baselines (python -m benchmarks.run) and of env speed."""

import argparse
import shlex
import sys
from collections.abc import Sequence


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The benchmark commands' --help: each option's default shown, the description's line breaks kept."""


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The shell command that ran ``python -m <module>`` with ``argv`` (``sys.argv[1:]`` when ``None``), quoted so
    that it can be pasted back (a value such as ``"gaussian x1"`` keeps its quotes)."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])
