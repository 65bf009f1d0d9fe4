"""Taking a policy out of digr: a module that returns its logits and its saliency map in one call,
and writers for ONNX, TorchScript and Stable-Baselines3."""

from digr.deploy.explainer import ExplainingPolicy
from digr.deploy.export import EXPORT_FORMATS, export_policy

__all__ = ["ExplainingPolicy", "export_policy", "EXPORT_FORMATS"]
