"""One DIGR update: ``L = IGR + alpha * KL`` (eq. 5) on a student, its two gradients combined by PCGrad,
with the optional adversarial KL; and the student's initialisation and optimiser (Table 3)."""

from __future__ import annotations

import torch

from digr.distill.config import DistillConfig
from digr.distill.losses import distillation_loss, igr_loss
from digr.distill.pcgrad import assign_flat_grad, flat_grad, pcgrad, project_conflict
from digr.errors import DigrError
from digr.models.cnn import PolicyConfig, PolicyNet


def init_student(config: PolicyConfig, *, seed: int) -> PolicyNet:
    """A freshly initialised :class:`PolicyNet` with ``config``; same ``seed``, same weights.

    The global torch generator is forked, so seeding here does not change anyone else's draws.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PolicyNet(config)


def make_optimizer(params: list[torch.Tensor], config: DistillConfig) -> torch.optim.Optimizer:
    """The optimizer of Table 3 (Adam or RMSprop with the configured learning rate)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.learning_rate)
    return torch.optim.RMSprop(params, lr=config.learning_rate)


class Distiller:
    """One DIGR update on ``student``: ``L = IGR + alpha * KL`` (eq. 5) with PCGrad.

    Only the actor (trunk and policy head) is trained; the value head plays no part in either
    objective.
    """

    def __init__(self, student: PolicyNet, *, config: DistillConfig) -> None:
        self.student = student
        self.config = config
        self.params = [p for name, p in student.named_parameters() if not name.startswith("v.")]
        self.optimizer = make_optimizer(self.params, config)

    def update(self, obs: torch.Tensor, teacher_probs: torch.Tensor, *, igr_obs: torch.Tensor | None = None,
               igr_maps: torch.Tensor | None = None, generator: torch.Generator | None = None
               ) -> dict[str, float]:
        """One optimizer step; returns the step's metrics by their ``namespace/metric`` names.

        ``obs: (B, C, H, W) float32 in [0, 1]`` distillation states with ``teacher_probs: (B, A)``;
        ``igr_obs: (B', C, H, W)`` and ``igr_maps: (B', H, W)`` the IGR batch from dataset D
        (ignored when ``config.use_igr`` is False). ``generator`` draws the adversarial states'
        random starts (``config.adv_eps > 0``; default: the attack's own, seeded with 0).
        """
        cfg = self.config
        self.student.train()
        kl, kl_metrics = distillation_loss(self.student(obs), teacher_probs)
        metrics = kl_metrics.as_dict()
        # alpha weights the KL gradient before PCGrad, so the projection sees eq. 5's two terms.
        if cfg.adv_eps > 0:
            kl_adv, adv_metrics = self._adversarial_kl(obs, teacher_probs, generator)
            metrics.update(adv_metrics)
        if cfg.adv_eps > 0 and cfg.adv_project:
            # Two backward passes (the clean and attacked forwards share no graph) so that the
            # adversarial gradient can be projected off the clean one before they are added.
            g_clean = flat_grad(kl, self.params)
            g_adv, adv_conflict = project_conflict(flat_grad(kl_adv, self.params), g_clean)
            metrics["distill/adv_conflict"] = float(adv_conflict)
            g_kl = (g_clean + cfg.adv_weight * g_adv) * cfg.alpha
            kl = kl.detach() + cfg.adv_weight * kl_adv.detach()  # for the logged loss only
        else:
            if cfg.adv_eps > 0:
                kl = kl + cfg.adv_weight * kl_adv
            g_kl = flat_grad(kl, self.params) * cfg.alpha
        loss = cfg.alpha * float(kl.detach())
        if cfg.use_igr:
            if igr_obs is None or igr_maps is None:
                raise DigrError("a DIGR update needs an IGR batch (igr_obs, igr_maps)")
            igr, igr_metrics = igr_loss(self.student, igr_obs, igr_maps, threshold=cfg.threshold,
                                         normalizer=cfg.igr_normalizer, topk=cfg.igr_topk)
            g_igr = flat_grad(igr, self.params)  # double backprop through the input gradient
            if cfg.pcgrad:
                g, conflict = pcgrad(g_igr, g_kl)
            else:
                g, conflict = g_igr + g_kl, bool(torch.dot(g_igr, g_kl) < 0)
            metrics.update(igr_metrics.as_dict())
            loss += igr_metrics.igr
        else:
            g, conflict = g_kl, False
        if cfg.max_grad_norm is not None:
            norm = g.norm()
            if norm > cfg.max_grad_norm:
                g = g * (cfg.max_grad_norm / norm)
        assign_flat_grad(self.params, g)
        self.optimizer.step()
        metrics["distill/loss"] = loss
        metrics["pcgrad/conflict_frac"] = float(conflict)
        metrics["distill/grad_norm"] = float(g.norm())
        return metrics

    def _adversarial_kl(self, obs: torch.Tensor, teacher_probs: torch.Tensor,
                        generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, float]]:
        """``KL(pi_t(s) || pi_theta(s'))`` with ``s'`` the MAD attack on the student at ``obs``.

        The attack only reads input gradients (the parameters' ``.grad`` are untouched); ``s'`` is
        a constant of the returned loss, as in adversarial training.
        """
        from digr.attacks.mad import MAD

        cfg = self.config
        obs_adv = MAD(self.student, eps=cfg.adv_eps, steps=cfg.adv_steps, generator=generator).perturb(obs)
        kl_adv, m = distillation_loss(self.student(obs_adv), teacher_probs)
        return kl_adv, {"distill/kl_adv": m.kl, "distill/agreement_adv": m.agreement}


# -- run-folder files ------------------------------------------------------------------------------


__all__ = ["Distiller", "init_student", "make_optimizer"]
