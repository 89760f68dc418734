"""Parts shared by every world model and learner: networks, distributions, replay, checkpoints."""
