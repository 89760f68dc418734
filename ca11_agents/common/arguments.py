"""One validation of the learners' constructor arguments: a rule per argument name, shared by every learner.

A learner lists its arguments once, in its signature; :meth:`ModelBasedAlgorithm._setup_model
<ca11_agents.common.base.ModelBasedAlgorithm._setup_model>` checks every one of them that has a rule here (type,
range, finiteness) and the combinations that would otherwise fail silently or much later, with a ``ValueError``
that names the learner, the argument and what it accepts. A new learner's new argument gets a rule here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """What an argument accepts: an integer or a finite real number within ``[low, high]`` (``open_low``:
    ``low`` excluded), or ``None`` where ``optional``."""

    kind: type  #: ``int`` or ``float``
    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    optional: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.kind is int else "a finite number"
        bounds = []
        if self.low > -math.inf:
            bounds.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high < math.inf:
            bounds.append(f"<= {self.high:g}")
        return f"{kind}{' ' + ' and '.join(bounds) if bounds else ''}{' or None' if self.optional else ''}"

    def clean(self, value: Any) -> Any:
        """``value`` as this rule's type (``1e6`` -> ``1_000_000`` for integers), or ``ValueError``."""
        if value is None and self.optional:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError
        if self.kind is int:
            if not float(value).is_integer():
                raise ValueError
            value = int(value)
        elif not math.isfinite(value):
            raise ValueError
        else:
            value = float(value)
        if value < self.low or value > self.high or (self.open_low and value == self.low):
            raise ValueError
        return value


_POSITIVE = Rule(float, 0.0, open_low=True)
_NON_NEGATIVE = Rule(float, 0.0)
_COUNT = Rule(int, 1)

#: The rules, by argument name (every learner's arguments of that name mean the same thing).
RULES: dict[str, Rule] = {
    "learning_rate": _POSITIVE,
    "actor_lr": _POSITIVE,
    "critic_lr": _POSITIVE,
    "buffer_size": Rule(int, 2, optional=True),
    "learning_starts": Rule(int, 0),
    "batch_size": _COUNT,
    "seq_len": Rule(int, 2),  # every update reads transitions or returns across at least two steps
    "train_freq": _COUNT,
    "gradient_steps": _COUNT,
    "gamma": Rule(float, 0.0, 1.0, open_low=True),
    "return_lambda": Rule(float, 0.0, 1.0),
    "imagination_horizon": _COUNT,
    "imagination_starts": Rule(int, 1, optional=True),
    "ent_coef": _NON_NEGATIVE,
    "critic_tau": Rule(float, 0.0, 1.0, open_low=True),
    "replay_value_coef": _NON_NEGATIVE,
    "mc_value_coef": _NON_NEGATIVE,
    "grad_clip": _POSITIVE,  # <= 0 would stop learning (0) or ascend the loss (< 0)
    "horizon": _COUNT,
    "uncertainty_weight": Rule(float),
    "stats_window_size": _COUNT,
    "verbose": Rule(int, 0, 2),
    "seed": Rule(int, 0, 2**32 - 1, optional=True),
}


def validate(learner: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Check ``arguments`` (name -> value) against :data:`RULES` and return them cleaned (integers as ``int``).

    Raises:
        ValueError: naming the learner, the argument, its value and what it accepts.
    """
    cleaned = dict(arguments)
    for name, value in arguments.items():
        rule = RULES.get(name)
        if rule is None:
            continue
        try:
            cleaned[name] = rule.clean(value)
        except ValueError:
            raise ValueError(f"{learner}: {name} must be {rule.describe()}, got {value!r}") from None
    return cleaned


def validate_learn(learner: str, total_timesteps: Any) -> int:
    """``learn``'s ``total_timesteps`` as an ``int`` >= 0, or a ``ValueError``."""
    try:
        return Rule(int, 0).clean(total_timesteps)
    except ValueError:
        raise ValueError(f"{learner}.learn: total_timesteps must be an integer >= 0, got {total_timesteps!r}") from None
