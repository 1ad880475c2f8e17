"""Normalization modules with the constructor arguments, parameters and buffers of ``torch.nn``.

Parameter and buffer names (``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``) are torch's, so ``load_state_dict`` moves state between these modules
and torch's in both directions.  The arithmetic is in :mod:`visarch.functional.normalization`.
"""

from __future__ import annotations

import torch
from torch import nn

from visarch.checks import check_int, check_ints, check_real
from visarch.functional import normalization as N

__all__ = ["BatchNorm2d", "InstanceNorm2d", "LayerNorm", "GroupNorm"]


class _RunningStatsNorm(nn.Module):
    """What batch and instance norm share: per-channel affine parameters and running statistics."""

    def __init__(self, num_features, *, eps, momentum, affine, track_running_stats):
        super().__init__()
        check_int(num_features, "num_features C", where=type(self).__name__, ge=1)
        check_real(eps, "eps", where=type(self).__name__, gt=0)
        if momentum is not None:
            check_real(momentum, "momentum", where=type(self).__name__, ge=0, le=1)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))  # gamma, [C]
            self.bias = nn.Parameter(torch.zeros(num_features))  # beta, [C]
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _check_input(self, x, ranks):
        if x.dim() not in ranks:
            raise ValueError(f"{type(self).__name__} expects input of rank {' or '.join(map(str, ranks))}, "
                             f"got rank {x.dim()}")
        channels = x.shape[1] if x.dim() == max(ranks) else x.shape[0]
        if channels != self.num_features:
            raise ValueError(f"input has {channels} channels, expected num_features C={self.num_features}")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm2d(_RunningStatsNorm):
    r"""Batch normalization of ``[N, C, H, W]``: per channel, over the batch and the pixels.

    ``forward`` maps ``[N, C, H, W]`` to ``[N, C, H, W]`` with
    :func:`~visarch.functional.normalization.batch_norm`.  The arguments, parameters and buffers are
    those of ``torch.nn.BatchNorm2d``, against which it is checked in ``tests/test_normalization.py``.

    Args:
        num_features: C, the number of channels.
        eps: :math:`\epsilon`, added to the variance.
        momentum: m of the running averages; ``None`` makes them a cumulative average over all
            batches seen (torch's convention), by taking ``1 / num_batches_tracked`` as the momentum
            of each update.
        affine: learn ``weight`` :math:`\gamma` and ``bias`` :math:`\beta`, ``[C]`` each.
        track_running_stats: keep ``running_mean`` and ``running_var`` (``[C]``) for evaluation mode;
            without them every call normalises with the batch's statistics.
    """

    def __init__(self, num_features, *, eps=N.EPS, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats)

    def _momentum(self):
        """The momentum of this step's update; counts the step when statistics are tracked."""
        if not (self.training and self.track_running_stats):
            return 0.0  # no update happens
        self.num_batches_tracked.add_(1)
        return 1.0 / int(self.num_batches_tracked) if self.momentum is None else self.momentum

    def forward(self, x):
        self._check_input(x, (4,))
        momentum = self._momentum()
        # training, or no stored statistics: normalise with the batch's own
        use_batch = self.training or self.running_mean is None
        return N.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=use_batch, momentum=momentum, eps=self.eps)


class InstanceNorm2d(_RunningStatsNorm):
    r"""Instance normalization of ``[N, C, H, W]`` (or ``[C, H, W]``): per example and channel, over the pixels.

    ``forward`` maps its input to the same shape with
    :func:`~visarch.functional.normalization.instance_norm`.  The arguments, parameters and buffers
    are those of ``torch.nn.InstanceNorm2d``, against which it is checked in ``tests/test_normalization.py``.

    Args:
        num_features: C, the number of channels.
        eps: :math:`\epsilon`, added to the variance.
        momentum: m of the running averages; unlike batch norm, ``None`` means no update of the
            running statistics (torch's convention), and ``num_batches_tracked`` stays 0.
        affine: learn ``weight`` :math:`\gamma` and ``bias`` :math:`\beta`, ``[C]`` each.
        track_running_stats: keep running statistics, and normalise with them in evaluation mode.
    """

    def __init__(self, num_features, *, eps=N.EPS, momentum=0.1, affine=False, track_running_stats=False):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats)

    def forward(self, x):
        self._check_input(x, (3, 4))
        unbatched = x.dim() == 3
        x = x.unsqueeze(0) if unbatched else x
        y = N.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_input_stats=self.training or not self.track_running_stats,
                            momentum=0.0 if self.momentum is None else self.momentum, eps=self.eps)
        return y[0] if unbatched else y


class LayerNorm(nn.Module):
    r"""Layer normalization over the last axes, ``normalized_shape``, with one affine pair per entry (as torch).

    ``forward`` maps ``[..., *normalized_shape]`` to the same shape with
    :func:`~visarch.functional.normalization.layer_norm`.  The arguments and parameters are those of
    ``torch.nn.LayerNorm``, against which it is checked in ``tests/test_normalization.py``.

    Args:
        normalized_shape: the shape of the last axes, an int or a tuple, for instance ``(C, H, W)``
            or the token size d.
        eps: :math:`\epsilon`, added to the variance.
        elementwise_affine: learn ``weight`` :math:`\gamma` (ones at the start) of shape ``normalized_shape``.
        bias: learn ``bias`` :math:`\beta` (zeros at the start) too, with ``elementwise_affine``.
    """

    def __init__(self, normalized_shape, *, eps=N.EPS, elementwise_affine=True, bias=True):
        super().__init__()
        shape = check_ints((normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape,
                           "normalized_shape", where=type(self).__name__, ge=1)
        check_real(eps, "eps", where=type(self).__name__, gt=0)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = nn.Parameter(torch.ones(shape)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(shape)) if elementwise_affine and bias else None

    def forward(self, x):
        return N.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(nn.Module):
    r"""Group normalization: ``num_groups`` groups of consecutive channels, per example, with per-channel affine.

    ``forward`` maps ``[N, C, *spatial]`` to the same shape with
    :func:`~visarch.functional.normalization.group_norm`.  The arguments and parameters are those of
    ``torch.nn.GroupNorm``, against which it is checked in ``tests/test_normalization.py``.

    Args:
        num_groups: G, which must divide C.
        num_channels: C, the number of channels.
        eps: :math:`\epsilon`, added to the variance.
        affine: learn ``weight`` :math:`\gamma` and ``bias`` :math:`\beta`, ``[C]`` each.
    """

    def __init__(self, num_groups, num_channels, *, eps=N.EPS, affine=True):
        super().__init__()
        check_int(num_groups, "number of groups G", where=type(self).__name__, ge=1)
        check_int(num_channels, "num_channels C", where=type(self).__name__, ge=1)
        if num_channels % num_groups:
            raise ValueError(f"num_channels C={num_channels} is not divisible by num_groups G={num_groups}")
        check_real(eps, "eps", where=type(self).__name__, gt=0)
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = nn.Parameter(torch.ones(num_channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels)) if affine else None

    def forward(self, x):
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"input must be [N, C, *] with C={self.num_channels} channels, got shape "
                             f"{tuple(x.shape)}")
        return N.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
