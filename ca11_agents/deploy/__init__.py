"""Deploying a trained learner outside of training: ONNX export of the acting path and an onnxruntime policy, and
a policy server (``server``: the FastAPI app; ``serve``: ``python -m ca11_agents.deploy.serve CHECKPOINT``).

Needs the ``deploy`` extra (``pip install ".[deploy]"``: onnx, onnxruntime, fastapi, uvicorn, httpx); the ONNX
modules import them lazily and the server modules are not imported here, so importing this package needs only the
core.
"""

from ca11_agents.deploy.onnx_export import DeterministicActingStep, OnnxPolicy, export_onnx

__all__ = ["DeterministicActingStep", "OnnxPolicy", "export_onnx"]
