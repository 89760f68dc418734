"""Checkpoints that never unpickle: a zip archive holding ``config.json`` and ``tensors.safetensors``.

SB3's own ``load`` unpickles objects stored in its archive, so a tampered file can run code. Here every value is
either JSON or a tensor read by safetensors, so loading a file can at worst fail, with a :class:`ValueError` that
names what is wrong. Writes go to a temporary file that is renamed over the target only once complete, so an
interrupted save never destroys the previous checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

FORMAT = "ca11-checkpoint"
FORMAT_VERSION = 1


def atomic_write(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(
    path: str | os.PathLike, kind: str, config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Path:
    """Write ``config`` (JSON-serialisable) and ``tensors`` to ``path`` atomically.

    Args:
        path: the file to write; as in SB3, ``.zip`` is appended to a name without an extension (SB3's
            ``EvalCallback`` saves ``best_model``, and users load ``best_model.zip``).
        kind: the class that wrote it (checked by :func:`load_checkpoint`).
        config: everything needed to rebuild the object, as JSON.
        tensors: the weights (and optimizer state), flattened to names.
    """
    path = Path(path)
    if path.suffix == "":
        path = path.with_suffix(".zip")
    header = {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind, "config": config}
    payload = save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("config.json", json.dumps(header, indent=2, sort_keys=True))
            archive.writestr("tensors.safetensors", payload)

    return atomic_write(path, write)


def load_checkpoint(path: str | os.PathLike, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint written by :func:`save_checkpoint` for ``kind``: ``(config, tensors)`` (tensors on CPU).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a ca11 checkpoint (corrupted, truncated, tampered with) or was written by another
            class.
    """
    path = Path(path)
    if not path.is_file() and path.suffix == "" and path.with_suffix(".zip").is_file():
        path = path.with_suffix(".zip")  # saved under a name without an extension (see save_checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if names != {"config.json", "tensors.safetensors"}:
                raise ValueError(f"unexpected archive members {sorted(names)}")
            header = json.loads(archive.read("config.json"))
            tensors = load_tensors(archive.read("tensors.safetensors"))
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid {kind} checkpoint: {exc}") from exc
    except Exception as exc:  # zipfile.BadZipFile, zlib errors, safetensors errors, ...
        raise ValueError(f"{path} is not a valid {kind} checkpoint (corrupted or truncated?): {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ca11 checkpoint (missing format header)")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {header.get('version')} is not supported")
    if header.get("kind") != kind:
        raise ValueError(f"{path} holds a {header.get('kind')} checkpoint, not a {kind}")
    return header["config"], tensors


def flatten_optimizer(prefix: str, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict`` into tensors (named ``prefix/<param>/<key>``) and JSON metadata."""
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{index}/{key}"] = value
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(prefix: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "/"):
            index, key = name[len(prefix) + 1 :].split("/", 1)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}
