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
    infinite: bool = False  #: ``float("inf")`` accepted (e.g. ``grad_clip``: no clipping)
    bools: bool = False  #: ``True``/``False`` accepted as 1/0 (``verbose``)

    def describe(self) -> str:
        kind = "an integer" if self.kind is int else "a number" if self.infinite else "a finite number"
        bounds = []
        fmt = (lambda v: f"{int(v)}") if self.kind is int else (lambda v: f"{v:g}")
        if self.low > -math.inf:
            bounds.append(f"{'>' if self.open_low else '>='} {fmt(self.low)}")
        if self.high < math.inf:
            bounds.append(f"<= {fmt(self.high)}")
        return f"{kind}{' ' + ' and '.join(bounds) if bounds else ''}{' or None' if self.optional else ''}"

    def clean(self, value: Any) -> Any:
        """``value`` as this rule's type (``1e6`` -> ``1_000_000`` for integers), or ``ValueError``."""
        if value is None and self.optional:
            return None
        if (isinstance(value, bool) and not self.bools) or not isinstance(value, numbers.Real):
            raise ValueError
        try:
            if self.kind is int:
                if not float(value).is_integer():
                    raise ValueError
                value = int(value)
            elif math.isnan(value) or (math.isinf(value) and not self.infinite):
                raise ValueError
            else:
                value = float(value)
        except OverflowError:  # 10**400
            raise ValueError from None
        if value < self.low or value > self.high or (self.open_low and value == self.low):
            raise ValueError
        return value


@dataclass(frozen=True)
class OneOf:
    """An argument that takes one of a few names."""

    choices: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def clean(self, value: Any) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            raise ValueError
        return value


_NON_NEGATIVE = Rule(float, 0.0)
_COUNT = Rule(int, 1)

#: The rules, by argument name (every learner's arguments of that name mean the same thing).
RULES: dict[str, Rule | OneOf] = {
    "learning_rate": _NON_NEGATIVE,  # 0 freezes that part, as users do on purpose
    "actor_lr": _NON_NEGATIVE,
    "critic_lr": _NON_NEGATIVE,
    "buffer_size": Rule(int, 1, optional=True),
    "learning_starts": Rule(int, 0),
    "batch_size": _COUNT,
    "seq_len": _COUNT,  # the learner's own minimum: ModelBasedAlgorithm.min_seq_len
    "train_freq": _COUNT,
    "gradient_steps": _COUNT,
    "gamma": Rule(float, 0.0, 1.0, open_low=True),
    "return_lambda": Rule(float, 0.0, 1.0),
    "plan_lambda": Rule(float, 0.0, 1.0),
    "imagination_horizon": _COUNT,
    "imagination_starts": Rule(int, 1, optional=True),
    "ent_coef": _NON_NEGATIVE,
    "critic_tau": Rule(float, 0.0, 1.0, open_low=True),
    "replay_value_coef": _NON_NEGATIVE,
    "mc_value_coef": _NON_NEGATIVE,
    "mc_max_age": Rule(int, 1, optional=True),
    "saturation_coef": _NON_NEGATIVE,
    "explore_eps": Rule(float, 0.0, 1.0, optional=True),
    "explore_max_steps": _COUNT,
    "explore_fraction": Rule(float, 0.0, 1.0),
    "grad_clip": Rule(float, 0.0, open_low=True, infinite=True),  # 0 stops learning, < 0 ascends; inf: no clip
    "horizon": _COUNT,
    "uncertainty_weight": Rule(float),
    "terminal_value": _NON_NEGATIVE,
    "stats_window_size": _COUNT,
    "verbose": Rule(int, 0, bools=True),
    "seed": Rule(int, 0, 2**32 - 1, optional=True),
    "on_nonfinite": OneOf(("raise", "skip")),
    "precision": OneOf(("float32", "bf16")),
    "actor_grad": OneOf(("reinforce", "dynamics")),  # DreamerAgent's None is resolved from the action space first
    "planner": OneOf(("cem", "mppi")),
}


#: What a checkpoint's ``policy_kwargs`` may ask for (a stranger's file is built on the meta device before its
#: weights are compared, and even there a million layers take minutes): list lengths, integers, and counts.
MAX_LIST = 64
MAX_INT = 1 << 16
MAX_COUNTS = {"ensemble_size": 256, "layers": 64, "context": 4096}


#: How deep dicts may nest inside a checkpoint's ``policy_kwargs`` (``rssm_kwargs`` -> ``core_kwargs`` is two).
MAX_NESTING = 3


def check_sizes(learner: str, policy_kwargs: Any, where: str = "policy_kwargs", depth: int = 0) -> None:
    """Refuse network sizes in a checkpoint's ``policy_kwargs`` beyond :data:`MAX_LIST`, :data:`MAX_INT` and
    :data:`MAX_COUNTS` (a ``ValueError`` naming the entry), nested dicts included (``rssm_kwargs`` holds
    ``core_kwargs``); a user's own constructor call is not limited."""
    if not isinstance(policy_kwargs, dict):
        raise ValueError(f"{learner}: {where} must be a JSON object, got {type(policy_kwargs).__name__}")
    for name, value in policy_kwargs.items():
        entry = f"{where}[{name!r}]"
        if isinstance(value, dict):
            if depth >= MAX_NESTING:
                raise ValueError(f"{learner}: {entry} is nested too deeply")
            check_sizes(learner, value, entry, depth + 1)
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if len(values) > MAX_LIST:
            raise ValueError(f"{learner}: {entry} has {len(values)} entries (at most {MAX_LIST})")
        limit = MAX_COUNTS.get(name, MAX_INT)
        for v in values:
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and abs(v) > limit:
                raise ValueError(f"{learner}: {entry} = {v!r} is beyond {limit}")


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
