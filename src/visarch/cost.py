r"""Closed-form parameter and multiply-accumulate counts: of layers, and of whole networks from their configs.

(Building blocks, section "Grouped, depthwise and separable convolution".)

A 2D convolution from :math:`C` to :math:`C'` channels with :math:`G` groups holds the filter bank
:math:`\mathbf{W} \in \mathbb{R}^{C' \times C/G \times F_h \times F_w}` and the bias
:math:`\mathbf{b} \in \mathbb{R}^{C'}`, so

.. math::

    \#\text{params} = C' \cdot \frac{C}{G} \cdot F_h F_w \;+\; C' \;[\text{bias}].

Each of its :math:`C' H' W'` output values is a dot product of length :math:`(C/G) F_h F_w`,
so one image costs

.. math::

    \#\text{MACs} = C' H' W' \cdot \frac{C}{G} \cdot F_h F_w

multiply-accumulates (the :math:`C' H' W'` bias additions are not counted, as in
``torch.utils.flop_counter``, which reports :math:`2 \times \#\text{MACs}` FLOPs).
The weight count and the MAC count are exactly :math:`G` times smaller than for
:math:`G = 1`; the parameter count with the bias is not, since the :math:`C'`
biases do not shrink.

*Depthwise* convolution is the case :math:`G = C`, :math:`C' = mC` (channel multiplier :math:`m`):
:math:`C' F_h F_w` weights.  A *depthwise separable* convolution is a depthwise layer
(:math:`C \to mC`, filter :math:`F`, stride :math:`S`, padding :math:`P`) followed by a pointwise
(:math:`1 \times 1`) layer :math:`mC \to C'`:

.. math::

    \#\text{params} = mC F_h F_w + C' m C, \qquad
    \#\text{MACs} = H' W' \left(mC F_h F_w + C' m C\right),

plus :math:`mC + C'` biases.  For :math:`m = 1` and a square filter, separable over standard
costs :math:`\frac{C F^2 + C' C}{C' C F^2} = \frac{1}{C'} + \frac{1}{F^2}`
(MobileNets, Howard et al. 2017).

These are the formulas the book states; ``tests/test_cost.py`` checks them
against ``torch.nn.Conv2d`` and ``torch.utils.flop_counter.FlopCounterMode``.
``parameter_count`` and ``model_macs`` are the measured side that the chapters compare such closed
forms with: ``model_macs`` runs a whole network once under ``FlopCounterMode`` (on the ``meta``
device, so a 20-GMAC VGG costs nothing) and halves the count, which gives the multiply-accumulates
that papers call "FLOPs" (ResNet-50's "3.8-4.1 GFLOPs", RegNet's "400MF"), and ``gmacs`` gives it in
billions for one image.  Elementwise work (activations, normalization, pooling, the bias additions) is not
counted, as in the papers.  ``layer_costs`` reads a network's table from the same single pass: the input and
output shapes, parameters and MACs of the stages or layers one names.

The closed forms of whole networks follow, one per model configuration, built from the forms of their layers
(linear, norm, attention, encoder block, residual, Inception, inverted residual, video blocks, ...); each takes
the model's config (any object with the fields of the named config class, so this floor imports no model),
and where an architecture is defined by a table of the model's module (VGG's columns, GoogLeNet's modules,
MobileNet's blocks, TimeSformer's attention schemes) the caller passes the table or the number read from it.
``tests/test_cost_models.py`` checks them against published counts, against torch's own layers and against the
networks built on the meta device for the registry's configs and for random ones.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from visarch.checks import check_bool, check_int, check_real, pair
from visarch.nn.nonlocal_block import MODES as NONLOCAL_MODES

__all__ = ["LayerCost", "anynet_macs", "attention_macs", "attention_parameters", "auxiliary_head_parameters",
           "basic_block_parameters", "bottleneck_parameters", "c3d_block_parameters", "clip_parameters", "conv_macs",
           "conv_parameters", "convnext_block_parameters", "convnext_parameters", "cvt_macs", "cvt_parameters",
           "densenet_parameters", "efficientnet_parameters", "encoder_block_parameters", "forward_macs", "gmacs",
           "googlenet_parameters", "inception_parameters", "inverted_residual_parameters", "layer_costs",
           "linear_parameters", "mobilenet_v1_parameters", "mobilenet_v2_parameters", "model_macs",
           "nonlocal_block_parameters", "nonlocal_macs", "norm_parameters", "parameter_count",
           "preact_bottleneck_resnet_cost", "r2plus1d_block_parameters", "r2plus1d_mid_channels", "resnet_parameters",
           "separable_conv_macs", "separable_conv_parameters", "squeeze_excitation_parameters", "swin_parameters",
           "timesformer_parameters", "unet_parameters", "unet_res_block_parameters", "vatt_parameters", "vgg_macs",
           "vgg_parameters", "video_net_parameters", "vit_parameters", "wide_resnet_parameters"]


def _check_layer(c_in, c_out, groups, *, where):
    """Validate channel counts and groups; return ``C/G``."""
    check_int(c_in, "input channels C", where=where, ge=1)
    check_int(c_out, "output channels C'", where=where, ge=1)
    check_int(groups, "number of groups G", where=where, ge=1)
    if c_in % groups:
        raise ValueError(f"input channels C={c_in} are not divisible by groups G={groups}")
    if c_out % groups:
        raise ValueError(f"output channels C'={c_out} are not divisible by groups G={groups}")
    return c_in // groups


def conv_parameters(c_in, c_out, kernel_size, *, groups=1, bias=True) -> int:
    r"""Number of parameters of ``torch.nn.Conv2d(c_in, c_out, kernel_size, groups=groups, bias=bias)``.

    .. math:: C' \cdot (C/G) \cdot F_h F_w + C' \,[\text{bias}]

    A 1D convolution with filter length F has the count of ``kernel_size=(1, F)``.  Checked against
    ``torch.nn.Conv2d`` in ``tests/test_cost.py``.

    Args:
        c_in: C, the input channels.
        c_out: C', the output channels.
        kernel_size: F or ``(F_h, F_w)``.
        groups: G, which must divide C and C'.
        bias: count the C' biases.
    """
    c_per_group = _check_layer(c_in, c_out, groups, where="conv_parameters")
    fh, fw = pair(kernel_size, "kernel_size F", where="conv_parameters", ge=1)
    check_bool(bias, "bias", where="conv_parameters")
    return c_out * c_per_group * fh * fw + (c_out if bias else 0)


def conv_macs(c_in, c_out, kernel_size, output_size, *, groups=1) -> int:
    r"""Multiply-accumulates of ``torch.nn.Conv2d(c_in, c_out, kernel_size, groups=groups)`` on one image.

    .. math:: C' H' W' \cdot (C/G) \cdot F_h F_w

    Stride and padding enter only through the output size.  Bias additions are not counted.  Checked
    against ``torch.utils.flop_counter.FlopCounterMode`` in ``tests/test_cost.py``.

    Args:
        c_in: C, the input channels.
        c_out: C', the output channels.
        kernel_size: F or ``(F_h, F_w)``.
        output_size: H' or ``(H', W')``, the size of the *output* (see
            :func:`~visarch.functional.conv.conv_output_size`).
        groups: G, which must divide C and C'.
    """
    c_per_group = _check_layer(c_in, c_out, groups, where="conv_macs")
    fh, fw = pair(kernel_size, "kernel_size F", where="conv_macs", ge=1)
    h_out, w_out = pair(output_size, "output_size H'", where="conv_macs", ge=1)
    return c_out * h_out * w_out * c_per_group * fh * fw


def separable_conv_parameters(c_in, c_out, kernel_size, *, multiplier=1, bias=True) -> int:
    r"""Parameters of a depthwise separable convolution: depthwise ``C -> mC``, then pointwise ``mC -> C'``.

    .. math:: mC F_h F_w + C' m C \;+\; (mC + C') \,[\text{bias}]

    Checked against the two ``torch.nn.Conv2d`` layers in ``tests/test_cost.py``.

    Args:
        c_in: C, the input channels.
        c_out: C', the output channels of the pointwise layer.
        kernel_size: the depthwise filter, F or ``(F_h, F_w)``.
        multiplier: the channel multiplier m of the depthwise layer (``groups=C``, ``C * m`` output channels).
        bias: count the biases of both layers.
    """
    c_mid = c_in * check_int(multiplier, "channel multiplier m", where="separable_conv_parameters", ge=1)
    return conv_parameters(c_in, c_mid, kernel_size, groups=c_in, bias=bias) + conv_parameters(
        c_mid, c_out, 1, bias=bias
    )


def separable_conv_macs(c_in, c_out, kernel_size, output_size, *, multiplier=1) -> int:
    r"""Multiply-accumulates of a depthwise separable convolution on one image.

    .. math:: H' W' \left(mC F_h F_w + C' m C\right)

    Checked against ``torch.utils.flop_counter.FlopCounterMode`` in ``tests/test_cost.py``.

    Args:
        c_in: C, the input channels.
        c_out: C', the output channels of the pointwise layer.
        kernel_size: the depthwise filter, F or ``(F_h, F_w)``.
        output_size: H' or ``(H', W')``, the output of the depthwise layer, which the pointwise layer keeps.
        multiplier: the channel multiplier m of the depthwise layer.
    """
    c_mid = c_in * check_int(multiplier, "channel multiplier m", where="separable_conv_macs", ge=1)
    return conv_macs(c_in, c_mid, kernel_size, output_size, groups=c_in) + conv_macs(
        c_mid, c_out, 1, output_size
    )


def parameter_count(module) -> int:
    """The number of entries in ``module``'s parameters, a parameter shared by several submodules counted once.

    ``module.parameters()`` yields a shared parameter once; the count works on the ``meta`` device.
    """
    return sum(p.numel() for p in module.parameters())


def model_macs(model, input_size, *, device="meta") -> int:
    """Multiply-accumulates of one forward pass of ``model`` on a batch of shape ``input_size``.

    Half of what ``torch.utils.flop_counter.FlopCounterMode`` counts, since torch reports two FLOPs
    per multiply-accumulate of a convolution, linear layer or matrix product.  With the default
    ``device="meta"`` the model must have been built on the meta device (``with torch.device("meta")``):
    no memory is allocated and no arithmetic is done.  The model is put in eval mode.

    Args:
        model: the ``torch.nn.Module``.
        input_size: the shape of the input batch, e.g. ``(1, 3, 224, 224)`` for ``[N, C, H, W]``.
        device: where the input is made, ``"meta"`` or the model's device.
    """
    if not isinstance(input_size, (tuple, list)) or not all(isinstance(n, int) and n > 0 for n in input_size):
        raise ValueError(f"input_size must be a tuple of positive ints, got {input_size!r}")
    return forward_macs(model.eval(), torch.empty(input_size, device=device))


def forward_macs(fn, *args, **kwargs) -> int:
    """Multiply-accumulates that ``FlopCounterMode`` counts while ``fn(*args, **kwargs)`` runs once without autograd.

    That is half its FLOPs, two per multiply-accumulate of a convolution, linear layer or matrix product
    (elementwise work is not counted).  ``fn`` is a module or any function of tensors, real or on the meta
    device, called with ``args`` and ``kwargs``; a module keeps its train or eval mode.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a module or a function, got {type(fn).__name__}")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() // 2


def gmacs(model, image_size: int = 224, *, in_channels: int = 3, device: str = "meta") -> float:
    """Multiply-accumulates of ``model`` on one ``image_size`` x ``image_size`` image, in billions.

    :func:`model_macs` of a batch of one image, divided by :math:`10^9`: the "GFLOPs" of the papers' tables,
    which count one multiply-add as one operation.  The model must have been built on ``device`` (the meta
    device by default, see :func:`model_macs`).

    Args:
        model: the network, taking ``[1, in_channels, image_size, image_size]``.
        image_size: the side of the square image.
        in_channels: its channels.
        device: where the input is made, ``"meta"`` or the model's device.
    """
    check_int(image_size, "image_size", where="gmacs", ge=1)
    check_int(in_channels, "in_channels", where="gmacs", ge=1)
    return model_macs(model, (1, in_channels, image_size, image_size), device=device) / 1e9


class LayerCost(NamedTuple):
    """What one submodule received, returned and cost in a forward pass (see :func:`layer_costs`)."""

    name: str  #: the submodule's qualified name in the model (``""`` for the model itself)
    module: torch.nn.Module  #: the submodule
    input_shape: tuple[int, ...]  #: the shape of its first tensor input at its first call, without the batch axis
    output_shape: tuple[int, ...] | None  #: the same for its (first) output tensor; None if it returned none
    parameters: int  #: its parameter count (:func:`parameter_count`)
    macs: int  #: the multiply-accumulates it did, over all its calls, for the whole batch


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        return next((v for v in map(_first_tensor, value) if v is not None), None)
    return None


def layer_costs(model, input_size, modules, *, device: str = "meta") -> list[LayerCost]:
    """The input and output shapes, parameters and multiply-accumulates of chosen submodules, from one forward pass.

    The per-stage or per-layer table of a network (its stages' output shapes, a paper's layer table, the
    MACs of each kind of layer) is read off one pass of ``model`` on a batch of shape ``input_size``,
    without autograd and in eval mode.  Shapes come from forward hooks; the MACs from
    ``torch.utils.flop_counter.FlopCounterMode``'s per-module totals, halved (see :func:`forward_macs`).
    The records follow the order in which the submodules first ran, so a table reads top to bottom as the
    network computes.  A submodule that ran more than once keeps the shapes of its first call and the MACs of
    all of them; one that did not run is left out.

    Args:
        model: the ``torch.nn.Module``, built on ``device`` (the meta device costs no memory or arithmetic).
        input_size: the shape of the input batch, e.g. ``(1, 3, 224, 224)``.
        modules: the submodules to record: an iterable of modules of ``model``, or a type or tuple of types
            (every submodule of one of those types).
        device: where the input is made, ``"meta"`` or the model's device.

    Returns:
        One :class:`LayerCost` per recorded submodule.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(input_size, (tuple, list)) or not all(isinstance(n, int) and n > 0 for n in input_size):
        raise ValueError(f"input_size must be a tuple of positive ints, got {input_size!r}")
    names = {m: n for n, m in model.named_modules()}  # a module shared by several parents, under its first name
    if isinstance(modules, type) or (isinstance(modules, tuple) and modules and all(isinstance(t, type)
                                                                                   for t in modules)):
        chosen = [m for m in names if isinstance(m, modules)]
    else:
        chosen = list(modules)
        strangers = [type(m).__name__ for m in chosen if m not in names]
        if strangers:
            raise ValueError(f"modules must be submodules of the model; not in it: {', '.join(strangers)}")
    seen = {}

    def record(module, args, output):  # returns None: the output passes on unchanged
        if module not in seen:
            x, y = _first_tensor(args), _first_tensor(output)
            seen[module] = (tuple(x.shape[1:]) if x is not None else (), None if y is None else tuple(y.shape[1:]))

    handles = [m.register_forward_hook(record) for m in dict.fromkeys(chosen)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(torch.empty(input_size, device=device))
    finally:
        for h in handles:
            h.remove()
    flops = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    root = type(model).__name__
    return [LayerCost(names[m], m, *seen[m], parameter_count(m),
                      flops.get(f"{root}.{names[m]}" if names[m] else root, 0) // 2) for m in seen]


# --- closed forms of whole networks, from their configs ---------------------------------------------------------
# Each takes the model's config (any object with the fields of the named config class, so this floor imports
# no model) and counts parameters part by part from the architecture.  tests/test_cost_models.py checks them
# against the published counts and against the networks built on the meta device.

def norm_parameters(channels: int) -> int:
    """A batch norm or LayerNorm over ``channels`` features: a scale and a shift each, 2C."""
    return 2 * check_int(channels, "channels C", where="norm_parameters", ge=1)


def linear_parameters(in_features: int, out_features: int, *, bias: bool = True) -> int:
    """A linear layer ``in -> out``: ``in * out`` weights, plus ``out`` biases."""
    check_bool(bias, "bias", where="linear_parameters")
    n_in = check_int(in_features, "in_features", where="linear_parameters", ge=1)
    n_out = check_int(out_features, "out_features", where="linear_parameters", ge=1)
    return n_in * n_out + (n_out if bias else 0)


def attention_parameters(dim: int) -> int:
    r"""Multi-head self-attention of width D with biases: queries, keys, values and output map, :math:`4D^2 + 4D`.

    The number of heads K does not enter: K heads of D/K dimensions fill the same D x D maps.
    """
    return 4 * linear_parameters(dim, dim)


def attention_macs(tokens: int, context: int, dim: int) -> int:
    r"""Multiply-accumulates of one multi-head attention of width D in which each of T tokens attends to S tokens.

    .. math:: 4TD^2 + 2TSD:

    the query, key, value and output maps, :math:`TD^2` each (a self-attention computes the keys and values
    of its own T tokens), then the scores :math:`TSD` and the weighted sum :math:`TSD`; the number of heads
    does not enter.  An attention over sequences of length L has :math:`S = L` (TimeSformer's schemes
    attend along several axes in turn, each with its own S).  Checked against ``torch.utils.flop_counter``
    on ``torch.nn.MultiheadAttention`` in ``tests/test_cost_models.py``.

    Args:
        tokens: T, the tokens that attend (all the sequences of the batch together).
        context: S, the tokens each one attends to.
        dim: D.
    """
    t = check_int(tokens, "tokens T", where="attention_macs", ge=1)
    s = check_int(context, "context S", where="attention_macs", ge=1)
    d = check_int(dim, "dim D", where="attention_macs", ge=1)
    return 4 * t * d * d + 2 * t * s * d


def encoder_block_parameters(dim: int, mlp_dim: int) -> int:
    r"""A pre-norm transformer encoder block: two LayerNorms, attention and the MLP ``D -> H -> D``,

    .. math:: 4D + (4D^2 + 4D) + (2DH + H + D).
    """
    return 2 * norm_parameters(dim) + attention_parameters(dim) + linear_parameters(dim, mlp_dim) \
        + linear_parameters(mlp_dim, dim)


def vit_parameters(config) -> int:
    r"""Parameters of a ViT (a ``ViTConfig``, or a ``DeiTConfig`` with its distillation token).

    .. math:: (Cp^2 D + D) + eD + [TD] + [2D] + L\,(4D + 4D^2 + 4D + 2DH + H + D) + 2D + e\,(Dn + n),

    with e = 1 token read by a head (2 with DeiT's distillation token), T tokens (learned position
    embeddings only), the LayerNorm on the embedded sequence if ``embed_norm``, L blocks of MLP width H and
    n classes.
    """
    d = config.dim
    read = config.tokens - (config.image_size // config.patch_size) ** 2  # class (and distillation) tokens
    return (conv_parameters(config.in_channels, d, config.patch_size) + read * d
            + (config.tokens * d if config.pos_embedding == "learned" else 0)
            + (norm_parameters(d) if config.embed_norm else 0)
            + config.depth * encoder_block_parameters(d, config.mlp_dim) + norm_parameters(d)
            + read * linear_parameters(d, config.num_classes))


def squeeze_excitation_parameters(channels: int, *, squeeze: int) -> int:
    r"""A squeeze-and-excitation gate on C channels with :math:`C_s` squeeze channels: :math:`2CC_s + C_s + C`.

    The gate's two 1 x 1 convolutions with biases, :math:`C \to C_s` (:math:`CC_s + C_s`) and back
    (:math:`C_sC + C`); the pooling, the activations and the scaling hold no parameters.  SENet's ResNets use
    :math:`C_s = \lfloor C/16 \rfloor` for a block of C output channels, EfficientNet and RegNetY a quarter of
    the block's input width (``visarch.models.layers.SqueezeExcitation`` is the layer).
    """
    c = check_int(channels, "channels C", where="squeeze_excitation_parameters", ge=1)
    c_s = check_int(squeeze, "squeeze channels C_s", where="squeeze_excitation_parameters", ge=1)
    return conv_parameters(c, c_s, 1) + conv_parameters(c_s, c, 1)


def basic_block_parameters(c_in: int, out: int, *, projection: bool) -> int:
    r"""ResNet's basic block from C to C' channels: two 3 x 3 convolutions without bias, each with a batch norm,
    :math:`9CC' + 9C'^2 + 4C'`, and with ``projection`` a 1 x 1 convolution and its batch norm, :math:`CC' + 2C'`.
    """
    total = conv_parameters(c_in, out, 3, bias=False) + conv_parameters(out, out, 3, bias=False)
    total += 2 * norm_parameters(out)
    return total + (conv_parameters(c_in, out, 1, bias=False) + norm_parameters(out) if projection else 0)


def bottleneck_parameters(c_in: int, mid: int, out: int, *, projection: bool, groups: int = 1,
                          se_reduction: int | None = None) -> int:
    r"""ResNet's bottleneck block C -> m -> m -> C' (1 x 1, 3 x 3 with G groups, 1 x 1; no biases, each with a
    batch norm): :math:`Cm + 9m^2/G + mC' + 2(m + m + C')`; with ``projection`` a 1 x 1 convolution and its
    batch norm, :math:`CC' + 2C'`; with ``se_reduction`` r a squeeze-and-excitation gate of
    :math:`s = \lfloor C'/r \rfloor` channels, :math:`2C's + s + C'`.
    """
    total = conv_parameters(c_in, mid, 1, bias=False) + conv_parameters(mid, mid, 3, groups=groups, bias=False)
    total += conv_parameters(mid, out, 1, bias=False) + 2 * norm_parameters(mid) + norm_parameters(out)
    if se_reduction is not None:
        squeeze = out // check_int(se_reduction, "se_reduction r", where="bottleneck_parameters", ge=1)
        total += squeeze_excitation_parameters(out, squeeze=squeeze)
    return total + (conv_parameters(c_in, out, 1, bias=False) + norm_parameters(out) if projection else 0)


def preact_bottleneck_resnet_cost(*, blocks_per_stage: int, num_classes: int = 10, image_size: int = 32,
                                  in_channels: int = 3) -> tuple[int, int, int]:
    r"""The CIFAR pre-activation bottleneck ResNet (He et al., 2016b; ResNet-1001 has 111 blocks per stage):
    ``(parameters, of which batch norm, MACs)`` for one ``image_size`` x ``image_size`` image.

    A 3 x 3 stem convolution to 16 channels, then three stages of n blocks with the bottleneck widths
    :math:`m = 16, 32, 64` and outputs :math:`4m`; the first block of stages 2 and 3 has stride 2, carried by
    its 3 x 3 convolution and its shortcut.  A block from c channels at side r to side
    :math:`r' = \lceil r/S \rceil` is BN, ReLU, 1 x 1 to m, BN, ReLU, 3 x 3 to m, BN, ReLU, 1 x 1 to 4m (no
    biases), with a 1 x 1 projection of the pre-activated input in the first block of every stage:

    .. math::

        \#\text{params} = cm + 9m^2 + 4m^2 + [\text{first}]\; 4cm, \qquad
        \#\text{BN} = 2c + 2m + 2m,

    .. math::

        \#\text{MACs} = r^2\, cm + r'^2\,(9m^2 + 4m^2 + [\text{first}]\; 4cm).

    The stem adds :math:`9 \cdot 3 \cdot 16` weights and :math:`32^2` times as many MACs, the final batch norm
    :math:`2 \cdot 256` parameters, the linear classifier :math:`256n + n` parameters and :math:`256n` MACs;
    ReLU, pooling and the additions are not counted.  With :math:`3 \cdot 3 \cdot 111 + 2 = 1001` layers
    and 10 classes the weights alone are the 10.2 M of the paper.

    Args:
        blocks_per_stage: n, blocks in each of the three stages (the depth is 9n + 2).
        num_classes: classes of the linear head.
        image_size: the side of the square input image.
        in_channels: its channels.
    """
    where = "preact_bottleneck_resnet_cost"
    n = check_int(blocks_per_stage, "blocks_per_stage n", where=where, ge=1)
    classes = check_int(num_classes, "num_classes", where=where, ge=1)
    side = check_int(image_size, "image_size", where=where, ge=1)
    stem = conv_parameters(check_int(in_channels, "in_channels", where=where, ge=1), 16, 3, bias=False)
    params, norm, macs, c = stem, 0, conv_macs(in_channels, 16, 3, side), 16
    for i, mid in enumerate((16, 32, 64)):
        out = 4 * mid
        for b in range(n):
            stride = 2 if i > 0 and b == 0 else 1
            reduced = -(-side // stride)  # the 3 x 3 (padding 1) and the 1 x 1 shortcut give ceil(r / S)
            norm += norm_parameters(c) + 2 * norm_parameters(mid)  # the three pre-activation batch norms
            params += (conv_parameters(c, mid, 1, bias=False) + conv_parameters(mid, mid, 3, bias=False)
                       + conv_parameters(mid, out, 1, bias=False))
            macs += (conv_macs(c, mid, 1, side) + conv_macs(mid, mid, 3, reduced)
                     + conv_macs(mid, out, 1, reduced))
            if b == 0:  # the projection shortcut
                params += conv_parameters(c, out, 1, bias=False)
                macs += conv_macs(c, out, 1, reduced)
            c, side = out, reduced
    norm += norm_parameters(c)  # the final batch norm
    return params + norm + linear_parameters(c, classes), norm, macs + c * classes


def anynet_macs(config, *, image_size: int = 224) -> int:
    r"""Multiply-accumulates of an AnyNet or RegNet (an ``AnyNetConfig``, or a ``RegNetConfig`` through its
    ``anynet()``) on one ``image_size`` x ``image_size`` image.

    The stem is a 3 x 3 convolution of stride :math:`S_0` to :math:`w_0` channels, at side
    :math:`r = \lceil s / S_0 \rceil`.  An X block of stage i, from :math:`w_{in}` channels at side r to
    :math:`w_i` channels at side :math:`r' = \lceil r / S \rceil` (stride S in the stage's first block only),
    with the bottleneck width :math:`w_b = w_i / b_i` and :math:`g_i` channels per group, costs

    .. math::

        r^2\, w_{in} w_b \;+\; r'^2\, 9\, w_b g_i \;+\; r'^2\, w_b w_i \;+\; [\text{projection}]\; r'^2\, w_{in} w_i,

    the 1 x 1 reduction at the input's side, the grouped 3 x 3 (each of its :math:`r'^2 w_b` outputs reads
    :math:`9 g_i` inputs), the 1 x 1 expansion and, where the width or the side changes, the strided 1 x 1
    projection; a Y block adds its squeeze-and-excitation gate on the pooled :math:`w_b` channels,
    :math:`2 w_b C_s` with :math:`C_s = \mathrm{round}(\rho\, w_{in})` for the ratio :math:`\rho` (``se_ratio``).
    The linear head adds :math:`w_4 n` for n classes.  Batch norms, activations, pooling and additions are
    not counted, as in the paper's "400MF".

    Args:
        config: the network's config: its widths, depths, group widths, bottleneck ratios, strides, se_ratio,
            stem width and stride, input channels and classes.
        image_size: the side s of the square input image.
    """
    config = config.anynet() if hasattr(config, "anynet") else config
    side = -(-check_int(image_size, "image_size", where="anynet_macs", ge=1) // config.stem_stride)
    se_ratio = check_real(config.se_ratio, "se_ratio", where="anynet_macs", ge=0, lt=1)
    total, w_in = conv_macs(config.in_channels, config.stem_width, 3, side), config.stem_width
    for w, d, g, b, s in zip(config.widths, config.depths, config.group_widths, config.bottleneck_ratios,
                             config.strides, strict=True):
        w_b = int(round(w / b))
        for j in range(d):
            stride = s if j == 0 else 1
            out = -(-side // stride)
            total += (conv_macs(w_in, w_b, 1, side) + conv_macs(w_b, w_b, 3, out, groups=w_b // g)
                      + conv_macs(w_b, w, 1, out))
            if se_ratio:
                squeeze = int(round(se_ratio * w_in))
                total += conv_macs(w_b, squeeze, 1, 1) + conv_macs(squeeze, w_b, 1, 1)
            if (w_in, stride) != (w, 1):
                total += conv_macs(w_in, w, 1, out)
            side, w_in = out, w
    return total + w_in * config.num_classes


def clip_parameters(config) -> tuple[int, int, int]:
    r"""Parameters of a ViT CLIP (a ``CLIPConfig``): ``(image encoder, text encoder, total)``.

    Both towers are pre-norm transformers of blocks :math:`12D^2 + 13D` (:func:`encoder_block_parameters` with
    an MLP of 4D). The image encoder has a patch embedding without bias (:math:`Cp^2D`), a class token, one
    learned position per token, LayerNorms before and after the blocks and a projection without bias to
    :math:`d_e`; the text encoder a token table (:math:`VD`), one position per place of the context, the final
    LayerNorm and its projection. The total adds the learned logit scale, one number.
    """
    d, t = config.vision_width, config.text_width
    tokens = 1 + (config.image_size // config.patch_size) ** 2
    image = (conv_parameters(config.in_channels, d, config.patch_size, bias=False) + d + tokens * d
             + 2 * norm_parameters(d) + config.vision_layers * encoder_block_parameters(d, config.mlp_ratio * d)
             + linear_parameters(d, config.embed_dim, bias=False))
    text = ((config.vocab_size + config.context_length) * t
            + config.text_layers * encoder_block_parameters(t, config.mlp_ratio * t) + norm_parameters(t)
            + linear_parameters(t, config.embed_dim, bias=False))
    return image, text, image + text + 1


def resnet_parameters(config) -> int:
    r"""Parameters of a ResNet (a ``ResNetConfig``: basic or bottleneck blocks, ResNeXt groups, wide, SE).

    The stem is a 3 x 3 (CIFAR) or 7 x 7 (ImageNet) convolution to w channels and its batch norm; stack i has
    blocks of :math:`e\,2^i w` output channels (:func:`basic_block_parameters` or
    :func:`bottleneck_parameters`, whose 3 x 3 convolution has :math:`2^i m` channels), with a projection
    wherever the shape changes; the head, if any, is a linear layer.
    """
    w = config.width
    total = conv_parameters(config.in_channels, w, 3 if config.stem == "cifar" else 7, bias=False)
    total += norm_parameters(w)
    channels = w
    for i, count in enumerate(config.blocks):
        out, mid = config.expansion * w * 2**i, (config.bottleneck_width or w) * 2**i
        for b in range(count):
            projection = (channels, 2 if i > 0 and b == 0 else 1) != (out, 1)
            if config.block == "basic":
                total += basic_block_parameters(channels, out, projection=projection)
            else:
                total += bottleneck_parameters(channels, mid, out, projection=projection, groups=config.groups,
                                               se_reduction=config.se_reduction)
            channels = out
    return total + (0 if config.num_classes is None else linear_parameters(channels, config.num_classes))


def wide_resnet_parameters(config) -> int:
    r"""Parameters of a wide ResNet WRN-d-k (a ``WideResNetConfig``) for CIFAR.

    A 3 x 3 stem convolution to 16 channels; three groups of :math:`n = (d - 4)/6` pre-activation blocks at
    :math:`16k, 32k, 64k` channels, a block from c to C' channels holding a batch norm, a 3 x 3 convolution, a
    batch norm and a 3 x 3 convolution, :math:`2c + 9cC' + 2C' + 9C'^2` (no biases), plus a 1 x 1 projection
    :math:`cC'` where the shape changes (the first block of each group, but for 16 -> 16 channels at k = 1);
    a final batch norm and the classifier.
    """
    total, channels = conv_parameters(config.in_channels, 16, 3, bias=False), 16
    for i, width in enumerate((16 * config.widen, 32 * config.widen, 64 * config.widen)):
        for b in range((config.depth - 4) // 6):
            stride = 2 if i > 0 and b == 0 else 1
            total += norm_parameters(channels) + conv_parameters(channels, width, 3, bias=False)
            total += norm_parameters(width) + conv_parameters(width, width, 3, bias=False)
            total += conv_parameters(channels, width, 1, bias=False) if (channels, stride) != (width, 1) else 0
            channels = width
    return total + norm_parameters(channels) + linear_parameters(channels, config.num_classes)


def densenet_parameters(config) -> int:
    r"""Parameters of a DenseNet-BC (a ``DenseNetConfig``), one closed form per dense block.

    A dense layer reading c channels is batch norm, a 1 x 1 convolution to bk channels, batch norm and a
    3 x 3 convolution to k (no biases): :math:`(bk + 2)c + 2bk + 9bk^2`. Over the L layers of a block that
    starts with :math:`c_0` channels (:math:`c = c_0 + \ell k`):

    .. math:: (bk + 2)\left(L c_0 + k\frac{L(L-1)}{2}\right) + L\,(2bk + 9bk^2).

    A transition from m channels is a batch norm and a 1 x 1 convolution to :math:`\lfloor \theta m \rfloor`;
    the stem a 7 x 7 convolution and its batch norm; the end a batch norm and the classifier.
    """
    k, b, c = config.growth_rate, config.bottleneck * config.growth_rate, config.init_features
    total = conv_parameters(config.in_channels, c, 7, bias=False) + norm_parameters(c)
    for i, layers in enumerate(config.blocks):
        total += (b + 2) * (layers * c + k * layers * (layers - 1) // 2) + layers * (2 * b + 9 * b * k)
        c += layers * k
        if i < len(config.blocks) - 1:
            kept = int(config.compression * c)
            total += norm_parameters(c) + conv_parameters(c, kept, 1, bias=False)
            c = kept
    return total + norm_parameters(c) + linear_parameters(c, config.num_classes)


def swin_parameters(config) -> int:
    r"""Parameters of a Swin Transformer (a ``SwinConfig``).

    The patch embedding is a :math:`p \times p` convolution with bias to C channels and a LayerNorm. Stage i
    works at width :math:`w = 2^i C`; from the second stage on it starts with a patch merging, a LayerNorm over
    the 2w features of four concatenated tokens and a linear map :math:`2w \to w` without bias; each of its
    blocks is a pre-norm encoder block (:func:`encoder_block_parameters`, MLP width :math:`\lfloor rw \rfloor`)
    plus the relative position bias table, :math:`(2M - 1)^2` entries per head. A final LayerNorm and the head.
    """
    c = config.embed_dim
    total = conv_parameters(config.in_channels, c, config.patch_size) + norm_parameters(c)
    for i, (depth, heads) in enumerate(zip(config.depths, config.heads, strict=True)):
        w = c * 2**i
        if i:
            total += norm_parameters(2 * w) + linear_parameters(2 * w, w, bias=False)
        table = (2 * config.window_size - 1) ** 2 * heads
        total += depth * (encoder_block_parameters(w, int(w * config.mlp_ratio)) + table)
    w = c * 2 ** (len(config.depths) - 1)
    return total + norm_parameters(w) + linear_parameters(w, config.num_classes)


def cvt_parameters(config) -> int:
    r"""Parameters of a CvT (a ``CvTConfig``).

    Stage i embeds with a :math:`k_e \times k_e` convolution with bias and a LayerNorm; each of its blocks
    has two LayerNorms, three convolutional projections (a depthwise :math:`q \times q` convolution without
    bias, a batch norm, a linear map with bias), the output map and an MLP of width :math:`H = \lfloor rC
    \rfloor`: :math:`4C + 3(q^2 C + 2C + C^2 + C) + (C^2 + C) + (2CH + H + C)`. The last stage adds the class
    token; then a final LayerNorm and the head.
    """
    total, c_in = 0, config.in_channels
    q = config.qkv_kernel
    for c, depth, k in zip(config.dims, config.depths, config.embed_kernels, strict=True):
        hidden = int(c * config.mlp_ratio)
        projection = q * q * c + norm_parameters(c) + linear_parameters(c, c)
        block = 2 * norm_parameters(c) + 3 * projection + linear_parameters(c, c) \
            + linear_parameters(c, hidden) + linear_parameters(hidden, c)
        total += conv_parameters(c_in, c, k) + norm_parameters(c) + depth * block
        c_in = c
    return total + c_in + norm_parameters(c_in) + linear_parameters(c_in, config.num_classes)


def cvt_macs(config, image_size: int) -> int:
    r"""Multiply-accumulates of a CvT (a ``CvTConfig``) on one ``image_size`` x ``image_size`` image.

    Per stage: the embedding convolution on the :math:`h \times h` token map; per block, the depthwise
    :math:`q \times q` convolutions (queries at stride 1, keys and values at stride ``kv_stride``, on maps of
    :math:`h_k = \lceil h / s \rceil`), the three pointwise maps on T query and :math:`T_k` key tokens (the class
    token joins both in the last stage), the two attention products :math:`2 T T_k C`, the output map and the MLP;
    the head reads the class token.
    """
    check_int(image_size, "image_size", where="cvt_macs", ge=1)
    total, side, c_in = 0, image_size, config.in_channels
    q, s = config.qkv_kernel, config.kv_stride
    for i, (c, depth, k, stride, pad) in enumerate(zip(config.dims, config.depths, config.embed_kernels,
                                                       config.embed_strides, config.embed_paddings, strict=True)):
        side = (side + 2 * pad - k) // stride + 1
        total += conv_macs(c_in, c, k, side)
        cls = int(i == len(config.dims) - 1)
        side_k = -(-side // s)
        tokens, tokens_k = side * side + cls, side_k * side_k + cls
        hidden = int(c * config.mlp_ratio)
        depthwise = q * q * c * (side * side + 2 * side_k * side_k)
        block = depthwise + c * c * (tokens + 2 * tokens_k) + 2 * tokens * tokens_k * c + tokens * c * c \
            + 2 * tokens * c * hidden
        total += depth * block
        c_in = c
    return total + c_in * config.num_classes


def _conv_bn(c_in, c_out, kernel_size, *, groups=1):
    """A convolution without bias and its batch norm, :math:`C'(C F_h F_w / G + 2)`."""
    return conv_parameters(c_in, c_out, kernel_size, groups=groups, bias=False) + norm_parameters(c_out)


def vgg_parameters(config, *, stages) -> int:
    r"""Parameters of a VGG (a ``VGGConfig``) whose column of the paper's table 1 is ``stages``.

    Every convolution :math:`C \to C'` with :math:`F \times F` filters has biases, :math:`C'(CF^2 + 1)`;
    the local response normalisation and the max pools have no parameters; the classifier reads the
    :math:`C_5 \times p \times p` map left by the adaptive pooling and has three linear layers with biases,
    :math:`C_5 p^2 \to h \to h \to n`.

    Args:
        config: the classifier's sizes (``in_channels``, ``hidden``, ``pooled``, ``num_classes``).
        stages: per stage its layers, each ``(F, C')`` or a marker without parameters (the ``"LRN"`` of
            A-LRN): ``VGG_CONFIGURATIONS[config.configuration]`` of :mod:`visarch.models.vgg`.
    """
    total, channels = 0, config.in_channels
    for stage in stages:
        for layer in stage:
            if isinstance(layer, tuple):
                kernel, width = layer
                total += conv_parameters(channels, width, kernel)
                channels = width
    return total + linear_parameters(channels * config.pooled**2, config.hidden) \
        + linear_parameters(config.hidden, config.hidden) + linear_parameters(config.hidden, config.num_classes)


def vgg_macs(config, image_size: int, *, stages) -> int:
    r"""Multiply-accumulates of a VGG (a ``VGGConfig``) on one ``image_size`` x ``image_size`` image.

    Stage s works at side :math:`\lfloor S / 2^{s-1} \rfloor` (each stage ends in a 2 x 2 max pool with
    stride 2, and "same" padding keeps the side inside it), where a convolution :math:`C \to C'` costs
    :math:`C' H' W' \cdot C F^2` (:func:`conv_macs`); the classifier costs its weights,
    :math:`C_5 p^2 h + h^2 + h n`, whatever the image size.

    Args:
        config: the classifier's sizes.
        image_size: S, at least :math:`2^{s-1}` for s stages.
        stages: the column of table 1, as for :func:`vgg_parameters`.
    """
    side = check_int(image_size, "image_size", where="vgg_macs", ge=1)
    total, channels = 0, config.in_channels
    for stage in stages:
        for layer in stage:
            if isinstance(layer, tuple):
                kernel, width = layer
                total += conv_macs(channels, width, kernel, side)
                channels = width
        side //= 2
    hidden = config.hidden
    return total + channels * config.pooled**2 * hidden + hidden * hidden + hidden * config.num_classes


def inception_parameters(c_in: int, n1: int, r3: int, n3: int, r5: int, n5: int, pool_proj: int, *,
                         kernel_5x5: int = 5) -> int:
    r"""An Inception module (the widths of a row of GoogLeNet's table 1), every convolution bias-free with a
    batch norm, :math:`C'(CF^2 + 2)`:

    .. math:: C(n_1 + r_3 + r_5 + n_p) + 9 r_3 n_3 + F^2 r_5 n_5 + 2(n_1 + r_3 + n_3 + r_5 + n_5 + n_p),

    with :math:`F` the filter of the "5x5" branch (3 in torchvision's layout, 5 in the paper's).
    """
    return (_conv_bn(c_in, n1, 1) + _conv_bn(c_in, r3, 1) + _conv_bn(r3, n3, 3) + _conv_bn(c_in, r5, 1)
            + _conv_bn(r5, n5, kernel_5x5) + _conv_bn(c_in, pool_proj, 1))


def auxiliary_head_parameters(c_in: int, *, num_classes: int) -> int:
    r"""GoogLeNet's auxiliary classifier on C channels: a 1 x 1 convolution to 128 channels with its batch norm,
    :math:`128(C + 2)`, and the linear layers :math:`2048 \to 1024 \to n` with biases."""
    return _conv_bn(c_in, 128, 1) + linear_parameters(128 * 16, 1024) + linear_parameters(1024, num_classes)


def googlenet_parameters(config, *, modules, aux_taps=("4a", "4d")) -> int:
    r"""Parameters of GoogLeNet (a ``GoogLeNetConfig``): the stem, the Inception modules, the classifier and,
    with ``aux_logits``, the auxiliary heads.

    The stem is three bias-free convolutions with batch norms, 7 x 7 to 64, 1 x 1 to 64 and 3 x 3 to 192; each
    module is :func:`inception_parameters` with the config's "5x5" filter; the classifier is a linear layer
    with biases on the :math:`n_1 + n_3 + n_5 + n_p` channels of the last module; a head
    (:func:`auxiliary_head_parameters`) reads the output of each module in ``aux_taps``.

    Args:
        config: input channels, classes, ``aux_logits`` and ``kernel_5x5``.
        modules: the paper's table 1, module name -> ``(C, n_1, r_3, n_3, r_5, n_5, n_p)``, in order
            (``INCEPTION_MODULES`` of :mod:`visarch.models.googlenet`).
        aux_taps: the modules the auxiliary heads read, 4a and 4d in the paper.
    """
    total = _conv_bn(config.in_channels, 64, 7) + _conv_bn(64, 64, 1) + _conv_bn(64, 192, 3)
    outputs = {}
    for name, widths in modules.items():
        total += inception_parameters(*widths, kernel_5x5=config.kernel_5x5)
        _, n1, _, n3, _, n5, n_p = widths
        outputs[name] = n1 + n3 + n5 + n_p
    if config.aux_logits:
        total += sum(auxiliary_head_parameters(outputs[tap], num_classes=config.num_classes) for tap in aux_taps)
    return total + linear_parameters(list(outputs.values())[-1], config.num_classes)


def convnext_block_parameters(c_in: int, c_out: int, *, config, stride: int = 1) -> int:
    r"""A ConvNeXt block from C to C' channels, or a step of the modernisation of ResNet's bottleneck towards it.

    Three convolutions around the hidden width :math:`H = \lfloor rC' \rfloor`: the :math:`K \times K` spatial one
    (first, at C channels, or between the two others, at H; depthwise or dense) and two 1 x 1 ones.  Each has a
    norm (:math:`2 \times` its outputs) where the config puts one (``norms="all"``, or only after the spatial
    convolution) and a bias unless a batch norm follows it; the layer scale adds C', and a change of shape a
    1 x 1 projection (bias without batch norm) with its norm.  ConvNeXt's block (C = C', depthwise 7 x 7 first,
    one layer norm, the layer scale) holds

    .. math:: (K^2 C + C) + 2C + (4C^2 + 4C) + (4C^2 + C) + C = 8C^2 + (K^2 + 9)\,C.

    Args:
        c_in: C.
        c_out: C'.
        config: a ``ConvNeXtConfig``, the design choices of the step.
        stride: of the spatial convolution and the projection.
    """
    hidden, k, batch = int(c_out * config.hidden_ratio), config.kernel_size, config.norm == "batch"
    if config.spatial_first:
        layers = [(c_in, c_in, k), (c_in, hidden, 1), (hidden, c_out, 1)]
    else:
        layers = [(c_in, hidden, 1), (hidden, hidden, k), (hidden, c_out, 1)]
    spatial = 0 if config.spatial_first else 1
    total = 0
    for n, (c, c_next, kernel) in enumerate(layers):
        normed = config.norms == "all" or n == spatial
        groups = c if n == spatial and config.depthwise else 1
        total += conv_parameters(c, c_next, kernel, groups=groups, bias=not (normed and batch))
        total += norm_parameters(c_next) if normed else 0
    total += c_out if config.layer_scale is not None else 0
    if (c_in, stride) != (c_out, 1):
        total += conv_parameters(c_in, c_out, 1, bias=not batch) + norm_parameters(c_out)
    return total


def convnext_parameters(config) -> int:
    r"""Parameters of a ConvNeXt (a ``ConvNeXtConfig``), or of any step of the walk from ResNet-50 to it.

    The stem is a 4 x 4 "patchify" convolution with bias and a norm, or ResNet's 7 x 7 convolution (bias
    without batch norm) and its norm; the stages are :func:`convnext_block_parameters`, the first block of a
    stage striding when the stages are joined in-block; with separate downsampling a norm and a 2 x 2
    convolution with bias join the stages and a layer norm precedes the classifier, a linear layer.
    """
    stem = config.stem_width or config.widths[0]
    batch, separate = config.norm == "batch", config.downsample == "separate"
    if config.stem == "patchify":
        total = conv_parameters(config.in_channels, stem, 4) + norm_parameters(stem)
    else:
        total = conv_parameters(config.in_channels, stem, 7, bias=not batch) + norm_parameters(stem)
    channels = stem
    for i, (depth, width) in enumerate(zip(config.depths, config.widths, strict=True)):
        if separate and i:
            total += norm_parameters(channels) + conv_parameters(channels, width, 2)
            channels = width
        for b in range(depth):
            stride = 2 if not separate and i and not b else 1
            total += convnext_block_parameters(channels, width, config=config, stride=stride)
            channels = width
    return total + (norm_parameters(channels) if separate else 0) + linear_parameters(channels, config.num_classes)


def _check_nonlocal_mode(mode, *, where):
    if mode not in NONLOCAL_MODES:
        raise ValueError(f"{where}: pairwise function mode must be one of {', '.join(NONLOCAL_MODES)}, got {mode!r}")


def nonlocal_block_parameters(in_channels: int, inter_channels: int, *, mode: str = "embedded_gaussian",
                              batch_norm: bool = True) -> int:
    r"""Parameters of a non-local block from C channels with the bottleneck C'.

    .. math:: k(CC' + C') + C'C + 2C\,[\text{batch norm}] + C\,[\text{bias of } W_z \text{ without it}]
              + 2C'\,[\text{concatenation}],

    with :math:`k = 3` embeddings :math:`\theta, \phi, g` (1 convolutions with biases, :math:`g` alone for the
    vanilla Gaussian), :math:`W_z` without bias when batch norm's :math:`\gamma, \beta` follow it, and the
    concatenation's :math:`w_f`.  Checked against ``NonLocalBlock`` in ``tests/test_cost_models.py``.

    Args:
        in_channels: C.
        inter_channels: C'.
        mode: the pairwise function, one of :data:`visarch.nn.nonlocal_block.MODES`.
        batch_norm: whether batch norm follows :math:`W_z`.
    """
    c = check_int(in_channels, "in_channels C", where="nonlocal_block_parameters", ge=1)
    ci = check_int(inter_channels, "inter_channels C'", where="nonlocal_block_parameters", ge=1)
    _check_nonlocal_mode(mode, where="nonlocal_block_parameters")
    check_bool(batch_norm, "batch_norm", where="nonlocal_block_parameters")
    embeddings = 1 if mode == "gaussian" else 3
    return (embeddings * (c * ci + ci) + ci * c + (2 * c if batch_norm else c)
            + (2 * ci if mode == "concatenation" else 0))


def nonlocal_macs(mode: str, *, in_channels: int, inter_channels: int, positions: int, keys: int) -> int:
    r"""Multiply-accumulates of one :class:`~visarch.nn.nonlocal_block.NonLocalBlock` on one feature map (closed form).

    With :math:`N` positions, :math:`M` keys, :math:`C` channels and the bottleneck :math:`C'`: the
    :math:`1 \times 1` convolutions :math:`\theta, \phi, g, W_z` cost :math:`NCC'` each (:math:`\phi` and
    :math:`g` run before the pooling), the logits :math:`NMC'` and the weighted sum of the :math:`g(\hat x_j)`
    :math:`NMC'`, so

    .. math::

        \text{embedded Gaussian, dot product}: 4NCC' + 2NMC', \qquad
        \text{Gaussian}: 2NCC' + NMC + NMC', \qquad
        \text{concatenation}: 4NCC' + (N + M)C' + NMC',

    the concatenation projecting each :math:`\theta(x_i)` and each :math:`\phi(x_j)` once onto its half of
    :math:`w_f` instead of forming the :math:`NM` concatenated vectors.  Batch norm, the softmax, the ReLU and
    the pooling are not counted (as in ``torch.utils.flop_counter``, against which ``tests/test_nonlocal_block.py``
    checks the count).

    Args:
        mode: the pairwise function, one of :data:`~visarch.nn.nonlocal_block.MODES`.
        in_channels: C, the channels of the feature map.
        inter_channels: the bottleneck C'.
        positions: N, the positions of the feature map (HW, or THW for a clip).
        keys: M, the keys after any subsampling (N, or about N/4).

    Returns:
        The number of multiply-accumulates for one feature map (one entry of the batch).
    """
    _check_nonlocal_mode(mode, where="nonlocal_macs")
    c = check_int(in_channels, "input channels C (in_channels)", where="nonlocal_macs", ge=1)
    ci = check_int(inter_channels, "bottleneck channels C' (inter_channels)", where="nonlocal_macs", ge=1)
    n = check_int(positions, "positions N", where="nonlocal_macs", ge=1)
    m = check_int(keys, "keys M", where="nonlocal_macs", ge=1)
    if mode == "gaussian":
        return 2 * n * c * ci + n * m * c + n * m * ci
    if mode == "concatenation":
        return 4 * n * c * ci + (n + m) * ci + n * m * ci
    return 4 * n * c * ci + 2 * n * m * ci



def timesformer_parameters(config, *, attentions: int) -> int:
    r"""Parameters of a TimeSformer (a ``TimeSformerConfig``) whose blocks hold ``attentions`` attentions each.

    .. math:: (Cp^2 D + D) + (N + F) D + L\,\big(a (4D^2 + 6D) + 2rD^2 + (r + 3) D\big) + 2D + DK + K:

    the patch embedding, a learnt embedding per patch position and per frame, L blocks of a attentions each
    with its LayerNorm (:func:`attention_parameters`) and an MLP :math:`D \to rD \to D` with its LayerNorm, a
    final LayerNorm and the classifier.  The scheme enters only through a, the length of its entry in
    ``visarch.models.timesformer.SCHEMES`` (1 for joint and space, 2 for divided and local-global, 3 for
    axial): the table stays with the model, whose attention layouts give its entries their meaning.
    """
    d, a = config.dim, check_int(attentions, "attentions a", where="timesformer_parameters", ge=1)
    hidden = config.mlp_ratio * d
    block = a * (norm_parameters(d) + attention_parameters(d)) + norm_parameters(d) \
        + linear_parameters(d, hidden) + linear_parameters(hidden, d)
    return (conv_parameters(config.in_channels, d, config.patch_size) + (config.num_patches + config.frames) * d
            + config.depth * block + norm_parameters(d) + linear_parameters(d, config.num_classes))


def r2plus1d_mid_channels(time: int, size: int, c_in: int, c_out: int) -> int:
    r"""Tran et al.'s :math:`M = \lfloor t d^2 N N' / (d^2 N + t N') \rfloor`, the intermediate channels that give a
    (2+1)D block, :math:`M(d^2 N + t N')` weights, about the :math:`t d^2 N N'` of the 3D convolution it replaces.

    The (2+1)D blocks of ``visarch.models.video`` take this width by default.

    Args:
        time: t, the temporal kernel size.
        size: d, the spatial kernel size.
        c_in: N.
        c_out: N'.

    Returns:
        M, which can be 0 for tiny widths (:math:`d = 1`, one input channel): a block that cannot exist.
    """
    t = check_int(time, "temporal kernel size t", where="r2plus1d_mid_channels", ge=1)
    d = check_int(size, "spatial kernel size d", where="r2plus1d_mid_channels", ge=1)
    n = check_int(c_in, "input channels N", where="r2plus1d_mid_channels", ge=1)
    n_out = check_int(c_out, "output channels N'", where="r2plus1d_mid_channels", ge=1)
    return t * d * d * n * n_out // (d * d * n + t * n_out)


def c3d_block_parameters(c_in: int, c_out: int, *, time: int = 3, size: int = 3, batch_norm: bool = True) -> int:
    r"""A C3D block from N to N' channels: a :math:`t \times d \times d` convolution, :math:`t d^2 N N'` weights,
    with batch norm (:math:`2N'`) or else biases (:math:`N'`)."""
    check_bool(batch_norm, "batch_norm", where="c3d_block_parameters")
    return time * size * size * c_in * c_out + (norm_parameters(c_out) if batch_norm else c_out)


def r2plus1d_block_parameters(c_in: int, c_out: int, *, time: int = 3, size: int = 3, batch_norm: bool = True,
                              mid: int | None = None) -> int:
    r"""A (2+1)D block from N to N' channels through M: a :math:`1 \times d \times d` convolution to M and a
    :math:`t \times 1 \times 1` one to N', :math:`M(d^2 N + t N')` weights, each with batch norm or else biases.

    ``mid`` None takes M from :func:`r2plus1d_mid_channels`.
    """
    check_bool(batch_norm, "batch_norm", where="r2plus1d_block_parameters")
    m = (r2plus1d_mid_channels(time, size, c_in, c_out) if mid is None
         else check_int(mid, "mid channels M", where="r2plus1d_block_parameters", ge=1))
    extra = norm_parameters if batch_norm else int
    return size * size * c_in * m + extra(m) + time * m * c_out + extra(c_out)


def video_net_parameters(config) -> int:
    r"""Parameters of the small video networks (a ``VideoNetConfig``): per width :math:`N_i` a C3D block
    (:func:`c3d_block_parameters`) or a (2+1)D block (:func:`r2plus1d_block_parameters`) with batch norm,
    then a linear classifier on the last :math:`N_i` channels."""
    total, channels = 0, config.in_channels
    block = c3d_block_parameters if config.block == "c3d" else r2plus1d_block_parameters
    for width in config.widths:
        total += block(channels, width, time=config.time)
        channels = width
    return total + linear_parameters(channels, config.num_classes)


def unet_res_block_parameters(c_in: int, c_out: int, *, embed_dim: int) -> int:
    r"""The notes' ResBlock\ :sup:`U` from C to C' channels with a context of d numbers: two GroupNorms
    (:math:`2C + 2C'`), two 3 x 3 convolutions with biases (:math:`9CC' + C'` and :math:`9C'^2 + C'`), the context
    map :math:`dC' + C'` and, when :math:`C \ne C'`, a 1 x 1 shortcut :math:`CC' + C'`."""
    return (norm_parameters(c_in) + conv_parameters(c_in, c_out, 3) + linear_parameters(embed_dim, c_out)
            + norm_parameters(c_out) + conv_parameters(c_out, c_out, 3)
            + (conv_parameters(c_in, c_out, 1) if c_in != c_out else 0))


def unet_parameters(config) -> tuple[int, int, int, int, int]:
    r"""Parameters of the notes' U-Net (a ``UNetConfig``): ``(descent, middle, ascent, output, total)``.

    The descent is the first 3 x 3 convolution, then per resolution its residual blocks
    (:func:`unet_res_block_parameters`), each followed by an attention (:math:`4C^2 + 4C`) where the config asks,
    and between resolutions a stride-2 3 x 3 convolution :math:`9C^2 + C`; the middle a block, an attention and
    a block at the lowest resolution; the ascent, per resolution from the lowest, one block more than the
    descent, each reading the current image concatenated with the matching image of the descent, and between
    resolutions a transposed 4 x 4 convolution :math:`16C^2 + C`; the output a GroupNorm and a 3 x 3
    convolution back to the image's channels.
    """
    d = config.embed_dim

    def stage(c_in, c_out, attention):
        return unet_res_block_parameters(c_in, c_out, embed_dim=d) + (attention_parameters(c_out) if attention else 0)

    channels = config.base_channels
    descent, skips = conv_parameters(config.in_channels, channels, 3), [channels]
    for level, (out, attention) in enumerate(zip(config.channels, config.attention, strict=True)):
        for _ in range(config.blocks):
            descent += stage(channels, out, attention)
            channels = out
            skips.append(channels)
        if level < len(config.channels) - 1:
            descent += conv_parameters(channels, channels, 3)
            skips.append(channels)
    middle = stage(channels, channels, True) + unet_res_block_parameters(channels, channels, embed_dim=d)
    ascent = 0
    for level in reversed(range(len(config.channels))):
        out, attention = config.channels[level], config.attention[level]
        for b in range(config.blocks + 1):
            target = out if b < config.blocks else (config.channels[level - 1] if level else out)
            ascent += stage(channels + skips.pop(), target, attention)
            channels = target
        if level:
            ascent += conv_parameters(channels, channels, 4)  # a transposed convolution holds as many
    output = norm_parameters(channels) + conv_parameters(channels, config.in_channels, 3)
    return descent, middle, ascent, output, descent + middle + ascent + output


def vatt_parameters(config) -> int:
    r"""Parameters of VATT (a ``VATTConfig``).

    The tokenizers: a linear map with bias of each :math:`t \times h \times w` voxel patch and a learnt embedding
    per time step, row and column of the grid; of each waveform segment, with one position per segment; a word
    table and one position per word.  Per modality an encoder of width d: the aggregation token, pre-norm
    blocks (:func:`encoder_block_parameters`, :math:`4d^2 + 2dm + 9d + m`) and a final LayerNorm.  The heads
    are linear layers with biases, each followed by a batch norm: video :math:`\to d_{va} \to d_{va}`, audio
    :math:`\to d_{va}`, text :math:`\to d_{vt}` and :math:`d_{va} \to d_{vt}`.
    """
    (dv, *video), (da, *audio), (dt, *text) = config.video, config.audio, config.text

    def encoder(width, blocks, _heads, mlp):
        return width + blocks * encoder_block_parameters(width, mlp) + norm_parameters(width)

    def linear_bn(d_in, d_out):
        return linear_parameters(d_in, d_out) + norm_parameters(d_out)

    t, h, w = config.video_patch
    tokenizers = (config.in_channels * t * h * w * dv + dv + sum(config.video_grid) * dv
                  + config.audio_patch * da + da + config.audio_tokens * da
                  + (config.vocab_size + config.text_length) * dt)
    heads = (linear_bn(dv, config.va_dim) + linear_bn(config.va_dim, config.va_dim) + linear_bn(da, config.va_dim)
             + linear_bn(dt, config.vt_dim) + linear_bn(config.va_dim, config.vt_dim))
    return tokenizers + encoder(dv, *video) + encoder(da, *audio) + encoder(dt, *text) + heads


def mobilenet_v1_parameters(config, *, body) -> int:
    r"""Parameters of MobileNet v1 (a ``MobileNetV1Config``) whose separable blocks are ``body``.

    Every convolution is bias-free with a batch norm: a standard 3 x 3 stem to :math:`c(32)` channels, then per
    block a 3 x 3 depthwise layer on its C channels, :math:`9C + 2C`, and a pointwise one :math:`C \to C'`,
    :math:`CC' + 2C'`; a linear classifier.  :math:`c(\cdot)` is the config's width rule (``config.channels``).

    Args:
        config: the width multiplier, input channels and classes.
        body: ``(C', stride)`` per block at width 1, ``V1_BODY`` of :mod:`visarch.models.mobilenet`.
    """
    width = config.channels(32)
    total = _conv_bn(config.in_channels, width, 3)
    for out, _stride in body:
        out = config.channels(out)
        total += _conv_bn(width, width, 3, groups=width) + _conv_bn(width, out, 1)
        width = out
    return total + linear_parameters(width, config.num_classes)


def inverted_residual_parameters(c_in: int, c_out: int, *, expand_ratio: int, kernel_size: int = 3,
                                 squeeze: int | None = None) -> int:
    r"""MobileNetV2's inverted residual block from c to c' channels (EfficientNet's MBConv with ``squeeze``).

    A 1 x 1 expansion to :math:`tc` channels (none when :math:`t = 1`), a :math:`k \times k` depthwise layer and a
    1 x 1 projection to c', each bias-free with a batch norm:

    .. math:: (tc \cdot c + 2tc)\,[t > 1] + (k^2 tc + 2tc) + (tc \cdot c' + 2c'),

    plus, with ``squeeze`` :math:`s`, the squeeze-and-excitation gate's two 1 x 1 convolutions with biases,
    :math:`2 tc\, s + s + tc`.
    """
    hidden = c_in * check_int(expand_ratio, "expand_ratio t", where="inverted_residual_parameters", ge=1)
    total = _conv_bn(c_in, hidden, 1) if expand_ratio != 1 else 0
    total += _conv_bn(hidden, hidden, kernel_size, groups=hidden) + _conv_bn(hidden, c_out, 1)
    if squeeze is not None:
        total += squeeze_excitation_parameters(hidden, squeeze=squeeze)
    return total


def mobilenet_v2_parameters(config) -> int:
    r"""Parameters of MobileNetV2 (a ``MobileNetV2Config``).

    A 3 x 3 stem, the inverted residual blocks of the rows :math:`(t, c, n, s)`
    (:func:`inverted_residual_parameters`; strides change no count), a 1 x 1 convolution to the last width,
    1280 rounded as the config rounds every width and widened only by a multiplier above 1, each bias-free
    with a batch norm, and a linear classifier.
    """
    width = config.channels(config.stem_channels)
    total = _conv_bn(config.in_channels, width, 3)
    for t, c, n, _s in config.setting:
        out = config.channels(c)
        for _ in range(n):
            total += inverted_residual_parameters(width, out, expand_ratio=t)
            width = out
    # the last width: the config's rounding of last_channels times max(1, width multiplier)
    last = dataclasses.replace(config, width_mult=max(1.0, config.width_mult)).channels(config.last_channels)
    return total + _conv_bn(width, last, 1) + linear_parameters(last, config.num_classes)


def efficientnet_parameters(config) -> int:
    r"""Parameters of an EfficientNet (an ``EfficientNetConfig``: B0's table 1 with width and depth multipliers).

    A 3 x 3 stem; per row :math:`(t, k, s, C, C', L)`, :math:`\lceil dL \rceil` MBConv blocks at the widths the
    multiplier gives (:func:`inverted_residual_parameters` with a squeeze of :math:`\max(1, \lfloor c/4
    \rfloor)` for a block reading c channels); a 1 x 1 head to the scaled 1280 channels, each bias-free with a
    batch norm; a linear classifier.
    """
    rows = [(t, k, config.channels(c_in), config.channels(c_out), config.layers(n))
            for t, k, _s, c_in, c_out, n in config.stages]
    total = _conv_bn(config.in_channels, rows[0][2], 3)
    for t, k, c_in, c_out, n in rows:
        for i in range(n):
            width = c_in if i == 0 else c_out
            total += inverted_residual_parameters(width, c_out, expand_ratio=t, kernel_size=k,
                                                  squeeze=max(1, width // 4))
    head = config.channels(config.head_channels)
    return total + _conv_bn(rows[-1][3], head, 1) + linear_parameters(head, config.num_classes)
