r"""Normalization layers as instances of one template (Normalization chapter; appendix A of the notes).

Notation: a batch :math:`X \in \mathbb{R}^{N \times C \times H \times W}` (any number of spatial
axes, or none).  Following Wu and He (2018), every normalization layer picks, for each entry
:math:`(k, c, i, j)`, a set :math:`\operatorname{select}(k, c, i, j)` of entries, and

1. computes the mean and the (biased) variance over that set,

   .. math::

       \mu = \frac{1}{|S|} \sum_{s \in S} X_s, \qquad
       \sigma^2 = \frac{1}{|S|} \sum_{s \in S} (X_s - \mu)^2, \qquad S = \operatorname{select}(k, c, i, j);

2. normalises, :math:`\hat X = (X - \mu) / \sqrt{\sigma^2 + \epsilon}`;
3. applies a learned affine map, :math:`Y = \gamma \hat X + \beta`.

For the four common layers the sets are "every entry that agrees with (k, c, i, j) on some
axes", so a set of *axes to average over* describes them:

=============  =====================================  ==================================
layer          entries in one set                     axes averaged over
=============  =====================================  ==================================
batch norm     same channel c                         N and the spatial axes
layer norm     same example k                         C and the spatial axes
instance norm  same example k and channel c           the spatial axes
group norm     same example k and group of channels   C/G channels of a group, spatial
=============  =====================================  ==================================

Group norm becomes the same kind of average after one reshape, ``[N, C, *] -> [N, G, C/G, *]``,
with groups of consecutive channels.  :func:`normalize` is the template with such a set of
axes; the four layers call it (or its two halves, :func:`_statistics` and :func:`_whiten`),
and nothing else does arithmetic.  Steps 2 and 3 run as one multiply-add,
:math:`Y = X \cdot a + b` with :math:`a = \gamma / \sqrt{\sigma^2 + \epsilon}` and
:math:`b = \beta - \mu a`: the same numbers, one pass over X instead of four.

**Affine parameters.**  The notes give every layer one :math:`(\gamma_c, \beta_c)` per channel;
so do torch's batch, instance and group norm.  Torch's layer norm instead has one per entry
of ``normalized_shape`` (per feature, for the vectors of a transformer), and
:func:`layer_norm` follows torch.

**Running statistics** (batch norm, and instance norm when asked).  In training mode each
call also updates, in place and outside autograd,

.. math::

    \hat\mu \leftarrow (1 - m)\,\hat\mu + m\,\mu, \qquad
    \hat\sigma^2 \leftarrow (1 - m)\,\hat\sigma^2 + m\,\frac{n}{n - 1}\,\sigma^2

with momentum m and n the number of entries behind each channel's :math:`\mu`: the running
variance uses the *unbiased* estimate, the normalisation the biased one, as in torch.  In
evaluation mode batch norm normalises with :math:`(\hat\mu, \hat\sigma^2)` and computes no
statistics of the batch.  Every function here is checked against ``torch.nn.functional`` in
``tests/test_normalization.py``.
"""

from __future__ import annotations

import math
import numbers

import torch

from visarch.functional._checks import check_floating, check_int

__all__ = ["normalize", "normalize_loop", "batch_norm", "layer_norm", "instance_norm", "group_norm"]

# The notes' smoothing parameter, torch's default.
EPS = 1e-5


def _check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number, got {type(eps).__name__}")
    if not eps > 0:  # also refuses nan
        raise ValueError(f"eps must be > 0 (it keeps sqrt(var + eps) away from 0), got {eps}")


def _check_momentum(momentum):
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"momentum must be a real number, got {type(momentum).__name__}")
    if not 0 <= momentum <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")


def _check_rank(input, low, layout):
    check_floating(input=input)
    if input.dim() < low:
        raise ValueError(f"input must have rank >= {low} {layout}, got rank {input.dim()}")


def _check_channel_params(c, **params):
    """Per-channel tensors (weight, bias, running statistics) have shape (C,)."""
    for name, t in params.items():
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{name} must have shape (C,) = ({c},), got {tuple(t.shape)}")


def _per_channel(t, rank):
    """A ``[C]`` tensor as ``[1, C, 1, ...]``, to broadcast against ``[N, C, *spatial]``."""
    return None if t is None else t.view(1, -1, *(1,) * (rank - 2))


def _statistics(input, dims):
    """Step 1: mean and biased variance over ``dims``, kept as size-1 axes (one pass over the input)."""
    var, mean = torch.var_mean(input, dim=dims, correction=0, keepdim=True)
    return mean, var


def _whiten(input, mean, var, weight, bias, eps):
    r"""Steps 2 and 3 as one multiply-add: ``input * a + b``, :math:`a = \gamma/\sqrt{\sigma^2+\epsilon}`,
    :math:`b = \beta - \mu a`; ``mean``, ``var``, ``weight`` and ``bias`` broadcast against ``input``."""
    scale = torch.rsqrt(var + eps)  # 1 / sigma
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    return torch.addcmul(shift, input, scale)


def normalize(input, dims, weight=None, bias=None, eps=EPS):
    """The template: zero mean and unit variance over the axes ``dims``, then ``weight * x + bias``.

    ``dims`` is a tuple of axes of ``input``; every index of the other axes gets its own mean
    and variance.  ``weight`` and ``bias`` (optional) broadcast against ``input``.
    """
    check_floating(input=input, weight=weight, bias=bias)
    _check_eps(eps)
    if isinstance(dims, int):
        dims = (dims,)
    if not isinstance(dims, (tuple, list)) or not dims or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise TypeError(f"dims must be an int or a non-empty tuple of ints, got {dims!r}")
    rank = input.dim()
    if any(not -rank <= d < rank for d in dims):
        raise ValueError(f"dims {tuple(dims)} out of range for an input of rank {rank}")
    if len({d % rank for d in dims}) != len(dims):
        raise ValueError(f"dims {tuple(dims)} name an axis twice")
    mean, var = _statistics(input, tuple(dims))
    return _whiten(input, mean, var, weight, bias, eps)


# The notes' select(k, c, i, j), 0-based, for normalize_loop; group norm needs C/G as well.
SELECT = {
    "batch": lambda k, c, i, j, kk, cc, group: cc == c,
    "layer": lambda k, c, i, j, kk, cc, group: kk == k,
    "instance": lambda k, c, i, j, kk, cc, group: kk == k and cc == c,
    "group": lambda k, c, i, j, kk, cc, group: kk == k and cc // group == c // group,
}


def normalize_loop(input, select, *, num_groups=1, weight=None, bias=None, eps=EPS):
    """The notes' template literally: one mean and one variance per entry, over ``select`` (small inputs only).

    ``input`` is ``[N, C, H, W]``; ``select`` is ``"batch"``, ``"layer"``, ``"instance"`` or
    ``"group"`` (with ``num_groups`` groups of consecutive channels); ``weight`` and ``bias``
    are per channel, ``[C]``, as in the notes.
    """
    check_floating(input=input, weight=weight, bias=bias)
    _check_eps(eps)
    if input.dim() != 4:
        raise ValueError(f"input must have rank 4 [N, C, H, W], got rank {input.dim()}")
    if select not in SELECT:
        raise ValueError(f"select must be one of {tuple(SELECT)}, got {select!r}")
    n, c, h, w = input.shape
    check_int(num_groups, "number of groups G", low=1)
    if c % num_groups:
        raise ValueError(f"channels C={c} are not divisible by the number of groups G={num_groups}")
    _check_channel_params(c, weight=weight, bias=bias)
    chosen, per_group = SELECT[select], c // num_groups
    index = [(k, cc, i, j) for k in range(n) for cc in range(c) for i in range(h) for j in range(w)]
    out = torch.empty_like(input)
    for k, cc, i, j in index:
        members = torch.stack([input[s] for s in index if chosen(k, cc, i, j, s[0], s[1], per_group)])
        mu = members.mean()  # step 1
        sigma = torch.sqrt(((members - mu) ** 2).mean() + eps)
        value = (input[k, cc, i, j] - mu) / sigma  # step 2
        gamma = 1.0 if weight is None else weight[cc]  # step 3
        out[k, cc, i, j] = gamma * value + (0.0 if bias is None else bias[cc])
    return out


@torch.no_grad()
def _update_running(running_mean, running_var, mean, var, count, momentum):
    """Exponential moving averages of the batch statistics, the variance made unbiased (n / (n-1))."""
    running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
    running_var.mul_(1 - momentum).add_(var * (count / (count - 1)), alpha=momentum)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=EPS):
    """Batch normalization with the arguments of ``torch.nn.functional.batch_norm``.

    ``input`` is ``[N, C, *spatial]`` (``[N, C]`` for vectors).  In training mode (or without
    running statistics) it normalises each channel over the batch and the spatial axes and,
    given ``running_mean``/``running_var`` (``[C]``), updates them in place; in evaluation
    mode it normalises with them.
    """
    _check_rank(input, 2, "[N, C, *spatial]")
    check_floating(input=input, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    _check_eps(eps)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together")
    c, rank = input.shape[1], input.dim()
    _check_channel_params(c, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    weight, bias = _per_channel(weight, rank), _per_channel(bias, rank)
    if not training and running_mean is not None:  # evaluation: the stored statistics, nothing of the batch
        return _whiten(input, _per_channel(running_mean, rank), _per_channel(running_var, rank), weight, bias, eps)
    count = input.numel() // c  # entries behind each channel's statistics: N * H * W
    if count <= 1:
        raise ValueError(f"batch norm in training mode needs more than 1 value per channel to estimate a "
                         f"variance, got input of shape {tuple(input.shape)}")
    dims = (0, *range(2, rank))
    mean, var = _statistics(input, dims)  # [1, C, 1, ...]
    if training and running_mean is not None:
        _check_momentum(momentum)
        _update_running(running_mean, running_var, mean.view(c), var.view(c), count, momentum)
    return _whiten(input, mean, var, weight, bias, eps)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=EPS):
    """Layer normalization with the arguments of ``torch.nn.functional.layer_norm``.

    Normalises over the last ``len(normalized_shape)`` axes, which must have that shape
    (``(C, H, W)`` for the notes' layer norm of an image); ``weight`` and ``bias`` have
    ``normalized_shape`` too, one parameter per entry as in torch.
    """
    check_floating(input=input, weight=weight, bias=bias)
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    if not normalized_shape:
        raise ValueError("normalized_shape must name at least one axis")
    k = len(normalized_shape)
    if input.dim() < k or tuple(input.shape[-k:]) != normalized_shape:
        raise ValueError(f"the last {k} axes of input {tuple(input.shape)} must have normalized_shape "
                         f"{normalized_shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != normalized_shape:
            raise ValueError(f"{name} must have normalized_shape {normalized_shape}, got {tuple(t.shape)}")
    return normalize(input, tuple(range(-k, 0)), weight, bias, eps)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=EPS):
    """Instance normalization with the arguments of ``torch.nn.functional.instance_norm``.

    Each (example, channel) pair is normalised over its spatial axes.  With running statistics
    and ``use_input_stats``, their update uses the per-instance statistics averaged over the
    batch; with ``use_input_stats=False`` the running statistics normalise instead, as in
    evaluation-mode batch norm.
    """
    _check_rank(input, 3, "[N, C, *spatial]")
    check_floating(input=input, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    _check_eps(eps)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together")
    n, c, rank = input.shape[0], input.shape[1], input.dim()
    _check_channel_params(c, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    weight, bias = _per_channel(weight, rank), _per_channel(bias, rank)
    if not use_input_stats:
        if running_mean is None:
            raise ValueError("use_input_stats=False needs running_mean and running_var")
        return _whiten(input, _per_channel(running_mean, rank), _per_channel(running_var, rank), weight, bias, eps)
    count = math.prod(input.shape[2:])  # entries behind each instance's statistics: H * W
    if count <= 1:
        raise ValueError(f"instance norm needs more than 1 spatial element per channel, got input of shape "
                         f"{tuple(input.shape)}")
    mean, var = _statistics(input, tuple(range(2, rank)))  # [N, C, 1, ...]
    if running_mean is not None:
        _check_momentum(momentum)
        _update_running(running_mean, running_var, mean.view(n, c).mean(0), var.view(n, c).mean(0), count,
                        momentum)
    return _whiten(input, mean, var, weight, bias, eps)


def group_norm(input, num_groups, weight=None, bias=None, eps=EPS):
    """Group normalization with the arguments of ``torch.nn.functional.group_norm``.

    The C channels of ``input`` ``[N, C, *spatial]`` form ``num_groups`` groups of C/G
    consecutive channels; each (example, group) is normalised over its channels and spatial
    axes, then ``weight`` and ``bias`` (``[C]``) act per channel.
    """
    _check_rank(input, 2, "[N, C, *spatial]")
    check_floating(input=input, weight=weight, bias=bias)
    _check_eps(eps)
    check_int(num_groups, "number of groups G", low=1)
    n, c, rank = input.shape[0], input.shape[1], input.dim()
    if c % num_groups:
        raise ValueError(f"channels C={c} are not divisible by the number of groups G={num_groups}")
    _check_channel_params(c, weight=weight, bias=bias)
    grouped = input.reshape(n, num_groups, -1)  # [N, G, C/G * H * W]: one row per (example, group)
    mean, var = _statistics(grouped, (2,))  # [N, G, 1]
    per_channel = (n, num_groups, c // num_groups)  # each group's statistics, repeated for its channels
    mean = mean.expand(*per_channel).reshape(n, c, *(1,) * (rank - 2))
    var = var.expand(*per_channel).reshape(n, c, *(1,) * (rank - 2))
    return _whiten(input, mean, var, _per_channel(weight, rank), _per_channel(bias, rank), eps)
