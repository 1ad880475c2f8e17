r"""DETR's set prediction: match the predictions to the targets one to one, then score the matched pairs
(Carion et al., 2020).

A detector that outputs a fixed set of :math:`N` predictions
:math:`\hat y_i = (\hat{\mathbf{p}}_i, \hat{\mathbf{b}}_i)` (class probabilities over :math:`K` classes
plus a "no object" class :math:`\varnothing`, and a box) is compared with :math:`M \le N` targets
:math:`y_j = (c_j, \mathbf{b}_j)` through the permutation :math:`\hat\sigma` of minimal total cost,

.. math::

    \mathcal{L}_{\text{match}}(y_j, \hat y_i) = -\lambda_{\text{cls}}\, \hat p_i(c_j)
        + \lambda_{L1} \lVert \mathbf{b}_j - \hat{\mathbf{b}}_i \rVert_1
        - \lambda_{\text{iou}}\, \mathrm{GIoU}(\mathbf{b}_j, \hat{\mathbf{b}}_i),
    \qquad (\lambda_{\text{cls}}, \lambda_{L1}, \lambda_{\text{iou}}) = (1, 5, 2),

found by the Hungarian algorithm (Kuhn, 1955) in :math:`O(N^3)` rather than by trying all
:math:`N!/(N-M)!` injections.  Generalised IoU (Rezatofighi et al., 2019) subtracts from the IoU the share
of the smallest enclosing box :math:`C` that neither box covers,
:math:`\mathrm{GIoU} = \mathrm{IoU} - |C \setminus (A \cup B)| / |C| \in (-1, 1]`, so it still says how far
apart two disjoint boxes are.  The loss is then a cross-entropy over all :math:`N` predictions (matched
ones with their target's class, the rest with :math:`\varnothing`, whose weight is 0.1 to balance the many
empty slots) plus the L1 and GIoU terms on the :math:`M` matched boxes, divided by :math:`M`.  The loss is
a function of the *set* of predictions: permuting them changes the matching, not the loss.

Boxes are ``(x0, y0, x1, y1)`` corners here; DETR regresses normalised ``(cx, cy, w, h)`` and converts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

__all__ = ["COST_BBOX", "COST_CLASS", "COST_GIOU", "NO_OBJECT_WEIGHT", "box_area", "box_cxcywh_to_xyxy",
           "generalized_box_iou", "hungarian_match", "match_cost", "set_prediction_loss"]

COST_CLASS = 1.0  #: lambda_cls, the weight of -p_i(c_j) in the matching cost
COST_BBOX = 5.0  #: lambda_L1, the weight of the L1 distance between boxes (matching and loss)
COST_GIOU = 2.0  #: lambda_iou, the weight of -GIoU (matching) and 1 - GIoU (loss)
NO_OBJECT_WEIGHT = 0.1  #: cross-entropy weight of the "no object" class


def _check_boxes(boxes: torch.Tensor, name: str) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be [n, 4] boxes (x0, y0, x1, y1), got shape {list(boxes.shape)}")
    if not bool((boxes[:, 2:] >= boxes[:, :2]).all()):
        raise ValueError(f"{name} need x1 >= x0 and y1 >= y0 in every box")


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes as centre, width, height ``[n, 4]`` -> corners ``(x0, y0, x1, y1)`` ``[n, 4]``.

    Args:
        boxes: ``(cx, cy, w, h)`` rows, DETR's regression targets; any leading shape ``[..., 4]`` works.

    Returns:
        The same boxes as ``(x0, y0, x1, y1)``.
    """
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of corner boxes, ``[n, 4] -> [n]``: (x1 - x0)(y1 - y0).

    Args:
        boxes: ``(x0, y0, x1, y1)`` rows ``[n, 4]``.

    Returns:
        The areas ``[n]``.
    """
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU (Rezatofighi et al., 2019) of every pair of boxes, ``[n, 4], [m, 4] -> [n, m]``.

    ``GIoU = IoU - (|C| - |A u B|) / |C|``, with C the smallest box enclosing both, in (-1, 1].
    Boxes must have positive area (an empty union would divide by zero).

    Args:
        a: boxes ``(x0, y0, x1, y1)`` ``[n, 4]``.
        b: boxes ``(x0, y0, x1, y1)`` ``[m, 4]``.

    Returns:
        The GIoU matrix ``[n, m]``.
    """
    _check_boxes(a, "boxes a")
    _check_boxes(b, "boxes b")
    area_a, area_b = box_area(a), box_area(b)
    if not (bool((area_a > 0).all()) and bool((area_b > 0).all())):
        raise ValueError("GIoU needs boxes of positive area")
    top_left = torch.max(a[:, None, :2], b[None, :, :2])  # [n, m, 2]
    bottom_right = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)  # [n, m]
    union = area_a[:, None] + area_b[None, :] - inter
    hull = (torch.max(a[:, None, 2:], b[None, :, 2:]) - torch.min(a[:, None, :2], b[None, :, :2])).prod(-1)
    return inter / union - (hull - union) / hull


def _check_prediction(logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
                      target_boxes: torch.Tensor) -> None:
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be [N, K + 1] (K >= 1 classes plus no-object), got {list(logits.shape)}")
    if boxes.shape[0] != logits.shape[0]:
        raise ValueError(f"{logits.shape[0]} predictions have logits but {boxes.shape[0]} have boxes")
    if labels.dim() != 1 or labels.shape[0] != target_boxes.shape[0]:
        raise ValueError(f"labels must be [M] for the M = {target_boxes.shape[0]} target boxes, "
                         f"got {list(labels.shape)}")
    if labels.shape[0] > logits.shape[0]:
        raise ValueError(f"the number of queries N = {logits.shape[0]} must be >= the number of targets "
                         f"M = {labels.shape[0]}")
    no_object = logits.shape[1] - 1
    if labels.numel() and not bool(((labels >= 0) & (labels < no_object)).all()):
        raise ValueError(f"target labels must be real classes in 0..{no_object - 1} (index {no_object} is "
                         "no-object)")


def match_cost(logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
               target_boxes: torch.Tensor) -> torch.Tensor:
    """The matching cost of every prediction with every target, ``[N, M]``.

    The cost of prediction i with target j is ``-1 p_i(c_j) + 5 |b_j - b_i|_1 - 2 GIoU(b_j, b_i)``, with
    ``p_i`` the softmax of the logits.

    Args:
        logits: class scores of the N predictions ``[N, K + 1]``, the last column for "no object".
        boxes: their boxes ``(x0, y0, x1, y1)`` ``[N, 4]``.
        labels: the classes of the M targets ``[M]``, in ``0 .. K - 1``, with M <= N.
        target_boxes: their boxes ``[M, 4]``.

    Returns:
        The cost matrix ``[N, M]``.
    """
    _check_prediction(logits, boxes, labels, target_boxes)
    prob = logits.softmax(-1)  # [N, K+1]
    return (-COST_CLASS * prob[:, labels] + COST_BBOX * torch.cdist(boxes, target_boxes, p=1)
            - COST_GIOU * generalized_box_iou(boxes, target_boxes))


def hungarian_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The one-to-one matching of predictions to targets with the least total cost (Hungarian algorithm).

    Solved by scipy's ``linear_sum_assignment``.

    Args:
        cost: the cost matrix ``[N, M]``, N predictions by M <= N targets.

    Returns:
        ``(rows, cols)``, each ``[M]`` (int64): prediction ``rows[k]`` is matched to target ``cols[k]``,
        sorted by target.
    """
    if cost.dim() != 2 or cost.shape[0] < cost.shape[1]:
        raise ValueError(f"cost must be [N, M] with N queries >= M targets, got {list(cost.shape)}")
    rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
    order = cols.argsort()
    return torch.as_tensor(rows[order], dtype=torch.int64), torch.as_tensor(cols[order], dtype=torch.int64)


def set_prediction_loss(logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
                        target_boxes: torch.Tensor) -> torch.Tensor:
    """DETR's set prediction loss for one image, after the Hungarian matching.

    A weighted cross-entropy over all N predictions (unmatched ones against class index K, "no object",
    with weight 0.1), plus ``5 L1 + 2 (1 - GIoU)`` summed over the matched boxes and divided by M (no box
    term when M = 0).

    Args:
        logits: class scores of the N predictions ``[N, K + 1]``.
        boxes: their boxes ``(x0, y0, x1, y1)`` ``[N, 4]``.
        labels: the classes of the M targets ``[M]``.
        target_boxes: their boxes ``[M, 4]``.

    Returns:
        The scalar loss.
    """
    rows, cols = hungarian_match(match_cost(logits, boxes, labels, target_boxes))
    no_object = logits.shape[1] - 1
    classes = torch.full((logits.shape[0],), no_object, dtype=torch.int64)
    classes[rows] = labels[cols]
    weight = torch.ones(logits.shape[1], dtype=logits.dtype)
    weight[no_object] = NO_OBJECT_WEIGHT
    loss = F.cross_entropy(logits, classes, weight=weight)  # weighted mean over the N slots
    if labels.numel():
        matched, target = boxes[rows], target_boxes[cols]
        l1 = (matched - target).abs().sum()
        giou = torch.diagonal(generalized_box_iou(matched, target))
        loss = loss + (COST_BBOX * l1 + COST_GIOU * (1 - giou).sum()) / labels.numel()
    return loss
