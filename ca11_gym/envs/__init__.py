"""The environments, one per module, each with its numpy-batched vector twin."""
