"""Policy networks and the safe checkpoint format."""

from digr.models.checkpoint import load_policy, save_policy
from digr.models.cnn import CNNTrunk, PolicyConfig, PolicyNet, to_tensor

__all__ = ["CNNTrunk", "PolicyConfig", "PolicyNet", "load_policy", "save_policy", "to_tensor"]
