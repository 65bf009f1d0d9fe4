"""Teacher training: a thin layer over Stable-Baselines3 PPO."""
