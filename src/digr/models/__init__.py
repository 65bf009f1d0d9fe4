"""Policy networks and the safe checkpoint format."""

from digr.models.checkpoint import load_policy, save_policy
from digr.models.cnn import CNNTrunk, PolicyConfig, PolicyNet, to_tensor
from digr.models.fls import FLSAttention, conv_geometry, fls_config

__all__ = ["CNNTrunk", "FLSAttention", "PolicyConfig", "PolicyNet", "conv_geometry", "fls_config",
           "load_policy", "save_policy", "to_tensor"]
