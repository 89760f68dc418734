"""Benchmarks of the ca11 learners against model-free baselines (python -m benchmarks.run) and of env speed."""
