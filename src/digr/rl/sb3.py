"""Bridge between Stable-Baselines3's PPO policies and digr's :class:`PolicyNet`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from digr.errors import DigrError
from digr.models.cnn import CNNTrunk, PolicyConfig, PolicyNet


class SB3Trunk(BaseFeaturesExtractor):
    """digr's :class:`CNNTrunk` as an SB3 features extractor (SB3 divides images by 255 first)."""

    def __init__(self, observation_space: gym.spaces.Box, policy_config: dict[str, Any]) -> None:
        cfg = PolicyConfig.from_dict(policy_config)
        super().__init__(observation_space, features_dim=cfg.hidden)
        self.trunk = CNNTrunk(cfg)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.trunk(observations)


def policy_kwargs(config: PolicyConfig) -> dict[str, Any]:
    """``policy_kwargs`` that make SB3's ``CnnPolicy`` exactly a :class:`PolicyNet`."""
    return dict(
        features_extractor_class=SB3Trunk,
        features_extractor_kwargs=dict(policy_config=config.to_dict()),
        net_arch=dict(pi=[], vf=[]),  # the heads are the second linear layer, as in the paper
        share_features_extractor=True,
    )


def _trunk_layers(extractor: nn.Module) -> tuple[list[nn.Conv2d], list[nn.Linear]]:
    convs = [m for m in extractor.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in extractor.modules() if isinstance(m, nn.Linear)]
    return convs, linears


def policy_from_sb3(sb3_policy: nn.Module) -> PolicyNet:
    """Copy an SB3 ``ActorCriticPolicy`` whose extractor is conv layers + one linear layer
    (digr's :class:`SB3Trunk` or SB3's ``NatureCNN``, or any such extractor) and empty
    ``net_arch`` into a PolicyNet."""
    if not hasattr(sb3_policy, "action_net") or not isinstance(sb3_policy.action_net, nn.Linear):
        raise DigrError("only PPO/A2C policies with a discrete action space can be imported")
    if any(isinstance(m, nn.Linear) for m in sb3_policy.mlp_extractor.modules()):
        raise DigrError("the SB3 policy has hidden layers in net_arch; digr's network has the "
                        "action and value heads directly on the features (net_arch=[])")
    extractor = sb3_policy.features_extractor
    if isinstance(extractor, SB3Trunk):  # our own extractor knows its exact architecture
        policy = PolicyNet(extractor.trunk.config)
        policy.trunk.load_state_dict(extractor.trunk.state_dict())
        policy.pi.load_state_dict(sb3_policy.action_net.state_dict())
        policy.v.load_state_dict(sb3_policy.value_net.state_dict())
        return policy.eval()
    return _from_extractor(extractor, sb3_policy.observation_space, sb3_policy.action_net, sb3_policy.value_net)


def policy_from_sb3_q(sb3_policy: nn.Module) -> PolicyNet:
    """Copy an SB3 DQN (or sb3-contrib QR-DQN) ``CnnPolicy`` into a PolicyNet whose logits are the
    Q-values (for QR-DQN, the mean over quantiles), so its policy is the *softmax of the Q-values*
    (greedy actions are the DQN's own; the value head is zero: a Q-network has none)."""
    q = getattr(sb3_policy, "q_net", None) or getattr(sb3_policy, "quantile_net", None)
    if q is None or not hasattr(q, "features_extractor"):
        raise DigrError("not a DQN / QR-DQN policy (no q_net or quantile_net)")
    head = [m for m in (getattr(q, "q_net", None) or getattr(q, "quantile_net")).modules() if isinstance(m, nn.Linear)]
    if len(head) != 1:
        raise DigrError("the Q-network has hidden layers in net_arch; digr's network has the action head "
                        "directly on the features (net_arch=[], the CnnPolicy default)")
    n_actions = int(sb3_policy.action_space.n)
    linear = head[0]
    if linear.out_features != n_actions:  # QR-DQN: (n_actions * n_quantiles) outputs -> mean per action
        k = linear.out_features // n_actions
        mean = nn.Linear(linear.in_features, n_actions)
        with torch.no_grad():
            mean.weight.copy_(linear.weight.view(n_actions, k, -1).mean(1))
            mean.bias.copy_(linear.bias.view(n_actions, k).mean(1))
        linear = mean
    value = nn.Linear(linear.in_features, 1)
    with torch.no_grad():
        value.weight.zero_()
        value.bias.zero_()
    return _from_extractor(q.features_extractor, sb3_policy.observation_space, linear, value)


def _from_extractor(extractor: nn.Module, observation_space: gym.spaces.Space, action_net: nn.Linear,
                    value_net: nn.Linear) -> PolicyNet:
    convs, linears = _trunk_layers(extractor)
    if not convs or len(linears) != 1:
        raise DigrError("the SB3 features extractor must be conv layers followed by one linear "
                        f"layer (found {len(convs)} conv, {len(linears)} linear)")
    if any(c.kernel_size[0] != c.kernel_size[1] or c.stride[0] != c.stride[1] or c.padding[0] != c.padding[1]
           or c.dilation != (1, 1) or c.groups != 1 for c in convs):
        raise DigrError("the SB3 features extractor has non-square, dilated or grouped convolutions; digr's "
                        "network has square ones")
    obs_shape = tuple(int(x) for x in observation_space.shape)
    if len(obs_shape) != 3:
        raise DigrError(f"expected image observations (C, H, W), got shape {obs_shape}")
    if obs_shape[0] > obs_shape[-1]:  # channel-last space: SB3 transposes it before the network
        obs_shape = (obs_shape[2], obs_shape[0], obs_shape[1])
    cfg = PolicyConfig(
        obs_shape=obs_shape,
        n_actions=action_net.out_features,
        convs=tuple((c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs),
        hidden=linears[0].out_features,
    )
    policy = PolicyNet(cfg.check_sizes())
    ours = [m for m in policy.trunk.convs if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for dst, src in zip(ours + [policy.trunk.linear, policy.pi, policy.v],
                            convs + [linears[0], action_net, value_net]):
            if dst.weight.shape != src.weight.shape:
                raise DigrError(f"layer shape mismatch while importing: {tuple(src.weight.shape)} "
                                f"vs {tuple(dst.weight.shape)} (the extractor must be conv layers with ReLU, "
                                "a flatten and one linear layer, in that order)")
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    return policy.eval()
