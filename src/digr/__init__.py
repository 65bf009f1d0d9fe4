"""digr: reinforcement-learning policies that explain themselves in real time."""

__version__ = "0.1.0"
