import pytest
import torch

from digr.distill.pcgrad import assign_flat_grad, flat_grad, pcgrad, project_conflict


def test_conflicting_gradients_are_projected_off_each_other():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # g1.g2 = -1 < 0
    combined, conflict = pcgrad(g1, g2)
    # By hand: g1' = g1 - (-1/2) g2 = (0.5, 0.5); g2' = g2 - (-1/1) g1 = (0, 1).
    assert conflict
    assert torch.allclose(combined, torch.tensor([0.5, 1.5]))
    # Each projected part is orthogonal to the *original* other gradient.
    assert torch.dot(torch.tensor([0.5, 0.5]), g2) == 0 and torch.dot(torch.tensor([0.0, 1.0]), g1) == 0


def test_agreeing_or_orthogonal_gradients_are_summed():
    combined, conflict = pcgrad(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert not conflict and torch.equal(combined, torch.tensor([2.0, 1.0]))
    combined, conflict = pcgrad(torch.tensor([1.0, 0.0]), torch.tensor([0.0, -3.0]))
    assert not conflict and torch.equal(combined, torch.tensor([1.0, -3.0]))


def test_opposite_gradients_cancel():
    combined, conflict = pcgrad(torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 0.0]))
    assert conflict and torch.equal(combined, torch.zeros(2))


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError):
        pcgrad(torch.ones(2), torch.ones(3))


def test_project_conflict_removes_only_the_opposing_part():
    g, ref = torch.tensor([1.0, 2.0]), torch.tensor([-2.0, 0.0])  # g.ref = -2 < 0
    out, conflict = project_conflict(g, ref)
    # By hand: g - (-2/4) ref = (1, 2) + 0.5 (-2, 0) = (0, 2): orthogonal to ref, ref untouched.
    assert conflict and torch.equal(out, torch.tensor([0.0, 2.0]))
    out, conflict = project_conflict(torch.tensor([1.0, 2.0]), torch.tensor([2.0, -1.0]))  # dot 0
    assert not conflict and torch.equal(out, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError):
        project_conflict(torch.ones(2), torch.ones(3))

    # It is one half of PCGrad's two-way projection.
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    assert torch.allclose(project_conflict(g1, g2)[0] + project_conflict(g2, g1)[0], pcgrad(g1, g2)[0])


def test_flat_grad_roundtrip_with_unused_parameter():
    a = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    b = torch.nn.Parameter(torch.tensor([[3.0]]))
    unused = torch.nn.Parameter(torch.zeros(2))
    loss = (a ** 2).sum() + 5 * b.sum()
    g = flat_grad(loss, [a, b, unused])
    assert torch.equal(g, torch.tensor([2.0, 4.0, 5.0, 0.0, 0.0]))
    assign_flat_grad([a, b, unused], g * 2)
    assert torch.equal(a.grad, torch.tensor([4.0, 8.0])) and torch.equal(b.grad, torch.tensor([[10.0]]))
    assert torch.equal(unused.grad, torch.zeros(2))
