"""Benchmarks of the ca11 learners against model-free baselines (python -m benchmarks.run) and of env speed."""

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The benchmark commands' --help: each option's default shown, the description's line breaks kept."""
