"""DETR's matching and loss: Hungarian matching against brute force, GIoU against hand-computed cases,
the loss against its formula and its invariance to the order of the predictions."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from visarch.models.detr import (
    box_cxcywh_to_xyxy,
    generalized_box_iou,
    hungarian_match,
    match_cost,
    set_prediction_loss,
)


def random_boxes(n: int, generator: torch.Generator) -> torch.Tensor:
    centre = torch.rand(n, 2, generator=generator)
    size = 0.05 + 0.5 * torch.rand(n, 2, generator=generator)
    return box_cxcywh_to_xyxy(torch.cat((centre, size), 1))


def test_scipy_is_installed():
    import scipy.optimize

    assert hasattr(scipy.optimize, "linear_sum_assignment")


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((0, 0, 1, 1), (0, 0, 1, 1), 1.0),  # identical
    ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7 - 2 / 9),  # overlap 1, union 7, hull 3x3 = 9
    ((0, 0, 1, 1), (2, 0, 3, 1), 0 - 1 / 3),  # disjoint side by side: hull 3, union 2
    ((0, 0, 1, 1), (2, 2, 3, 3), 0 - 7 / 9),  # disjoint diagonal: hull 9, union 2
    ((0, 0, 4, 4), (1, 1, 2, 2), 1 / 16),  # nested: hull is the big box, IoU 1/16
    ((0, 0, 1, 1), (1, 0, 2, 1), 0 - 0.0),  # touching edges: no overlap, union fills the hull
])
def test_giou_hand_cases(a, b, expected):
    got = generalized_box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_giou_bounds_symmetry_and_far_apart():
    g = torch.Generator().manual_seed(0)
    a, b = random_boxes(50, g).double(), random_boxes(40, g).double()
    giou = generalized_box_iou(a, b)
    assert giou.shape == (50, 40)
    assert bool((giou > -1).all()) and bool((giou <= 1).all())
    torch.testing.assert_close(giou, generalized_box_iou(b, a).T)
    torch.testing.assert_close(torch.diagonal(generalized_box_iou(a, a)), torch.ones(50, dtype=torch.float64))
    # two unit boxes d apart along x: IoU 0, hull 2 + d, union 2 -> GIoU = -d / (2 + d) -> -1
    for d in (1.0, 10.0, 1000.0):
        far = generalized_box_iou(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[1 + d, 0, 2 + d, 1]]))
        assert far.item() == pytest.approx(-d / (2 + d))


def test_hungarian_equals_brute_force():
    g = torch.Generator().manual_seed(1)
    for trial in range(200):
        n = 1 + trial % 6
        m = int(torch.randint(0, n + 1, (1,), generator=g))
        cost = torch.randn(n, m, generator=g, dtype=torch.float64)
        rows, cols = hungarian_match(cost)
        assert cols.tolist() == list(range(m)) and len(set(rows.tolist())) == m
        best = min((sum(cost[p[j], j].item() for j in range(m)) for p in itertools.permutations(range(n), m)),
                   default=0.0)
        assert cost[rows, cols].sum().item() == pytest.approx(best, abs=1e-9)


def test_match_cost_formula():
    g = torch.Generator().manual_seed(2)
    n, m, k = 5, 3, 4
    logits = torch.randn(n, k + 1, generator=g, dtype=torch.float64)
    boxes, target = random_boxes(n, g).double(), random_boxes(m, g).double()
    labels = torch.randint(0, k, (m,), generator=g)
    cost = match_cost(logits, boxes, labels, target)
    for i in range(n):
        for j in range(m):
            p = math.exp(logits[i, labels[j]].item()) / logits[i].exp().sum().item()
            l1 = (boxes[i] - target[j]).abs().sum().item()
            giou = generalized_box_iou(boxes[i:i + 1], target[j:j + 1]).item()
            assert cost[i, j].item() == pytest.approx(-p + 5 * l1 - 2 * giou)


def test_loss_formula_on_a_known_matching():
    # targets lie exactly on predictions 2 and 0, so the matching is forced and the box terms vanish
    k = 3
    boxes = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9], [0.2, 0.6, 0.4, 0.8]], dtype=torch.float64)
    logits = torch.zeros(3, k + 1, dtype=torch.float64)
    labels, target = torch.tensor([1, 2]), boxes[[2, 0]]
    loss = set_prediction_loss(logits, boxes, labels, target)
    # uniform logits: every slot's cross-entropy is log(K + 1); the weighted mean is then log(K + 1) too
    assert loss.item() == pytest.approx(math.log(k + 1))
    logits[1, k] = 2.0  # the empty slot now favours no-object
    ce_empty = -F.log_softmax(logits[1], 0)[k].item()
    expected = (math.log(k + 1) * 2 + 0.1 * ce_empty) / (2 + 0.1)
    assert set_prediction_loss(logits, boxes, labels, target).item() == pytest.approx(expected)


def test_loss_invariant_to_permuting_predictions():
    g = torch.Generator().manual_seed(3)
    for _ in range(50):
        n = int(torch.randint(1, 8, (1,), generator=g))
        m = int(torch.randint(0, n + 1, (1,), generator=g))
        logits = torch.randn(n, 6, generator=g, dtype=torch.float64)
        boxes, target = random_boxes(n, g).double(), random_boxes(m, g).double()
        labels = torch.randint(0, 5, (m,), generator=g)
        perm = torch.randperm(n, generator=g)
        tperm = torch.randperm(m, generator=g)
        base = set_prediction_loss(logits, boxes, labels, target)
        assert set_prediction_loss(logits[perm], boxes[perm], labels, target).item() == pytest.approx(base.item())
        assert set_prediction_loss(logits, boxes, labels[tperm], target[tperm]).item() == pytest.approx(base.item())


def test_loss_gradient_flows():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(4, 3, generator=g, requires_grad=True)
    raw = torch.cat((torch.rand(4, 2, generator=g), 0.1 + 0.3 * torch.rand(4, 2, generator=g)), 1)
    raw.requires_grad_(True)
    loss = set_prediction_loss(logits, box_cxcywh_to_xyxy(raw), torch.tensor([0, 1]), random_boxes(2, g))
    loss.backward()
    assert logits.grad.abs().sum() > 0 and raw.grad.abs().sum() > 0


def test_bad_input():
    box = torch.tensor([[0.0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"must be \[n, 4\]"):
        generalized_box_iou(torch.zeros(1, 3), box)
    with pytest.raises(ValueError, match="x1 >= x0"):
        generalized_box_iou(torch.tensor([[1.0, 0, 0, 1]]), box)
    with pytest.raises(ValueError, match="positive area"):
        generalized_box_iou(torch.tensor([[0.0, 0, 0, 1]]), box)
    with pytest.raises(ValueError, match="N queries >= M targets"):
        hungarian_match(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"N = 1 must be >= the number of targets M = 2"):
        match_cost(torch.zeros(1, 3), box, torch.tensor([0, 1]), box.repeat(2, 1))
    with pytest.raises(ValueError, match="real classes"):
        match_cost(torch.zeros(2, 3), box.repeat(2, 1), torch.tensor([2]), box)
    with pytest.raises(ValueError, match=r"labels must be \[M\]"):
        match_cost(torch.zeros(2, 3), box.repeat(2, 1), torch.tensor([0, 1]), box)
