"""Training: config, setup, checkpoints, logs (the recipe itself is recipes/sft.py)."""
