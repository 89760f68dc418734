"""Typed, documented configurations that round-trip through JSON and take ``key=value`` overrides.

Every configuration of the suite (a run's environment and training budget, the notebook's world-model and RSSM
experiments, a learner's hyperparameters) is a frozen dataclass deriving from :class:`Config`. A field's
documentation is the string literal written under it (as in ``ca11_agents``' other dataclasses);
:func:`field_docs` reads it for ``--help`` and error messages. A config:

* is written into every run folder as ``config.json`` (:meth:`Config.to_dict`) and read back with
  :meth:`Config.from_dict`, which names an unknown key with the allowed ones and a value of the wrong type with the
  type it needs;
* takes overrides ``section.key=value`` (:func:`apply_overrides`), the value parsed as JSON (``1e-3``, ``[64, 64]``,
  ``true``, ``null``) or else taken as a string (``env.id=CartPole-v1``);
* has named presets (:data:`PRESETS` of each module that defines them).

Written here rather than taken from Hydra/OmegaConf: the whole feature is ~150 lines over :mod:`dataclasses`, and a
dependency that loads YAML with custom resolvers is more than a course project's config needs.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

C = TypeVar("C", bound="Config")

#: Largest config file read (a config is a few kB: anything larger is not one).
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """A configuration key or value that is not allowed; the message names the key and what is allowed."""


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under each field of the dataclass ``cls`` (and its bases), by field name."""
    docs = {f.name: f.metadata["doc"] for f in dataclasses.fields(cls) if "doc" in f.metadata}  # generated classes
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # pragma: no cover - classes made at run time have no source
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):  # fmt: skip
                docs.setdefault(node.target.id, " ".join(following.value.value.split()))
    return docs


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(tp, "__name__", str(tp))


def check_value(tp: Any, value: Any) -> Any:
    """``value`` as type ``tp`` (ints are accepted for floats, lists for tuples), or ``TypeError``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise TypeError(f"one of {', '.join(repr(a) for a in get_args(tp))}")
    if origin in (Union, types.UnionType):
        for option in get_args(tp):
            try:
                return check_value(option, value)
            except TypeError:
                continue
        raise TypeError(_type_name(tp))
    if tp is type(None):
        if value is None:
            return None
        raise TypeError("null")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError("a string")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError("a list")
        args = get_args(tp)
        item = args[0] if args else Any
        items = [check_value(item, v) for v in value]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise TypeError("a mapping with string keys")
        return dict(value)
    if isinstance(tp, type) and issubclass(tp, Config):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return tp.from_dict(value)
        raise TypeError(f"a mapping of {tp.__name__} fields")
    raise TypeError(f"unsupported config type {tp!r}")  # pragma: no cover - a bug in a Config subclass


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every configuration: JSON round-trip, checked keys and types, overrides (see the module docstring)."""

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """The resolved type of each field."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "") -> C:
        """Build from a mapping (e.g. parsed JSON): every key must be a field, every value of its field's type;
        missing keys take their defaults. ``where`` prefixes key names in errors (``"train."``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where.rstrip('.') or cls.__name__} must be a mapping, got {type(data).__name__}")
        types_ = cls.field_types()
        unknown = sorted(set(data) - set(types_))
        if unknown:
            raise ConfigError(f"unknown key '{where}{unknown[0]}' in {cls.__name__}; allowed: {', '.join(types_)}")
        values = {}
        for key, value in data.items():
            tp = types_[key]
            if isinstance(tp, type) and issubclass(tp, Config) and isinstance(value, Mapping):
                values[key] = tp.from_dict(value, f"{where}{key}.")
                continue
            try:
                values[key] = check_value(tp, value)
            except TypeError as err:
                raise ConfigError(f"{where}{key} must be {err}, got {value!r}") from None
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{cls.__name__}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (nested configs as mappings, tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` (checked as :meth:`from_dict` checks)."""
        merged = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        merged.update(changes)
        data = {k: (v.to_dict() if isinstance(v, Config) else v) for k, v in merged.items()}
        return type(self).from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a JSON file written by :meth:`save` (or by hand); errors name the file."""
        data = read_json(path)
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

    @classmethod
    def describe(cls) -> str:
        """One line per field: name, type, default and documentation (for ``--help``)."""
        docs, lines = field_docs(cls), []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # fmt: skip
            if isinstance(default, Config):
                lines.append(f"  {f.name}.*: see {type(default).__name__}")
                continue
            lines.append(f"  {f.name} ({_type_name(cls.field_types()[f.name])}, default {json.dumps(default)}): "
                         f"{docs.get(f.name, '')}")
        return "\n".join(lines)


def check_device(name: str, device: str) -> None:
    """``ConfigError`` naming ``name`` unless ``device`` is ``"auto"`` or a torch device string (``cpu``,
    ``cuda``, ``cuda:1``, ``mps``)."""
    if device == "auto":
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{name} must be 'auto' or a torch device (cpu, cuda, cuda:1, mps), got {device!r}") from None


def read_json(path: str | Path) -> Any:
    """Parse a JSON file of at most :data:`MAX_CONFIG_BYTES`, with errors that name the file."""
    from ca11_agents.common.checkpoint import read_bounded

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    try:
        return json.loads(read_bounded(path, MAX_CONFIG_BYTES, "config file"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not a valid JSON config: {err}") from None


def parse_value(text: str) -> Any:
    """An override's value: JSON when it parses (``3``, ``1e-3``, ``[64, 64]``, ``true``, ``null``, ``"x"``),
    else the text itself (``CartPole-v1``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(config: C, overrides: Sequence[str]) -> C:
    """``config`` with each ``key=value`` (``section.key=value`` for nested configs, ``section.key=value`` into a
    free-form mapping field such as ``hyperparams``) applied in order; errors name the key and what is allowed."""
    data = config.to_dict()
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        parts, node, cls = key.split("."), data, type(config)
        for depth, part in enumerate(parts[:-1]):
            types_ = cls.field_types() if cls is not None else None
            if types_ is not None and part not in types_:
                raise ConfigError(f"unknown key {'.'.join(parts[:depth + 1])!r}; allowed: {', '.join(types_)}")
            tp = types_[part] if types_ is not None else None
            cls = tp if isinstance(tp, type) and issubclass(tp, Config) else None
            if not isinstance(node.get(part), dict):
                if cls is None and types_ is not None and get_origin(tp) not in (dict, Mapping) and tp is not dict:
                    raise ConfigError(f"{'.'.join(parts[:depth + 1])} is not a section; set it as {part}=VALUE")
                node[part] = {}
            node = node[part]
        if cls is not None and parts[-1] not in cls.field_types():
            where = ".".join(parts[:-1])
            raise ConfigError(f"unknown key {key!r}; allowed{' in ' + where if where else ''}: "
                              f"{', '.join(cls.field_types())}")
        node[parts[-1]] = parse_value(text)
    return type(config).from_dict(data)
