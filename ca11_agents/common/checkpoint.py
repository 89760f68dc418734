"""Checkpoints that never unpickle: a zip archive holding ``config.json`` and ``tensors.safetensors``.

SB3's own ``load`` unpickles objects stored in its archive, so a tampered file can run code. Here every value is
either JSON or a tensor read by safetensors, so loading a file can at worst fail, with a :class:`ValueError` that
names what is wrong. Writes go to a temporary file that is renamed over the target only once complete, so an
interrupted save never destroys the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import secrets
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

FORMAT = "ca11-checkpoint"
FORMAT_VERSION = 1


def atomic_write(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    The file gets the permissions ``open()`` would give it (``0o666`` less the process's umask, applied by the
    kernel: the umask is never changed, so other threads are not affected), or, when ``path`` exists, that file's
    own mode (a ``chmod 600`` checkpoint stays private). The temporary file is removed if anything fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.chmod(tmp, mode)  # by path: os.fchmod is missing on Windows before Python 3.13
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


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
    payload = save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    header = {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind, "config": config,
              "ca11_version": package_version(), "tensors_sha256": hashlib.sha256(payload).hexdigest()}  # fmt: skip

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("config.json", json.dumps(header, indent=2, sort_keys=True))
            archive.writestr("tensors.safetensors", payload)

    return atomic_write(path, write)


#: What a checkpoint may make :func:`load_checkpoint` read, whatever its headers claim: ``config.json`` at most
#: this many bytes, the safetensors header at most ``MAX_HEADER_BYTES``, and a member larger than
#: ``INFLATION_FREE_BYTES`` at most ``MAX_INFLATION`` times its compressed size (trained float32 weights barely
#: compress; a zip bomb inflates a thousandfold).
MAX_CONFIG_BYTES = 1 << 20
MAX_HEADER_BYTES = 1 << 24
INFLATION_FREE_BYTES = 64 << 20
MAX_INFLATION = 20

#: safetensors dtype names -> torch dtypes (those a checkpoint may hold).
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip

#: ``{name: (dtype, shape)}``: what a checkpoint's tensors are, read from the safetensors header alone.
TensorSpecs = dict[str, tuple[torch.dtype, tuple[int, ...]]]
#: At most this many tensors, of at most ``MAX_DIMS`` dimensions each, in a checkpoint.
MAX_TENSORS = 1 << 16
MAX_DIMS = 8


class CheckpointMismatch(ValueError):
    """A valid checkpoint that does not fit what the caller asked for (another env, bad overrides): raised by a
    ``check`` of :func:`load_checkpoint` and passed on as it is, not reported as a corrupt file."""


def open_archive(path: Path, max_members: int) -> zipfile.ZipFile:
    """Open a zip archive from a stranger: its member count is read from the end-of-central-directory record
    before ``zipfile`` parses (and allocates) the directory, and duplicate names are refused."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - (1 << 16) - 22))
        tail = f.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        raise ValueError("not a zip archive (no end-of-central-directory record)")
    count = int.from_bytes(tail[end + 10 : end + 12], "little")
    if count > max_members:
        raise ValueError(f"{count} archive members (at most {max_members} expected)")
    archive = zipfile.ZipFile(path)
    names = archive.namelist()
    if len(names) > max_members or len(set(names)) != len(names):
        archive.close()
        raise ValueError(f"unexpected archive members {_shorten(sorted(names))}")
    return archive


def _shorten(values: list[Any], most: int = 5) -> str:
    """``values`` for an error message: the first ``most`` and a count, however many a hostile file holds."""
    shown = ", ".join(repr(v)[:80] for v in values[:most])
    return f"[{shown}{f', ... ({len(values)} in all)' if len(values) > most else ''}]"


def read_bounded(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The bytes of a file from a stranger (a sidecar, a result marker), at most ``limit`` of them: a
    ``ValueError`` naming the file if it is larger or cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as error:
        raise ValueError(f"cannot read the {what} {path}: {error}") from error
    if len(data) > limit:
        raise ValueError(f"{path}: larger than {limit} bytes, not a {what}")
    return data


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, refusing members whose declared or actual size exceeds ``limit``."""
    if info.file_size > limit:
        raise ValueError(f"member {info.filename} declares {info.file_size} bytes (limit {limit})")
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"member {info.filename} inflates past {limit} bytes")
    return data


def _tensor_specs(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> TensorSpecs:
    """The safetensors member's header, checked for consistency with the member's declared size (every byte of
    the payload belongs to exactly one tensor of the declared dtype and shape), before any payload is read."""
    with archive.open(info) as member:
        raw = member.read(8)
        if len(raw) != 8:
            raise ValueError("truncated safetensors header")
        size = int.from_bytes(raw, "little")
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"safetensors header of {size} bytes (limit {MAX_HEADER_BYTES})")
        header = json.loads(member.read(size))
    if not isinstance(header, dict):
        raise ValueError("the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise ValueError(f"{len(header)} tensors (at most {MAX_TENSORS})")
    specs, spans = {}, []
    for name, entry in header.items():
        label = repr(name)[:80]
        try:
            dtype, shape, (begin, end) = _DTYPES[entry["dtype"]], tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"tensor {label}: malformed header entry ({repr(exc)[:80]})") from None
        if len(shape) > MAX_DIMS:
            raise ValueError(f"tensor {label}: {len(shape)} dimensions (at most {MAX_DIMS})")
        if not all(isinstance(d, int) and 0 <= d <= info.file_size for d in (*shape, begin, end)):
            raise ValueError(f"tensor {label}: shape {_shorten(list(shape))} and offsets out of range")
        if end - begin != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"tensor {label}: {end - begin} bytes for {dtype}{list(shape)}")
        specs[name] = (dtype, shape)
        spans.append((begin, end))
    spans.sort()
    if any(a[1] != b[0] for a, b in zip(spans, spans[1:])) or (spans and spans[0][0] != 0):
        raise ValueError("the tensors' data overlap or leave gaps")
    payload = spans[-1][1] if spans else 0
    if info.file_size != 8 + size + payload:
        raise ValueError(f"member of {info.file_size} bytes, its header describes {8 + size + payload}")
    return specs


def load_checkpoint(
    path: str | os.PathLike,
    kind: str,
    check: Callable[[dict[str, Any], TensorSpecs], None] | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint written by :func:`save_checkpoint` for ``kind``: ``(config, tensors)`` (tensors on CPU).

    The file is treated as hostile until validated: members and their sizes are checked before they are read
    (no member inflates past its declared size, :data:`MAX_CONFIG_BYTES`, or :data:`MAX_INFLATION` times its
    stored size), and ``check(config, specs)``, given the config and every tensor's dtype and shape from the
    safetensors header, can refuse the file (with a ``ValueError``) before any tensor data is read.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a ca11 checkpoint (corrupted, truncated, tampered with, oversized), was
            written by another class, or ``check`` refused it; the message names the file.
    """
    path = Path(path)
    if not path.is_file() and path.suffix == "" and path.with_suffix(".zip").is_file():
        path = path.with_suffix(".zip")  # saved under a name without an extension (see save_checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with open_archive(path, max_members=2) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if sorted(names) != ["config.json", "tensors.safetensors"]:
                raise ValueError(f"unexpected archive members {_shorten(sorted(names))}")
            members = {info.filename: info for info in infos}
            header = json.loads(_read_bounded(archive, members["config.json"], MAX_CONFIG_BYTES))
            _check_header(header, kind)
            info = members["tensors.safetensors"]
            if info.file_size > max(INFLATION_FREE_BYTES, MAX_INFLATION * info.compress_size):
                raise ValueError(
                    f"tensors.safetensors would inflate from {info.compress_size} to {info.file_size} bytes"
                )
            specs = _tensor_specs(archive, info)
            if check is not None:
                check(header["config"], specs)
            payload = _read_bounded(archive, info, info.file_size)
            if "tensors_sha256" in header and hashlib.sha256(payload).hexdigest() != header["tensors_sha256"]:
                raise ValueError("its tensors do not match their recorded sha256 (corrupted or modified)")
            tensors = load_tensors(payload)
    except CheckpointMismatch:
        raise
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid {kind} checkpoint: {exc}") from exc
    except Exception as exc:  # zipfile.BadZipFile, zlib errors, safetensors errors, ...
        raise ValueError(f"{path} is not a valid {kind} checkpoint (corrupted or truncated?): {exc}") from exc
    return header["config"], tensors


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in blocks (a checkpoint's identity in run.json, ``ca11 eval``, the
    server's ``/model``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of every array in an ``.npz`` file, read from the headers alone; an array whose
    stored size disagrees with its header (a compressed member that would inflate, a truncated one) is refused."""
    out = {}
    with open_archive(path, max_members=64) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"unexpected member {info.filename!r}")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
                header_end = member.tell()
            if dtype.hasobject:
                raise ValueError(f"{info.filename} holds Python objects")
            if info.file_size != header_end + math.prod(shape) * dtype.itemsize:
                raise ValueError(f"{info.filename}: {info.file_size} bytes do not match its header {dtype}{shape}")
            out[info.filename[: -len(".npy")]] = (tuple(shape), dtype)
    return out


def read_npz(path: str | os.PathLike, names: tuple[str, ...], max_elements: int) -> dict[str, Any]:
    """The arrays ``names`` of a small ``.npz`` file (a run's evaluation log, normalisation statistics), checked
    from the headers before anything is read: numeric dtypes, at most ``max_elements`` elements in all, no member
    that inflates past its header (:func:`npz_headers`); never unpickled. Raises ``ValueError`` naming the file."""
    import numpy as np

    path = Path(path)
    try:
        headers = npz_headers(path)
        missing = [name for name in names if name not in headers]
        if missing:
            raise ValueError(f"missing {missing}")
        if any(headers[name][1].kind not in "biuf" for name in names):
            raise ValueError("non-numeric arrays")
        if sum(math.prod(headers[name][0]) for name in names) > max_elements:
            raise ValueError(f"more than {max_elements} elements")
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in names}
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a valid file of {', '.join(names)}: {exc}") from exc


def package_version() -> str:
    """The installed ca11 distribution's version (``"unknown"`` for a checkout that is not installed)."""
    try:
        return importlib.metadata.version("ca11")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - an uninstalled checkout
        return "unknown"


def checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """What a checkpoint says about itself, from its header alone (bounded read, no tensor read): the class that
    wrote it (``kind``), the ca11 version it was saved with and the sha256 of its tensors (``None`` for files saved
    before they were recorded). Raises ``ValueError`` naming the file if it is no ca11 checkpoint."""
    path = Path(path)
    try:
        with open_archive(path, max_members=2) as archive:
            member = {info.filename: info for info in archive.infolist()}.get("config.json")
            if member is None:
                raise ValueError("no config.json member")
            header = json.loads(_read_bounded(archive, member, MAX_CONFIG_BYTES))
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("not a ca11 checkpoint (missing format header)")
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a valid ca11 checkpoint: {exc}") from exc
    return {"kind": header.get("kind"), "ca11_version": header.get("ca11_version"),
            "tensors_sha256": header.get("tensors_sha256")}  # fmt: skip


def _check_header(header: Any, kind: str) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError("not a ca11 checkpoint (missing format header)")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint format version {header.get('version')} is not supported")
    if header.get("kind") != kind:
        raise ValueError(f"it holds a {header.get('kind')} checkpoint, not a {kind}")
    if not isinstance(header.get("config"), dict):
        raise ValueError("its config is not a JSON object")


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


def compare_tensor_specs(
    specs: TensorSpecs, expected: dict[str, tuple[torch.dtype, tuple[int, ...]]], params: dict[str, list[tuple]]
) -> None:
    """Refuse a checkpoint's tensors (``specs``) unless they are exactly the ``policy/`` tensors ``expected``
    (name -> dtype and shape) and, for each optimizer in ``params`` (name -> its parameters' shapes), states of
    those parameters (``optim/<name>/<index>/<key>``: the parameter's shape, ``()`` for ``step``)."""
    missing = sorted(set(expected) - set(specs))
    if missing:
        raise ValueError(f"tensors missing: {_shorten(missing)}")
    for name, (dtype, shape) in specs.items():
        label = repr(name)[:80]
        if name in expected:
            if (dtype, shape) != expected[name]:
                want = expected[name]
                raise ValueError(f"tensor {label} is {dtype}{list(shape)}, expected {want[0]}{list(want[1])}")
            continue
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "optim" or parts[1] not in params or not parts[2].isdigit():
            raise ValueError(f"unexpected tensor {label}")
        index = int(parts[2])
        if index >= len(params[parts[1]]):
            raise ValueError(f"tensor {label}: optimizer {parts[1]!r} has {len(params[parts[1]])} parameters")
        want = () if parts[3] == "step" else params[parts[1]][index]
        if shape != want:
            raise ValueError(f"tensor {label} has shape {list(shape)}, expected {list(want)}")


def same_kind(value: Any, default: Any) -> bool:
    """Whether an optimizer setting read from a file has the type of the optimizer's own default (a number for a
    number, a pair of numbers for Adam's betas, a flag for a flag)."""
    if isinstance(default, bool) or default is None:
        return isinstance(value, bool) or value is None
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list)) and len(value) == len(default) and all(
            same_kind(v, d) for v, d in zip(value, default)
        )
    return type(value) is type(default)
