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
axes; the four layers run the same steps (:class:`NormalizeFunction` below), and evaluation-mode
batch norm, whose statistics are stored, runs steps 2 and 3 alone (``_whiten``).  Steps 2
and 3 fold into one scale per set, :math:`Y = (X - \mu)\,a + \beta` with
:math:`a = \gamma / \sqrt{\sigma^2 + \epsilon}`: the same numbers in fewer passes over X.

**Backward.**  With statistics of the batch (every layer except evaluation-mode batch norm and
instance norm on running statistics), steps 1-3 run as one ``torch.autograd.Function``,
:class:`NormalizeFunction`, whose backward is the analytic gradient of normalisation,
:math:`\partial L/\partial X = r\,(\hat g - \operatorname{mean}_S \hat g
- \hat X \operatorname{mean}_S \hat g \hat X)` with :math:`r = 1/\sqrt{\sigma^2+\epsilon}` and
:math:`\hat g = \gamma\, \partial L/\partial Y`, in a few passes over X instead of autograd's graph
through the mean, the variance and the multiply-add; it is built from differentiable torch
operations, so second derivatives work too.

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

import torch

from visarch.checks import check_floating, check_int, check_ints, check_real

__all__ = ["NormalizeFunction", "batch_norm", "group_norm", "instance_norm", "layer_norm", "normalize",
           "normalize_loop"]

# The notes' smoothing parameter, torch's default.
EPS = 1e-5


def _check_rank(input, low, layout, *, where):
    check_floating(where=where, input=input)
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
    """Step 1: mean and biased variance over ``dims``, kept as size-1 axes.

    Two passes, the mean and then the mean square of ``input - mean``: as exact as a single-pass
    (Welford) ``torch.var_mean`` and, on CPU, several times faster than it.
    """
    mean = input.mean(dims, keepdim=True)
    return mean, (input - mean).square().mean(dims, keepdim=True)


def _whiten(input, mean, var, weight, bias, eps):
    r"""Steps 2 and 3 as one multiply-add: ``input * a + b``, :math:`a = \gamma/\sqrt{\sigma^2+\epsilon}`,
    :math:`b = \beta - \mu a`; ``mean``, ``var``, ``weight`` and ``bias`` broadcast against ``input``.

    For fixed statistics (evaluation mode), where autograd's gradient is already cheap;
    statistics of the input itself go through :class:`NormalizeFunction`."""
    scale = torch.rsqrt(var + eps)  # 1 / sigma
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    return torch.addcmul(shift, input, scale)


class NormalizeFunction(torch.autograd.Function):
    r"""Steps 1-3 with the analytic gradient: ``(y, mean, var)`` for ``input`` normalised over ``dims``.

    ``dims`` are non-negative axes of ``input``; ``weight`` and ``bias`` (or ``None``) broadcast
    against ``input`` without enlarging it.  ``mean`` and ``var`` (size 1 along ``dims``) are
    returned for the running statistics and carry no gradient.  Autograd through the
    mean, the variance, ``rsqrt`` and the multiply-add would build a graph with several temporaries
    as large as the input; the gradient of normalisation has a closed form instead.  With
    :math:`\hat x = (x - \mu)\,r`, :math:`r = 1/\sqrt{\sigma^2 + \epsilon}`, :math:`\hat g = g\gamma`
    and n entries in each set S,

    .. math::

        \frac{\partial L}{\partial x} = r\Big(\hat g - \frac{1}{n}\sum_S \hat g
            - \hat x\,\frac{1}{n}\sum_S \hat g \hat x\Big)
            = \hat g\, r + x\, c_1 + c_0, \qquad
        c_1 = -\frac{r^2}{n}\sum_S \hat g \hat x, \quad c_0 = -\frac{r}{n}\sum_S \hat g - \mu c_1,

    :math:`\partial L/\partial\gamma = \sum g \hat x` and :math:`\partial L/\partial\beta = \sum g`
    over the axes along which the parameter is broadcast.  The backward is made of ordinary
    differentiable operations, so double backward works too.

    Called as ``NormalizeFunction.apply(input, dims, weight, bias, eps)``.

    Args:
        input: the tensor to normalise, any shape.
        dims: tuple of non-negative axes of ``input``; each index of the other axes gets its own statistics.
        weight: :math:`\gamma`, broadcastable to ``input`` without enlarging it, or ``None``.
        bias: :math:`\beta`, likewise, or ``None``.
        eps: :math:`\epsilon`, added to the variance.

    Returns:
        ``(y, mean, var)``, with ``y`` of the shape of ``input``, and ``mean`` and ``var`` of that shape
        with size 1 along ``dims``.
    """

    @staticmethod
    def forward(ctx, input, dims, weight, bias, eps):
        # Step 1 as in _statistics, but the centred input becomes the output in place: every new
        # tensor as large as the input costs page faults, and this way the forward makes one.
        mean = input.mean(dims, keepdim=True)  # [.., 1 on dims, ..]
        out = input - mean
        n = math.prod(input.shape[d] for d in dims)  # entries per statistic
        var = torch.linalg.vector_norm(out, dim=dims, keepdim=True).square_().div_(n)  # no squared copy
        rstd = torch.rsqrt(var + eps)
        # steps 2-3: (x - mu) * a + beta, a = gamma r, one pass when a is small (per statistic or channel)
        # in place (torch.addcmul with a broadcast first operand is slower than two passes)
        if weight is None:
            out.mul_(rstd)
        elif math.prod(torch.broadcast_shapes(rstd.shape, weight.shape)) < input.numel():
            out.mul_(rstd * weight)  # a = gamma r is small: one per (statistic, channel)
        else:  # per-entry gamma (layer norm): gamma r would be as large as the input
            out.mul_(rstd).mul_(weight)
        if bias is not None:
            out.add_(bias)
        ctx.save_for_backward(input, mean, rstd, weight)
        ctx.dims, ctx.eps = dims, eps
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad, _grad_mean, _grad_var):
        x, mean, rstd, weight = ctx.saved_tensors  # x: input's shape; mean, rstd: 1 along dims
        dims, rank, bias_shape = ctx.dims, x.dim(), ctx.bias_shape
        if torch.is_grad_enabled():  # double backward: mean and rstd must depend on x in the new graph
            mean, var = _statistics(x, dims)
            rstd = torch.rsqrt(var + ctx.eps)
        n = math.prod(x.shape[d] for d in dims)
        need_x, need_w, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        grad_x = grad_w = grad_b = None
        w_shape = (1,) * rank if weight is None else (1,) * (rank - weight.dim()) + tuple(weight.shape)
        # Sum first over the normalised axes along which gamma is constant (all of them for batch and
        # instance norm, the spatial axis for group norm): g and g * x then shrink to one entry per
        # (statistic, parameter) pair, and every other sum is over small tensors.
        inner = tuple(d for d in dims if w_shape[d] == 1)
        outer = tuple(d for d in dims if w_shape[d] != 1)  # normalised axes along which gamma varies
        gx = grad * x  # the one full-size temporary of the sums
        sum_g = grad.sum(inner, keepdim=True) if inner else grad
        sum_gx = gx.sum(inner, keepdim=True) if inner else gx
        trailing = outer == tuple(range(rank - len(outer), rank)) and weight is not None and (
            weight.numel() == math.prod(x.shape[d] for d in outer))
        if outer and not inner and trailing:
            # gamma per entry of the trailing normalised axes (layer norm): the sums weighted by gamma
            # (over those axes) and by the statistics (over the others) are matrix-vector products
            g2, gx2, w1 = grad.reshape(-1, n), gx.reshape(-1, n), weight.reshape(n)  # [M, n], [M, n], [n]
            sum_ghat, sum_ghat_x = (g2 @ w1).view(rstd.shape), (gx2 @ w1).view(rstd.shape)
            if need_w:  # sum over the statistics of g x_hat = g x r - g mu r
                grad_w = (rstd.reshape(-1) @ gx2 - (mean * rstd).reshape(-1) @ g2).view(weight.shape)
        else:
            sum_ghat = sum_g if weight is None else (sum_g * weight).sum(outer, keepdim=True) if outer else (
                sum_g * weight)
            sum_ghat_x = sum_gx if weight is None else (sum_gx * weight).sum(outer, keepdim=True) if outer else (
                sum_gx * weight)
            if need_w:  # sum_inner g x_hat, then over the axes gamma is broadcast along
                grad_w = (rstd * sum_gx - mean * rstd * sum_g).sum_to_size(weight.shape)
        if need_x:
            sum_ghat_xhat = rstd * (sum_ghat_x - mean * sum_ghat)  # sum_S g_hat x_hat, [.., 1 on dims, ..]
            # dx = r (g_hat + x k1 + k0), per statistic k1 = -r sum_S(g_hat x_hat) / n, k0 = -sum_S(g_hat) / n - mu k1,
            # in three or four passes written into the memory of the spent g * x, unless a graph is being
            # recorded (double backward): each new full-size tensor costs page faults
            k1 = -rstd * sum_ghat_xhat / n
            k0 = -sum_ghat / n - mean * k1
            buffer = None if torch.is_grad_enabled() else gx
            if weight is None or math.prod(torch.broadcast_shapes(rstd.shape, w_shape)) < x.numel():
                grad_x = torch.mul(x, rstd * k1, out=buffer).add_(rstd * k0)  # gamma r is small: g (gamma r)
                grad_x.addcmul_(grad, rstd if weight is None else rstd * weight)
            else:  # per-entry gamma (layer norm): gamma r would be as large as the input
                grad_x = torch.mul(x, k1, out=buffer).add_(k0).addcmul_(grad, weight).mul_(rstd)
        if need_b:
            if inner and all(((1,) * (rank - len(bias_shape)) + tuple(bias_shape))[d] == 1 for d in inner):
                grad_b = sum_g.sum_to_size(bias_shape)
            else:
                grad_b = grad.sum_to_size(bias_shape)
        return grad_x, None, grad_w, grad_b, None


def _normalize(input, dims, weight, bias, eps):
    """Steps 1-3 through :class:`NormalizeFunction`: ``(output, mean, var)``, ``dims`` made non-negative."""
    return NormalizeFunction.apply(input, tuple(d % input.dim() for d in dims), weight, bias, eps)


def normalize(input, dims, weight=None, bias=None, eps=EPS):
    r"""The template: zero mean and unit variance over the axes ``dims``, then ``weight * x + bias``.

    Every index of the other axes gets its own mean and variance.  Checked against
    ``torch.nn.functional.layer_norm`` over the same axes moved to the end in ``tests/test_normalization.py``.

    Args:
        input: any shape, for instance ``[N, C, H, W]``.
        dims: an axis or a tuple of axes of ``input`` (negative ones count from the end).
        weight: :math:`\gamma`, broadcast against ``input``, or ``None``.
        bias: :math:`\beta`, broadcast against ``input``, or ``None``.
        eps: :math:`\epsilon`, added to the variance.

    Returns:
        The shape of ``input`` (or the broadcast shape, where ``weight`` or ``bias`` enlarge it).
    """
    check_floating(where="normalize", input=input, weight=weight, bias=bias)
    check_real(eps, "eps", where="normalize", gt=0)
    dims = check_ints((dims,) if isinstance(dims, int) else dims, "dims", where="normalize")
    rank = input.dim()
    if any(not -rank <= d < rank for d in dims):
        raise ValueError(f"dims {tuple(dims)} out of range for an input of rank {rank}")
    if len({d % rank for d in dims}) != len(dims):
        raise ValueError(f"dims {tuple(dims)} name an axis twice")
    out_shape = torch.broadcast_shapes(input.shape, *(t.shape for t in (weight, bias) if t is not None))
    if out_shape != input.shape:  # parameters that enlarge the output: autograd through the plain steps
        mean, var = _statistics(input, tuple(dims))
        return _whiten(input, mean, var, weight, bias, eps)
    return _normalize(input, dims, weight, bias, eps)[0]


# The notes' select(k, c, i, j), 0-based, for normalize_loop; group norm needs C/G as well.
SELECT = {
    "batch": lambda k, c, i, j, kk, cc, group: cc == c,
    "layer": lambda k, c, i, j, kk, cc, group: kk == k,
    "instance": lambda k, c, i, j, kk, cc, group: kk == k and cc == c,
    "group": lambda k, c, i, j, kk, cc, group: kk == k and cc // group == c // group,
}


def normalize_loop(input, select, *, num_groups=1, weight=None, bias=None, eps=EPS):
    r"""The notes' template literally: one mean and one variance per entry, over ``select`` (small inputs only).

    Checked against torch's four layers in ``tests/test_normalization.py``.

    Args:
        input: ``[N, C, H, W]``.
        select: ``"batch"``, ``"layer"``, ``"instance"`` or ``"group"``, the set of entries each
            statistic is taken over.
        num_groups: G, the number of groups of consecutive channels (``select="group"``); it must divide C.
        weight: :math:`\gamma`, per channel ``[C]`` as in the notes, or ``None``.
        bias: :math:`\beta`, per channel ``[C]``, or ``None``.
        eps: :math:`\epsilon`, added to the variance.

    Returns:
        ``[N, C, H, W]``.
    """
    check_floating(where="normalize_loop", input=input, weight=weight, bias=bias)
    check_real(eps, "eps", where="normalize_loop", gt=0)
    if input.dim() != 4:
        raise ValueError(f"input must have rank 4 [N, C, H, W], got rank {input.dim()}")
    if select not in SELECT:
        raise ValueError(f"select must be one of {tuple(SELECT)}, got {select!r}")
    n, c, h, w = input.shape
    check_int(num_groups, "number of groups G", where="normalize_loop", ge=1)
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
    r"""Batch normalization with the arguments of ``torch.nn.functional.batch_norm``.

    In training mode (or without running statistics) it normalises each channel over the batch
    and the spatial axes and, given ``running_mean`` and ``running_var``, updates them in place;
    in evaluation mode it normalises with them.  Checked against
    ``torch.nn.functional.batch_norm`` in ``tests/test_normalization.py``.

    Args:
        input: ``[N, C, *spatial]`` (``[N, C]`` for vectors).
        running_mean: ``[C]``, or ``None`` (together with ``running_var``).
        running_var: ``[C]``, or ``None``.
        weight: :math:`\gamma`, ``[C]``, or ``None``.
        bias: :math:`\beta`, ``[C]``, or ``None``.
        training: normalise with the batch's statistics (and update the running ones).
        momentum: m of the running averages, in [0, 1].
        eps: :math:`\epsilon`, added to the variance.

    Returns:
        The shape of ``input``.
    """
    _check_rank(input, 2, "[N, C, *spatial]", where="batch_norm")
    check_floating(where="batch_norm", input=input, running_mean=running_mean, running_var=running_var, weight=weight,
                   bias=bias)
    check_real(eps, "eps", where="batch_norm", gt=0)
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
    if training and running_mean is not None:
        check_real(momentum, "momentum", where="batch_norm", ge=0, le=1)
    out, mean, var = _normalize(input, (0, *range(2, rank)), weight, bias, eps)  # mean, var: [1, C, 1, ...]
    if training and running_mean is not None:
        _update_running(running_mean, running_var, mean.view(c), var.view(c), count, momentum)
    return out


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=EPS):
    r"""Layer normalization with the arguments of ``torch.nn.functional.layer_norm``.

    Normalises over the last ``len(normalized_shape)`` axes, with one affine parameter per entry
    as in torch.  Checked against ``torch.nn.functional.layer_norm`` in ``tests/test_normalization.py``.

    Args:
        input: ``[..., *normalized_shape]``, for instance ``[N, C, H, W]`` or tokens ``[N, T, d]``.
        normalized_shape: the shape of the last axes, an int or a tuple: ``(C, H, W)`` for the notes'
            layer norm of an image, ``d`` for the tokens of a transformer.
        weight: :math:`\gamma` of shape ``normalized_shape``, or ``None``.
        bias: :math:`\beta` of shape ``normalized_shape``, or ``None``.
        eps: :math:`\epsilon`, added to the variance.

    Returns:
        The shape of ``input``.
    """
    check_floating(where="layer_norm", input=input, weight=weight, bias=bias)
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
    r"""Instance normalization with the arguments of ``torch.nn.functional.instance_norm``.

    Each (example, channel) pair is normalised over its spatial axes.  With running statistics
    and ``use_input_stats``, their update uses the per-instance statistics averaged over the
    batch; with ``use_input_stats=False`` the running statistics normalise instead, as in
    evaluation-mode batch norm.  Checked against ``torch.nn.functional.instance_norm`` in
    ``tests/test_normalization.py``.

    Args:
        input: ``[N, C, *spatial]``, at least one spatial axis.
        running_mean: ``[C]``, or ``None`` (together with ``running_var``).
        running_var: ``[C]``, or ``None``.
        weight: :math:`\gamma`, ``[C]``, or ``None``.
        bias: :math:`\beta`, ``[C]``, or ``None``.
        use_input_stats: normalise with each instance's own statistics (and update the running ones).
        momentum: m of the running averages, in [0, 1].
        eps: :math:`\epsilon`, added to the variance.

    Returns:
        The shape of ``input``.
    """
    _check_rank(input, 3, "[N, C, *spatial]", where="instance_norm")
    check_floating(where="instance_norm", input=input, running_mean=running_mean, running_var=running_var,
                   weight=weight, bias=bias)
    check_real(eps, "eps", where="instance_norm", gt=0)
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
    if running_mean is not None:
        check_real(momentum, "momentum", where="instance_norm", ge=0, le=1)
    out, mean, var = _normalize(input, tuple(range(2, rank)), weight, bias, eps)  # mean, var: [N, C, 1, ...]
    if running_mean is not None:
        _update_running(running_mean, running_var, mean.view(n, c).mean(0), var.view(n, c).mean(0), count,
                        momentum)
    return out


def group_norm(input, num_groups, weight=None, bias=None, eps=EPS):
    r"""Group normalization with the arguments of ``torch.nn.functional.group_norm``.

    The C channels form G groups of C/G consecutive channels; each (example, group) is
    normalised over its channels and spatial axes, then ``weight`` and ``bias`` act per channel.
    Checked against ``torch.nn.functional.group_norm`` in ``tests/test_normalization.py``.

    Args:
        input: ``[N, C, *spatial]``.
        num_groups: G, which must divide C.
        weight: :math:`\gamma`, ``[C]``, or ``None``.
        bias: :math:`\beta`, ``[C]``, or ``None``.
        eps: :math:`\epsilon`, added to the variance.

    Returns:
        The shape of ``input``.
    """
    _check_rank(input, 2, "[N, C, *spatial]", where="group_norm")
    check_floating(where="group_norm", input=input, weight=weight, bias=bias)
    check_real(eps, "eps", where="group_norm", gt=0)
    check_int(num_groups, "number of groups G", where="group_norm", ge=1)
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise ValueError(f"channels C={c} are not divisible by the number of groups G={num_groups}")
    _check_channel_params(c, weight=weight, bias=bias)
    # [N, G, C/G, H * W]: one (example, group) per [n, g], normalised over its last two axes; the
    # per-channel parameters as [1, G, C/G, 1] broadcast against it (groups of consecutive channels)
    grouped = input.reshape(n, num_groups, c // num_groups, -1)
    weight, bias = (None if t is None else t.view(1, num_groups, -1, 1) for t in (weight, bias))
    return _normalize(grouped, (2, 3), weight, bias, eps)[0].view(input.shape)
