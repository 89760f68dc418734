"""The CPU thread policy of the ca11 learners: one torch intra-op thread while they learn and act, unless the user
chose a count.

A learner's tensors are small (batches of a few hundred rows, one observation per ``predict``), so on a CPU the
intra-op threads torch starts by default (one per core) mostly wait for each other, and on a machine where other
work runs they fight it for the cores: the README's first snippet took over an hour with torch's default on a busy
2-core machine and under 5 minutes with one thread. rl-zoo pins one thread for the same reason.

The rule (:func:`learner_threads`), applied through :func:`cpu_threads` by ``learn()`` and ``predict()`` of every
learner on a CPU device:

* ``CA11_NUM_THREADS=N`` in the environment: use ``N`` threads (``0``: leave torch's setting alone);
* otherwise, if the user chose a count (``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` set, or
  ``torch.set_num_threads(n)`` called, after importing ``ca11_agents``, with another count than torch's
  default), keep it;
* otherwise use one thread.

The previous count is restored when ``learn()``/``predict()`` returns, so code around them is not affected. The
count is process-wide (torch's): learners used from several Python threads at once share it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: torch's intra-op thread count when ``ca11_agents`` was imported (its default, unless set earlier).
TORCH_DEFAULT_THREADS = torch.get_num_threads()
#: Environment variables through which a user chooses the thread count for every OpenMP/MKL program.
USER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def learner_threads() -> int | None:
    """The intra-op thread count a learner on a CPU should use, or ``None`` to leave torch's setting alone."""
    raw = os.environ.get("CA11_NUM_THREADS", "").strip()
    if raw:
        try:
            count = int(raw)
        except ValueError:
            raise ValueError(f"CA11_NUM_THREADS must be an integer >= 0, got {raw!r}") from None
        if count < 0:
            raise ValueError(f"CA11_NUM_THREADS must be an integer >= 0, got {raw!r}")
        return count or None
    if any(os.environ.get(name, "").strip() for name in USER_THREAD_VARIABLES):
        return None
    if torch.get_num_threads() != TORCH_DEFAULT_THREADS:
        return None  # torch.set_num_threads was called: the user chose
    return 1


@contextmanager
def cpu_threads(device: torch.device | str) -> Iterator[None]:
    """Run the block with :func:`learner_threads` intra-op threads when ``device`` is a CPU; restore the previous
    count afterwards. A no-op on other devices and where the user chose a count."""
    count = learner_threads() if torch.device(device).type == "cpu" else None
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
