r"""Receptive fields of convolution stacks, theoretical and effective (Building blocks chapter).

Work along one spatial axis (the other is the same computation) and count input pixels
from 0. Layer :math:`l = 1, \dots, L` has filter size :math:`F_l`, stride :math:`S_l`,
zero padding :math:`P_l` and dilation :math:`D_l`, so its filter spans
:math:`\hat F_l = D_l (F_l - 1) + 1` entries of its input. For unit :math:`i` of layer
:math:`l` let the *receptive field* be the interval of input pixels it can depend on:
it has :math:`r_l` pixels and starts at pixel :math:`s_l + i\,j_l`, where the *jump*
:math:`j_l` is the distance in input pixels between neighbouring units of layer
:math:`l`. The input itself is layer 0, :math:`r_0 = j_0 = 1`, :math:`s_0 = 0`, and

.. math::

    r_l = r_{l-1} + (\hat F_l - 1)\, j_{l-1}, \qquad
    j_l = j_{l-1} S_l, \qquad
    s_l = s_{l-1} - P_l\, j_{l-1}

(Dumoulin and Visin 2016; Araujo, Norris and Sim 2019). Unrolled,
:math:`r_L = 1 + \sum_{l=1}^{L} (\hat F_l - 1) \prod_{m<l} S_m`; for :math:`L` layers
of size :math:`F` and stride 1, :math:`r_L = L(F - 1) + 1`. A negative start lies in the
zero padding. The interval is the *extent*: when a stride exceeds a filter size, or with
dilation, some pixels inside it are never read.

The *effective* receptive field (Luo, Li, Urtasun and Zemel 2016) is the map
:math:`g_{u,v} = \partial y / \partial x_{u,v}` of one output unit :math:`y` (the centre
unit, by default), obtained by back-propagating a gradient of 1 placed on that unit and
0 elsewhere. Its nonzero support lies inside the theoretical receptive field; its
magnitude shows how much each pixel matters. Its extent is measured by the standard
deviation of the normalised magnitude :math:`p = |g| / \sum |g|` along each axis,

.. math:: \sigma_\text{rows}^2 = \sum_{u,v} p_{u,v}\,(u - \mu_\text{rows})^2,
    \qquad \mu_\text{rows} = \sum_{u,v} p_{u,v}\, u,

and its Gaussian shape by the :math:`R^2` of the Gaussian with the same mean and
standard deviation as a 1D profile.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from visarch.checks import check_int

__all__ = ["Layer", "ReceptiveField", "receptive_field", "conv_stack", "effective_receptive_field",
           "gradient_receptive_field", "erf_std", "gaussian_fit_r2"]


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution or pooling layer along one axis: filter size F, stride S, padding P, dilation D."""

    kernel_size: int  #: F, the filter size (or pooling window)
    stride: int = 1  #: S
    padding: int = 0  #: P, the zeros added at each end
    dilation: int = 1  #: D, the distance between neighbouring filter taps

    def __post_init__(self):
        for name, value, low in (("kernel_size F", self.kernel_size, 1), ("stride S", self.stride, 1),
                                 ("padding P", self.padding, 0), ("dilation D", self.dilation, 1)):
            check_int(value, name, where=type(self).__name__, ge=low)

    @property
    def span(self) -> int:
        """Input entries one filter position covers, D(F - 1) + 1."""
        return self.dilation * (self.kernel_size - 1) + 1


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of the units of one layer: size r, jump j and start s of unit 0."""

    size: int  #: r, the number of input pixels in the receptive field
    jump: int  #: j, the distance in input pixels between neighbouring units
    start: int  #: s, the first input pixel of unit 0 (negative in the zero padding)

    def span(self, index: int) -> tuple[int, int]:
        """First and last input pixel of the receptive field of unit ``index`` (0-based), both included."""
        first = self.start + index * self.jump
        return first, first + self.size - 1

    @property
    def centre(self) -> float:
        """Input coordinate of the centre of unit 0's receptive field."""
        return self.start + (self.size - 1) / 2


def receptive_field(layers) -> list[ReceptiveField]:
    """Receptive field after each layer of a stack, by the recursion of the module docstring.

    Checked against the support of torch's input gradients in ``tests/test_receptive_field.py``.

    Args:
        layers: a non-empty sequence of :class:`~visarch.receptive_field.Layer`, first layer first.

    Returns:
        One :class:`~visarch.receptive_field.ReceptiveField` per layer; entry ``l - 1`` belongs to layer ``l``.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("the stack must hold at least one layer")
    size, jump, start, fields = 1, 1, 0, []
    for layer in layers:
        if not isinstance(layer, Layer):
            raise TypeError(f"each layer must be a Layer, got {type(layer).__name__}")
        size, start = size + (layer.span - 1) * jump, start - layer.padding * jump
        jump *= layer.stride
        fields.append(ReceptiveField(size, jump, start))
    return fields


def conv_stack(layers, *, channels: int = 1, nonlinearity: type[nn.Module] | None = None,
               bias: bool = False) -> nn.Sequential:
    """``torch.nn.Conv2d`` layers with square filters, one per :class:`~visarch.receptive_field.Layer`.

    The stack maps ``[N, channels, H, W]`` to ``[N, channels, H', W']``.

    Args:
        layers: a non-empty sequence of :class:`~visarch.receptive_field.Layer`.
        channels: the input and output channels of every layer.
        nonlinearity: a module class such as ``nn.ReLU``, which follows every layer but the last; or ``None``.
        bias: whether the convolutions have biases.

    Returns:
        A ``torch.nn.Sequential``, initialised by torch's global generator.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("the stack must hold at least one layer")
    check_int(channels, "channels", where="conv_stack", ge=1)
    modules = []
    for n, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"each layer must be a Layer, got {type(layer).__name__}")
        modules.append(nn.Conv2d(channels, channels, layer.kernel_size, stride=layer.stride,
                                 padding=layer.padding, dilation=layer.dilation, bias=bias))
        if nonlinearity is not None and n < len(layers) - 1:
            modules.append(nonlinearity())
    return nn.Sequential(*modules)


def gradient_receptive_field(model: nn.Module, input_shape, *, inputs: torch.Tensor | None = None,
                             unit: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Gradient of one output unit of ``model`` with respect to its input, ``[N, C, H, W]``.

    The gradient of the sum over the batch of that unit is taken once: images of a batch do
    not interact in a stack of convolutions and pointwise nonlinearities, so row ``n`` of
    the result is the gradient for image ``n`` alone.

    Args:
        model: maps ``[N, C, H, W]`` to ``[N, C', H', W']``.
        input_shape: ``(C, H, W)``.
        inputs: a batch ``[N, C, H, W]`` of that shape (default: one image of ones, in the dtype of the
            model's parameters).
        unit: ``(channel, row, column)`` of the output, by default channel 0 at the centre.

    Returns:
        ``[N, C, H, W]``, the effective receptive field of the unit for each image.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(input_shape, (tuple, list, torch.Size)) or len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
    for name, value in zip(("C", "H", "W"), input_shape, strict=True):
        check_int(value, f"input_shape {name}", where="gradient_receptive_field", ge=1)
    if inputs is None:
        dtype = next(model.parameters(), torch.empty(0)).dtype
        inputs = torch.ones(1, *input_shape, dtype=dtype)
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if inputs.dim() != 4 or tuple(inputs.shape[1:]) != tuple(input_shape):
        raise ValueError(f"inputs must have shape [N, {', '.join(map(str, input_shape))}], "
                         f"got {list(inputs.shape)}")
    x = inputs.detach().clone().requires_grad_(True)  # [N, C, H, W]
    y = model(x)  # [N, C', H', W']
    if unit is None:
        unit = (0, y.shape[2] // 2, y.shape[3] // 2)
    if len(unit) != 3 or not all(0 <= u < n for u, n in zip(unit, y.shape[1:], strict=True)):
        raise ValueError(f"unit (channel, row, column) must index the output of shape "
                         f"{list(y.shape[1:])}, got {unit}")
    (grad,) = torch.autograd.grad(y[:, unit[0], unit[1], unit[2]].sum(), x)
    return grad


def effective_receptive_field(make_model, input_shape, *, seeds, input_seeds, batch: int) -> torch.Tensor:
    r"""The effective receptive field of a family of random networks, ``[H, W]`` (Luo et al., 2016).

    For each seed the network ``make_model()`` is initialised under ``torch.manual_seed(seed)``, a batch
    of standard normal images is drawn from a generator seeded with the matching input seed, and the
    squared gradient of the centre unit (:func:`gradient_receptive_field`) is summed over the input
    channels and averaged over the images; the result is the mean over the seeds,

    .. math:: \mathrm{ERF}(i, j) = \frac{1}{S\,N} \sum_{s=1}^{S} \sum_{n=1}^{N} \sum_{c}
        \left(\frac{\partial y^{(s)}_{n,\text{centre}}}{\partial x_{n,c,i,j}}\right)^2.

    The caller's random state is left as it was.

    Args:
        make_model: builds one network ``[N, C, H, W] -> [N, C', H', W']`` from torch's global generator.
        input_shape: ``(C, H, W)``.
        seeds: the initialisation seeds, one network each.
        input_seeds: the seed of each network's batch of inputs, as many as ``seeds``.
        batch: N, the images per network.

    Returns:
        ``[H, W]``, float32 unless the networks compute in another dtype.
    """
    seeds, input_seeds = list(seeds), list(input_seeds)
    if not seeds or len(seeds) != len(input_seeds):
        raise ValueError(f"seeds and input_seeds must be non-empty and of one length, got {len(seeds)} "
                         f"and {len(input_seeds)}")
    check_int(batch, "batch", where="effective_receptive_field", ge=1)
    total = 0.0
    with torch.random.fork_rng(devices=[]):
        for seed, input_seed in zip(seeds, input_seeds, strict=True):
            torch.manual_seed(seed)
            model = make_model()
            x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(input_seed))
            total = total + (gradient_receptive_field(model, input_shape, inputs=x) ** 2).sum(1).mean(0)  # [H, W]
    return total / len(seeds)


def _normalised(grad_map: torch.Tensor) -> torch.Tensor:
    if not isinstance(grad_map, torch.Tensor) or not grad_map.is_floating_point():
        raise TypeError("the gradient map must be a floating-point torch.Tensor")
    mass = grad_map.abs().sum()
    if mass == 0:
        raise ValueError("the gradient map is zero everywhere: it has no extent")
    return grad_map.abs() / mass


def erf_std(grad_map: torch.Tensor) -> tuple[float, float]:
    """Standard deviations (rows, columns) of the normalised magnitude of a ``[H, W]`` map.

    Args:
        grad_map: ``[H, W]``, floating point, not zero everywhere (a gradient map, say).

    Returns:
        ``(sigma_rows, sigma_cols)``, in pixels.
    """
    if grad_map.dim() != 2:
        raise ValueError(f"the gradient map must have shape [H, W], got {list(grad_map.shape)}")
    p = _normalised(grad_map)  # [H, W], sums to 1
    stds = []
    for axis in (0, 1):
        marginal = p.sum(1 - axis)  # [H] or [W]
        u = torch.arange(marginal.numel(), dtype=p.dtype)
        mean = (marginal * u).sum()
        stds.append(math.sqrt(float((marginal * (u - mean) ** 2).sum())))
    return stds[0], stds[1]


def gaussian_fit_r2(profile: torch.Tensor) -> float:
    r""":math:`R^2` of the Gaussian with the moments of a nonnegative 1D ``profile``.

    The Gaussian :math:`a\,e^{-(u - \mu)^2 / 2\sigma^2}` takes :math:`\mu, \sigma` from
    the normalised profile and :math:`a` by least squares;
    :math:`R^2 = 1 - \sum (\text{profile} - \text{fit})^2 / \sum (\text{profile} - \overline{\text{profile}})^2`.

    Args:
        profile: ``[L]``, floating point, with some width (not a single spike).

    Returns:
        :math:`R^2`, 1 for a perfect fit.
    """
    if profile.dim() != 1:
        raise ValueError(f"the profile must have shape [L], got {list(profile.shape)}")
    p = _normalised(profile)  # [L]
    u = torch.arange(p.numel(), dtype=p.dtype)
    mean = (p * u).sum()
    var = (p * (u - mean) ** 2).sum()
    if var == 0:
        raise ValueError("the profile is a single spike: it has no width to fit")
    shape = torch.exp(-((u - mean) ** 2) / (2 * var))
    fit = shape * (p * shape).sum() / (shape * shape).sum()
    return float(1 - ((p - fit) ** 2).sum() / ((p - p.mean()) ** 2).sum())
