"""ONNX export of a learner's deterministic acting step, with a JSON sidecar, and :class:`OnnxPolicy` to run it.

The graph is one call of ``predict(..., deterministic=True)`` without the NumPy around it: the carried state
``(deter, stoch, prev_action)`` is reset where ``is_first`` is 1, the observation is filtered into the RSSM latent
at the posterior's mode, and the actor's mode is the learner action (``tanh(mean)`` for a ``Box``, one one-hot
block per part for ``Discrete``/``MultiDiscrete``)::

    inputs   obs (or obs.<key> per key of a Dict space, sorted), deter (n, H), stoch (n, S), prev_action (n, A),
             is_first (n,)
    outputs  action (n, A) (learner action), next_deter (n, H), next_stoch (n, S)

Every axis 0 is the dynamic batch. The sidecar ``<path>.json`` holds the spaces, the action scaling (learner
action -> env action), the names and shapes, the versions and the ONNX file's sha256; :class:`OnnxPolicy` checks
it (and a checksum of the sidecar itself) before it builds a session, and maps actions to the env with the same
:class:`~ca11_agents.common.spaces.ActionAdapter` as ``predict``. Only learners that act with a network export
(``DreamerAgent``); the planners search in Python at every step.

Needs the ``deploy`` extra (``pip install ".[deploy]"``: onnx, onnxruntime), imported lazily.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from ca11_agents.common.checkpoint import read_bounded
from ca11_agents.common.spaces import ActionAdapter, batch_observation, space_from_json, space_to_json
from ca11_agents.world_models.rssm import RSSMState

FORMAT, FORMAT_VERSION = "ca11-onnx-policy", 1
#: The opset written (TorchScript-based exporter; torch 2.13's default dynamo exporter needs onnxscript).
OPSET = 17
#: Largest sidecar read (the spaces' bounds are its only sizeable part) and largest ONNX file accepted.
MAX_SIDECAR_BYTES, MAX_ONNX_BYTES = 16 << 20, 2 << 30
_STATE = ("deter", "stoch", "prev_action")


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(f"{module} is needed for ONNX export and inference: pip install \".[deploy]\"") from error


def _obs_inputs(space: spaces.Space) -> list[tuple[str, str | None, spaces.Box]]:
    """``(input name, Dict key or None, Box)`` per observation input, Dict keys sorted (the encoder's order)."""
    if isinstance(space, spaces.Dict):
        return [(f"obs.{k}", k, space[k]) for k in sorted(space.spaces)]
    return [("obs", None, space)]


def _obs_dtype(space: spaces.Box) -> np.dtype:
    """The dtype ``predict`` hands the encoder (``obs_as_tensor``): floats as float32, integers (frames) as they are."""
    return np.dtype(np.float32) if np.issubdtype(space.dtype, np.floating) else np.dtype(space.dtype)


def _sidecar_checksum(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "sidecar_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class DeterministicActingStep(nn.Module):
    """The deterministic acting step of a policy with an actor on an RSSM latent (:class:`DreamerPolicy`) as a
    module of tensors only: ``forward(*obs, deter, stoch, prev_action, is_first) -> (action, deter, stoch)``, one
    observation tensor per input of :func:`_obs_inputs`. It calls the policy's own ``act`` with
    ``deterministic=True``, so it is the path ``predict`` takes."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        if not (hasattr(policy, "actor") and hasattr(policy, "rssm") and hasattr(policy, "act")):
            raise NotImplementedError(
                f"{type(policy).__name__} does not act with a network on an RSSM latent: only DreamerAgent's policy "
                "exports to ONNX"
            )
        self.policy = policy
        self.keys = [key for _, key, _ in _obs_inputs(policy.observation_space)]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        *obs, deter, stoch, prev_action, is_first = inputs
        observation: Any = dict(zip(self.keys, obs)) if self.keys != [None] else obs[0]
        action, state = self.policy.act(observation, RSSMState(deter, stoch, stoch), prev_action, is_first, True)
        return action, state.deter, state.stoch


def export_onnx(agent: Any, path: str | os.PathLike) -> Path:
    """Write ``agent``'s deterministic acting step to ``path`` (ONNX, opset :data:`OPSET`) and its sidecar to
    ``<path>.json``; returns the sidecar's path.

    Raises:
        NotImplementedError: the agent does not act with a network (a planner).
        ImportError: the ``deploy`` extra is missing.
    """
    _require("onnx")
    policy = copy.deepcopy(agent.policy).cpu().eval()
    step = DeterministicActingStep(policy)
    rssm, actions = policy.rssm, policy.actions
    obs_inputs = _obs_inputs(policy.observation_space)
    n = 2  # an example batch of 2: no axis of size 1 for the tracer to specialise
    example = [torch.zeros((n, *box.shape), dtype=getattr(torch, _obs_dtype(box).name)) for _, _, box in obs_inputs]
    sizes = {"deter": rssm.deter_dim, "stoch": rssm.state_dim, "prev_action": actions.dim}
    example += [torch.zeros(n, sizes[name]) for name in _STATE] + [torch.ones(n)]
    inputs = [
        *({"name": name, "shape": ["batch", *box.shape], "dtype": _obs_dtype(box).name} for name, _, box in obs_inputs),
        *({"name": name, "shape": ["batch", sizes[name]], "dtype": "float32"} for name in _STATE),
        {"name": "is_first", "shape": ["batch"], "dtype": "float32"},
    ]
    outputs = [
        {"name": "action", "shape": ["batch", actions.dim], "dtype": "float32"},
        {"name": "next_deter", "shape": ["batch", rssm.deter_dim], "dtype": "float32"},
        {"name": "next_stoch", "shape": ["batch", rssm.state_dim], "dtype": "float32"},
    ]
    names = [x["name"] for x in inputs + outputs]
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based ONNX export"
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape tests on static sizes: constants, rightly
        torch.onnx.export(
            step, tuple(example), str(path), dynamo=False, opset_version=OPSET,
            input_names=[x["name"] for x in inputs], output_names=[x["name"] for x in outputs],
            dynamic_axes={name: {0: "batch"} for name in names},
        )  # fmt: skip
    space = policy.action_space
    if actions.discrete:
        scaling = {"kind": "one_hot_blocks", "nvec": list(actions.nvec), "start": np.ravel(space.start).tolist()}
    else:
        scaling = {"kind": "box", "low": space.low.tolist(), "high": space.high.tolist(),
                   "formula": "low + (action + 1) / 2 * (high - low)"}  # fmt: skip
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ca11_version": importlib.metadata.version("ca11"),
        "torch_version": torch.__version__,
        "exporter": "torch.onnx.export(dynamo=False)",
        "opset": OPSET,
        "learner": type(agent).__name__,
        "policy": type(agent.policy).__name__,
        "observation_space": space_to_json(policy.observation_space),
        "action_space": space_to_json(space),
        "action_scaling": scaling,
        "inputs": inputs,
        "outputs": outputs,
        "onnx_file": path.name,
        "onnx_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    meta["sidecar_sha256"] = _sidecar_checksum(meta)
    sidecar = Path(f"{path}.json")
    sidecar.write_text(json.dumps(meta, indent=1))
    return sidecar


class OnnxPolicy:
    """An exported policy on onnxruntime (CPU) with ``predict`` as the agent's: same arguments, recurrent
    convention and env actions, so it drives an env in the agent's place.

    Args:
        path: the ONNX file (its sidecar is ``<path>.json``).
        threads: onnxruntime's intra-op threads (the networks are small: one is fastest on a shared CPU).

    Raises:
        ValueError: the sidecar is missing, oversized, malformed or edited (its checksum), or the ONNX file does not
            match the sidecar's sha256 or its inputs and outputs; the message names the file.
        ImportError: the ``deploy`` extra is missing.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        ort = _require("onnxruntime")
        self.path, self.sidecar = Path(path), Path(f"{path}.json")
        try:
            meta = json.loads(read_bounded(self.sidecar, MAX_SIDECAR_BYTES, "ONNX sidecar"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} sidecar")
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {meta.get('format_version')!r}, this ca11 reads {FORMAT_VERSION}")
            if meta.get("sidecar_sha256") != _sidecar_checksum(meta):
                raise ValueError("its checksum does not match its content (edited or corrupted)")
            self.observation_space = space_from_json(meta["observation_space"])
            self.action_space = space_from_json(meta["action_space"])
            self.actions = ActionAdapter(self.action_space, "OnnxPolicy")
            inputs, outputs = meta["inputs"], meta["outputs"]
            self.state_sizes = {x["name"]: int(x["shape"][1]) for x in inputs if x["name"] in _STATE}
            names = [name for name, _, _ in _obs_inputs(self.observation_space)]
            if [x["name"] for x in inputs] != [*names, *_STATE, "is_first"] or len(outputs) != 3:
                raise ValueError("its inputs and outputs are not those of an exported acting step")
            if self.state_sizes["prev_action"] != self.actions.dim:
                raise ValueError(f"prev_action has {self.state_sizes['prev_action']} values, the actions need "
                                 f"{self.actions.dim}")  # fmt: skip
            expected = str(meta["onnx_sha256"])
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise ValueError(f"OnnxPolicy: refusing the sidecar {self.sidecar}: {error}") from error
        model = read_bounded(self.path, MAX_ONNX_BYTES, "ONNX file")
        if hashlib.sha256(model).hexdigest() != expected:
            raise ValueError(f"OnnxPolicy: refusing {self.path}: its sha256 differs from the sidecar's (tampered?)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        graph_in = [(x.name, len(x.shape)) for x in self.session.get_inputs()]
        if graph_in != [(x["name"], len(x["shape"])) for x in inputs]:
            raise ValueError(f"OnnxPolicy: refusing {self.path}: its inputs {graph_in} differ from the sidecar's")
        self.meta = meta
        self._inputs = [(name, key, _obs_dtype(box)) for name, key, box in _obs_inputs(self.observation_space)]

    def initial_state(self, n: int) -> tuple[np.ndarray, ...]:
        """``(deter, stoch, prev_action)`` before any observation, for ``n`` envs."""
        return tuple(np.zeros((n, self.state_sizes[name]), np.float32) for name in _STATE)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Env actions for one observation or a batch, and the state to pass next time (SB3's recurrent
        convention, as :meth:`RecurrentLatentPolicy.predict`). The exported graph is the mode: ``deterministic``
        must be true."""
        if not deterministic:
            raise ValueError("OnnxPolicy.predict: the exported graph acts on the mode; use deterministic=True")
        batch, n, single = batch_observation(observation, self.observation_space, "OnnxPolicy.predict")
        if state is None:
            state, is_first = self.initial_state(n), np.ones(n, np.float32)
        else:
            if not isinstance(state, tuple) or len(state) != 3:
                raise ValueError(f"OnnxPolicy.predict: state must be the tuple a previous call returned, got "
                                 f"{type(state).__name__}")  # fmt: skip
            if any(np.shape(x) != (n, self.state_sizes[name]) for x, name in zip(state, _STATE)):
                raise ValueError(f"OnnxPolicy.predict: state shapes {[np.shape(x) for x in state]} do not fit {n} "
                                 "observations")  # fmt: skip
            starts = np.zeros(n) if episode_start is None else np.asarray(episode_start)
            is_first = starts.reshape(n).astype(np.float32)
        feed = {name: np.asarray(batch[key] if key is not None else batch, dtype) for name, key, dtype in self._inputs}
        feed.update({name: np.asarray(x, np.float32) for name, x in zip(_STATE, state)}, is_first=is_first)
        action, deter, stoch = self.session.run(None, feed)
        env_action = self.actions.to_env(action)
        return (env_action[0] if single else env_action), (deter, stoch, action)
