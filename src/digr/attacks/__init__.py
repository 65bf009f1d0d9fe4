"""Adversarial attacks on policy observations (paper section 4.6): one file each, one verb.

``attack = get_attack(name, policy, eps=8 / 255, **settings)`` then
``obs_adv = attack.perturb(obs, *, target=None)`` with ``obs: (B, C, H, W) float in [0, 1]``;
``obs_adv`` stays in the L-inf ``eps``-ball around ``obs`` and in ``[0, 1]``. ``eps`` is in the
``[0, 1]`` pixel scale (``k / 255`` = ``k`` grey levels of a uint8 image).

A new attack is one new file plus one line in :data:`ATTACKS`.
"""

from __future__ import annotations

import inspect

from torch import nn

from digr.attacks.base import Attack, check_eps, project
from digr.attacks.fgsm import FGSM
from digr.attacks.mad import MAD
from digr.attacks.mi_fgsm import MIFGSM
from digr.attacks.pgd import PGD
from digr.errors import DigrError

ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "mi-fgsm": MIFGSM,
    "mad": MAD,
}
"""Registered attacks by name, in the paper's Figure 8 order."""

ATTACK_NAMES: tuple[str, ...] = tuple(ATTACKS)


def resolve_attack_name(name: str) -> str:
    """The registry name for ``name`` (case and ``_``/``-`` insensitive, ``mifgsm`` too)."""
    key = str(name).strip().lower().replace("_", "-")
    key = {"mifgsm": "mi-fgsm"}.get(key, key)
    if key not in ATTACKS:
        raise DigrError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    return key


def get_attack(name: str, policy: nn.Module, *, eps: float, **settings) -> Attack:
    """Build attack ``name`` on ``policy`` with L-inf radius ``eps`` (``[0, 1]`` pixel scale).

    ``settings`` are the attack's keyword arguments (``steps``, ``alpha``, ``seed``,
    ``generator``, ...); one the attack does not take is a :class:`DigrError`.
    """
    cls = ATTACKS[resolve_attack_name(name)]
    accepted = {n for n, p in inspect.signature(cls.__init__).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise DigrError(f"attack {cls.name!r} takes no setting {', '.join(map(repr, unknown))}; "
                        f"it takes {', '.join(sorted(accepted - {'eps'}))}")
    return cls(policy, eps=eps, **settings)


__all__ = ["ATTACKS", "ATTACK_NAMES", "Attack", "FGSM", "MAD", "MIFGSM", "PGD", "check_eps",
           "get_attack", "project", "resolve_attack_name"]
