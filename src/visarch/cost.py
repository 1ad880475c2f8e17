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
that papers call "FLOPs" (ResNet-50's "3.8-4.1 GFLOPs", RegNet's "400MF").  Elementwise work
(activations, normalization, pooling, the bias additions) is not counted, as in the papers.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from visarch.functional._checks import check_int, pair

__all__ = ["attention_parameters", "basic_block_parameters", "bottleneck_parameters", "clip_parameters", "conv_macs",
           "conv_parameters", "cvt_macs", "cvt_parameters", "densenet_parameters", "encoder_block_parameters",
           "forward_macs", "linear_parameters", "model_macs", "norm_parameters", "parameter_count", "resnet_parameters",
           "separable_conv_macs", "separable_conv_parameters", "swin_parameters", "vit_parameters",
           "wide_resnet_parameters"]


def _check_layer(c_in, c_out, groups):
    """Validate channel counts and groups; return ``C/G``."""
    check_int(c_in, "input channels C", low=1)
    check_int(c_out, "output channels C'", low=1)
    check_int(groups, "number of groups G", low=1)
    if c_in % groups:
        raise ValueError(f"input channels C={c_in} are not divisible by groups G={groups}")
    if c_out % groups:
        raise ValueError(f"output channels C'={c_out} are not divisible by groups G={groups}")
    return c_in // groups


def _check_bias(bias):
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__}")


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
    c_per_group = _check_layer(c_in, c_out, groups)
    fh, fw = pair(kernel_size, "kernel_size F", low=1)
    _check_bias(bias)
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
    c_per_group = _check_layer(c_in, c_out, groups)
    fh, fw = pair(kernel_size, "kernel_size F", low=1)
    h_out, w_out = pair(output_size, "output_size H'", low=1)
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
    c_mid = c_in * check_int(multiplier, "channel multiplier m", low=1)
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
    c_mid = c_in * check_int(multiplier, "channel multiplier m", low=1)
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


# --- closed forms of whole networks, from their configs ---------------------------------------------------------
# Each takes the model's config (any object with the fields of the named config class, so this floor imports
# no model) and counts parameters part by part from the architecture.  tests/test_cost_models.py checks them
# against the published counts and against the networks built on the meta device.

def norm_parameters(channels: int) -> int:
    """A batch norm or LayerNorm over ``channels`` features: a scale and a shift each, 2C."""
    return 2 * check_int(channels, "channels C", low=1)


def linear_parameters(in_features: int, out_features: int, *, bias: bool = True) -> int:
    """A linear layer ``in -> out``: ``in * out`` weights, plus ``out`` biases."""
    _check_bias(bias)
    return check_int(in_features, "in_features", low=1) * check_int(out_features, "out_features", low=1) \
        + (out_features if bias else 0)


def attention_parameters(dim: int) -> int:
    r"""Multi-head self-attention of width D with biases: queries, keys, values and output map, :math:`4D^2 + 4D`.

    The number of heads K does not enter: K heads of D/K dimensions fill the same D x D maps.
    """
    return 4 * linear_parameters(dim, dim)


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
        squeeze = out // check_int(se_reduction, "se_reduction r", low=1)
        total += conv_parameters(out, squeeze, 1) + conv_parameters(squeeze, out, 1)
    return total + (conv_parameters(c_in, out, 1, bias=False) + norm_parameters(out) if projection else 0)


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
    check_int(image_size, "image_size", low=1)
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
