"""DINO's loss, center and EMA teacher against their formulas."""

import math

import pytest
import torch
from torch import nn

from visarch.models.dino import DINOConfig, DINOLoss, ema_update, entropy


def test_paper_defaults():
    c = DINOConfig()
    assert (c.student_temp, c.teacher_temp, c.center_momentum, c.teacher_momentum) == (0.1, 0.04, 0.9, 0.996)


def test_loss_equals_cross_entropy_formula():
    g = torch.Generator().manual_seed(0)
    k, b = 7, 5
    loss_fn = DINOLoss(DINOConfig(out_dim=k))
    loss_fn.center.copy_(torch.randn(k, generator=g))
    center = loss_fn.center.clone()
    student = torch.randn(3, b, k, generator=g, dtype=torch.float64)
    teacher = torch.randn(2, b, k, generator=g, dtype=torch.float64)
    got = loss_fn.eval()(student, teacher)
    terms = []
    for a in range(2):
        for v in range(3):
            if a == v:
                continue
            for i in range(b):
                z_t = [(teacher[a, i, j].item() - center[j].item()) / 0.04 for j in range(k)]
                z_s = [student[v, i, j].item() / 0.1 for j in range(k)]
                pt = [math.exp(z) / sum(math.exp(y) for y in z_t) for z in z_t]
                log_norm = math.log(sum(math.exp(y) for y in z_s))
                terms.append(-sum(p * (z - log_norm) for p, z in zip(pt, z_s, strict=True)))
    assert got.item() == pytest.approx(sum(terms) / len(terms))
    torch.testing.assert_close(loss_fn.center, center)  # eval mode leaves the center alone


def test_center_ema_update():
    k = 4
    loss_fn = DINOLoss(DINOConfig(out_dim=k)).train()
    teacher = torch.arange(2 * 3 * k, dtype=torch.float32).reshape(2, 3, k)
    loss_fn(torch.zeros(2, 3, k), teacher)
    torch.testing.assert_close(loss_fn.center, 0.1 * teacher.reshape(-1, k).mean(0))
    loss_fn(torch.zeros(2, 3, k), teacher)
    torch.testing.assert_close(loss_fn.center, (0.9 * 0.1 + 0.1) * teacher.reshape(-1, k).mean(0))
    off = DINOLoss(DINOConfig(out_dim=k), centering=False).train()
    off(torch.zeros(2, 3, k), teacher)
    assert bool((off.center == 0).all())


def test_constant_shift_of_teacher_logits_is_irrelevant():
    g = torch.Generator().manual_seed(1)
    k = 6
    loss_fn = DINOLoss(DINOConfig(out_dim=k)).eval()
    student, teacher = torch.randn(2, 4, k, generator=g), torch.randn(2, 4, k, generator=g)
    for shift in (-30.0, 0.5, 100.0):
        assert loss_fn(student, teacher + shift).item() == pytest.approx(loss_fn(student, teacher).item(), rel=1e-5)
    # with the center tracking the shift, a shift of one dimension is removed as well
    loss_fn.center.copy_(torch.tensor([5.0, 0, 0, 0, 0, 0]))
    shifted = teacher.clone()
    shifted[..., 0] += 5.0
    assert loss_fn(student, shifted).item() == pytest.approx(DINOLoss(DINOConfig(out_dim=k)).eval()(
        student, teacher).item(), rel=1e-5)


def test_sharpening_lowers_entropy():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(100, 10, generator=g)
    for hi, lo in ((1.0, 0.1), (0.1, 0.04), (0.5, 0.2)):
        assert bool((entropy((logits / lo).softmax(-1)) < entropy((logits / hi).softmax(-1))).all())
    assert entropy(torch.full((10,), 0.1)).item() == pytest.approx(math.log(10))
    assert entropy(torch.eye(10)[3]).item() == 0.0


def test_loss_gradient_reaches_student_only():
    k = 5
    student = torch.randn(2, 3, k, requires_grad=True)
    teacher = torch.randn(2, 3, k, requires_grad=True)
    DINOLoss(DINOConfig(out_dim=k))(student, teacher).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


def test_ema_update():
    torch.manual_seed(0)
    student, teacher = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.996)
    for t, t0, s in zip(teacher.parameters(), before, student.parameters(), strict=True):
        torch.testing.assert_close(t, 0.996 * t0 + 0.004 * s)
    ema_update(teacher, student, 0.0)
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(t, s)


def test_bad_input():
    with pytest.raises(ValueError, match="teacher temperature tau_t must be > 0"):
        DINOConfig(teacher_temp=0)
    with pytest.raises(ValueError, match="center momentum m must be in"):
        DINOConfig(center_momentum=1.0)
    with pytest.raises(ValueError, match="output dimension K"):
        DINOConfig(out_dim=1)
    loss_fn = DINOLoss(DINOConfig(out_dim=4))
    with pytest.raises(ValueError, match=r"teacher \[2, B, K\]"):
        loss_fn(torch.zeros(2, 3, 4), torch.zeros(3, 3, 4))
    with pytest.raises(ValueError, match="K = 4"):
        loss_fn(torch.zeros(2, 3, 5), torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="same architecture"):
        ema_update(nn.Linear(3, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="teacher momentum"):
        ema_update(nn.Linear(3, 2), nn.Linear(3, 2), 1.5)
