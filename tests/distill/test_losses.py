import math

import numpy as np
import pytest
import torch

from digr.distill.losses import distillation_loss, igr_loss
from digr.errors import DigrError
from digr.saliency.vanilla import vanilla_gradient


def test_kl_is_zero_for_identical_policies():
    logits = torch.randn(5, 4)
    kl, m = distillation_loss(logits, torch.softmax(logits, -1))
    assert abs(kl.item()) < 1e-6 and m.kl == pytest.approx(0.0, abs=1e-6) and m.agreement == 1.0


def test_kl_matches_hand_computation_and_handles_zero_probabilities():
    # teacher (1, 0), student uniform over 2 actions: KL = 1 * log(1 / 0.5) = log 2.
    kl, m = distillation_loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    assert kl.item() == pytest.approx(math.log(2)) and math.isfinite(m.kl)
    assert set(m.as_dict()) == {"distill/kl", "distill/agreement"}


def test_kl_gradient_flows_to_student_only():
    logits = torch.zeros(2, 3, requires_grad=True)
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], requires_grad=True)
    kl, _ = distillation_loss(logits, teacher)
    kl.backward()
    # d KL / d logits = (softmax(logits) - p) / B
    assert torch.allclose(logits.grad, (torch.full((2, 3), 1 / 3) - teacher.detach()) / 2)
    assert teacher.grad is None


def test_kl_rejects_mismatched_shapes():
    with pytest.raises(DigrError):
        distillation_loss(torch.zeros(2, 3), torch.ones(2, 4) / 4)


def test_igr_is_zero_when_teacher_finds_every_pixel_salient(tiny_policy):
    obs = torch.rand(3, 3, 16, 16)
    loss, m = igr_loss(tiny_policy, obs, torch.full((3, 16, 16), 0.5), threshold=0.1)
    assert loss.item() == 0.0 and m.igr == 0.0 and m.penalised_frac == 0.0
    assert math.isnan(m.saliency_penalised)


def test_igr_is_mean_student_saliency_when_every_pixel_is_penalised(tiny_policy):
    obs = torch.rand(3, 3, 16, 16)
    m_g = vanilla_gradient(tiny_policy, obs)
    maps = torch.full((3, 16, 16), 0.1)  # at the threshold counts as penalised: 1_[0, inf)(0)
    loss, m = igr_loss(tiny_policy, obs, maps, threshold=0.1)
    assert loss.item() == pytest.approx(float(m_g.mean()), rel=1e-5)
    assert m.penalised_frac == 1.0 and m.saliency_penalised == pytest.approx(float(m_g.mean()), rel=1e-5)


def test_igr_penalises_only_low_saliency_pixels(tiny_policy):
    obs = torch.rand(2, 3, 16, 16)
    m_g = vanilla_gradient(tiny_policy, obs)
    maps = torch.ones(2, 16, 16)
    maps[:, :8] = 0.05  # top half unimportant for the teacher
    loss, m = igr_loss(tiny_policy, obs, maps, threshold=0.1)  # eq. 4 literally (the default)
    assert loss.item() == pytest.approx(float(m_g[:, :8].sum() / m_g.numel()), rel=1e-5)
    assert m.penalised_frac == 0.5
    assert m.saliency_kept == pytest.approx(float(m_g[:, 8:].mean()), rel=1e-5)


def test_igr_is_differentiable_in_the_parameters(tiny_policy):
    obs = torch.rand(2, 3, 16, 16)
    loss, _ = igr_loss(tiny_policy, obs, torch.zeros(2, 16, 16), threshold=0.1)
    grads = torch.autograd.grad(loss, list(tiny_policy.trunk.parameters()))
    # Double backprop reaches the first conv layer's weights.
    assert grads[0].abs().sum() > 0 and all(torch.isfinite(g).all() for g in grads)


def test_igr_rejects_mismatched_maps(tiny_policy):
    with pytest.raises(DigrError):
        igr_loss(tiny_policy, torch.rand(2, 3, 16, 16), torch.zeros(2, 8, 8), threshold=0.1)


def test_selective_penalty_normalizers():
    from digr.distill.losses import selective_penalty

    teacher = torch.tensor([[[0.0, 0.0], [0.9, 0.0]]])  # (1, 0) is kept, the rest penalised
    raw = torch.tensor([[[1.0, 4.0], [2.0, 0.5]]])  # global max 4 (penalised), kept max 2
    pen_sum = 1.0 + 4.0 + 0.5

    def grad(normalizer):
        r = raw.clone().requires_grad_(True)
        loss = selective_penalty(r, teacher, threshold=0.1, normalizer=normalizer)
        return loss.item(), torch.autograd.grad(loss, r)[0]

    pen = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])
    # literal eq. 2/4: Z = global max, differentiated -> growing the (penalised) peak lowers the loss
    value, g = grad("max")
    assert value == pytest.approx(pen_sum / 4 / 4)
    expected = pen / 16
    expected[0, 0, 1] -= pen_sum / (4 * 16)
    torch.testing.assert_close(g, expected)
    assert g[0, 0, 1] < 0
    # mean: the loss is the penalised share of the gradient mass, 5.5 / 7.5; its gradient
    # (pen_i - share) / sum(raw) is the same for every penalised pixel, so a spike is not favoured
    value, g = grad("mean")
    total = pen_sum + 2.0
    assert value == pytest.approx(pen_sum / total)
    torch.testing.assert_close(g, (pen - pen_sum / total) / total)
    assert g[0, 1, 0] < 0 and torch.all(g[pen.bool()] > 0)
    with pytest.raises(DigrError):
        selective_penalty(raw, teacher, threshold=0.1, normalizer="nope")


def test_topk_normalizer():
    from digr.distill.losses import selective_penalty

    torch.manual_seed(0)
    teacher = torch.zeros(2, 4, 4)
    teacher[:, :2, :2] = 0.9  # 4 kept pixels, 12 penalised
    raw = torch.rand(2, 4, 4)
    # k = 1 is eq. 2's max, exactly
    torch.testing.assert_close(selective_penalty(raw, teacher, threshold=0.1, normalizer="topk", topk=1),
                               selective_penalty(raw, teacher, threshold=0.1, normalizer="max"))
    # by hand: Z = mean of the 3 largest values per map
    z = raw.flatten(1).sort(1, descending=True).values[:, :3].mean(1)
    want = ((teacher <= 0.1) * raw / z[:, None, None]).mean()
    torch.testing.assert_close(selective_penalty(raw, teacher, threshold=0.1, normalizer="topk", topk=3), want)
    # Same penalised pixels, same kept mass (4), on the 4 kept pixels or on one of them: the
    # max normaliser makes the spike 4x cheaper, k = 4 prices both (nearly) alike.
    flat = torch.full((1, 4, 4), 0.01)
    flat[0, :2, :2] = 1.0
    spike = flat.clone()
    spike[0, :2, :2] = 0.0
    spike[0, 0, 0] = 4.0
    t = teacher[:1]
    loss = lambda m, **kw: float(selective_penalty(m, t, threshold=0.1, **kw))  # noqa: E731
    # (alike up to the three 0.01 penalised values that enter the spike map's top 4)
    assert loss(flat, normalizer="topk", topk=4) == pytest.approx(loss(spike, normalizer="topk", topk=4), rel=0.01)
    assert loss(flat, normalizer="max") == pytest.approx(4 * loss(spike, normalizer="max"))
    # the push on Z is shared by the k largest values
    r = flat.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(selective_penalty(r, t, threshold=0.1, normalizer="topk", topk=4), r)
    assert torch.all(g[0, :2, :2] < 0) and torch.allclose(g[0, :2, :2], g[0, 0, 0].expand(2, 2))
    for bad in (0, 17, 2.5):
        with pytest.raises(DigrError, match="topk"):
            selective_penalty(raw, teacher, threshold=0.1, normalizer="topk", topk=bad)


def test_cli_normalizer_choices_match_the_library():
    import argparse

    from digr.cli import distill as cli_distill
    from digr.distill.losses import NORMALIZERS

    parser = argparse.ArgumentParser()
    cli_distill.add_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "igr_normalizer")
    assert tuple(action.choices) == NORMALIZERS


def test_pearson_normalizer_is_one_minus_correlation_with_the_cut_map():
    from digr.distill.losses import selective_penalty

    torch.manual_seed(0)
    teacher = torch.rand(3, 5, 5)
    raw = torch.rand(3, 5, 5)
    got = selective_penalty(raw, teacher, threshold=0.4, normalizer="pearson")
    target = (teacher * (teacher > 0.4)).flatten(1).numpy()
    r = [np.corrcoef(raw[i].flatten().numpy(), target[i])[0, 1] for i in range(3)]
    assert got.item() == pytest.approx(1 - np.mean(r), abs=1e-5)
    # scale-invariant; the cut map itself scores 0; mass on penalised pixels only scores above 1
    assert selective_penalty(7 * raw, teacher, threshold=0.4, normalizer="pearson").item() == pytest.approx(got.item(), abs=1e-5)
    cut = teacher * (teacher > 0.4)
    assert selective_penalty(cut, teacher, threshold=0.4, normalizer="pearson").item() == pytest.approx(0, abs=1e-5)
    assert selective_penalty(teacher * (teacher <= 0.4), teacher, threshold=0.4, normalizer="pearson").item() > 1
    # a constant map has no correlation (1), not NaN, and a finite gradient
    flat = torch.ones(3, 5, 5, requires_grad=True)
    loss = selective_penalty(flat, teacher, threshold=0.4, normalizer="pearson")
    assert loss.item() == pytest.approx(1.0)
    assert torch.isfinite(torch.autograd.grad(loss, flat)[0]).all()


def test_mean_plus_pearson_is_the_sum_of_both_terms():
    from digr.distill.losses import selective_penalty

    torch.manual_seed(1)
    teacher, raw = torch.rand(2, 6, 6), torch.rand(2, 6, 6)
    both = selective_penalty(raw, teacher, threshold=0.5, normalizer="mean+pearson")
    parts = [selective_penalty(raw, teacher, threshold=0.5, normalizer=n) for n in ("mean", "pearson")]
    assert both.item() == pytest.approx(sum(p.item() for p in parts), abs=1e-6)
