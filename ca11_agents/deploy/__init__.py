"""Deploying a trained learner outside of training: ONNX export of the acting path and an onnxruntime policy.

Needs the ``deploy`` extra (``pip install ".[deploy]"``: onnx, onnxruntime); the modules import them lazily, so
importing this package needs only the core.
"""

from ca11_agents.deploy.onnx_export import DeterministicActingStep, OnnxPolicy, export_onnx

__all__ = ["DeterministicActingStep", "OnnxPolicy", "export_onnx"]
