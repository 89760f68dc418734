"""Temporally-extended epsilon-greedy exploration for the learner loop (Dabney, Ostrovski & Barreto, 2021: ez-greedy).

A model-based learner learns its world model from whatever the behaviour did and its actor in imagination, so the
actions it takes in the env need not be its actor's. Where the actor's own sampling stops exploring (a discrete actor
that collapses onto one action while no reward tells the actions apart: ``Acrobot-v1``, benchmarks/README.md), the
loop can act with this behaviour instead: each env that is not already repeating an action starts, with
probability ``eps`` per step, to repeat one uniformly random action for ``n`` steps, with ``n`` drawn from a zeta
distribution ``p(n) ~ n ** -mu`` cut at ``max_steps`` (mostly short repeats, sometimes long ones: the long ones are
what a uniformly random action each step never does). Episode starts end a repeat. Only a share ``fraction`` of
the episodes explore, drawn per env at each episode start (as Ape-X gives its actors different epsilons): the others
show the world model what the actor itself does. The numbers come from torch's generator, so a seeded learner
explores the same way every run.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ca11_agents.common.spaces import ActionAdapter


class RepeatedRandomActions:
    """ez-greedy over learner actions ``(n_envs, dim)`` (see the module docstring).

    Args:
        actions: the learner's action adapter (its ``random`` draws the repeated action).
        n_envs: envs stepped together.
        eps: probability per step that an env not repeating an action starts to.
        max_steps: the longest repeat.
        device: where the actions live.
        fraction: the share of episodes that explore.
        mu: the zeta distribution's exponent of the repeat lengths (the paper's 2).
    """

    def __init__(
        self,
        actions: ActionAdapter,
        n_envs: int,
        eps: float,
        max_steps: int,
        device: torch.device,
        fraction: float = 1.0,
        mu: float = 2.0,
    ) -> None:
        self.actions, self.eps, self.fraction = actions, float(eps), float(fraction)
        lengths = torch.arange(1, int(max_steps) + 1, dtype=torch.float64)
        self._length_probs = (lengths**-mu / (lengths**-mu).sum()).float().to(device)
        self._held = torch.zeros(n_envs, actions.dim, device=device)
        self._left = torch.zeros(n_envs, dtype=torch.long, device=device)
        # Every env explores with fraction 1, and no numbers are drawn for it (runs stay as they were measured).
        self._exploring = torch.ones(n_envs, dtype=torch.bool, device=device)
        if self.fraction < 1.0:
            self._exploring = torch.rand(n_envs, device=device) < self.fraction

    def __call__(self, action: Tensor, is_first: Tensor) -> Tensor:
        """The actions to take: ``action`` (the actor's, ``(n_envs, dim)``) except where a repeat runs."""
        first = is_first.bool()
        self._left = torch.where(first, torch.zeros_like(self._left), self._left)
        if self.fraction < 1.0:
            redraw = torch.rand(self._exploring.shape, device=action.device) < self.fraction
            self._exploring = torch.where(first, redraw, self._exploring)
        start = self._exploring & (self._left == 0) & (torch.rand(self._left.shape, device=action.device) < self.eps)
        if bool(start.any()):
            count = int(start.sum())
            self._held[start] = self.actions.random(action[start])
            self._left[start] = torch.multinomial(self._length_probs, count, replacement=True) + 1
        repeating = self._left > 0
        self._left = self._left - repeating.long()
        return torch.where(repeating[:, None], self._held.to(action.dtype), action)
