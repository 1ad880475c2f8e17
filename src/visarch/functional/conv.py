r"""Convolution from scratch in one, two and three dimensions (Building blocks chapter).

Notation (shared by the whole book): an input batch ``x`` has shape
``[N, C, H, W]`` (``[N, C, L]`` in 1D, ``[N, C, D, H, W]`` in 3D); a filter
bank ``W`` has shape ``[C', C/G, F_h, F_w]``; the stride is ``S``, the zero
padding ``P``, the number of groups ``G``.  One output value is a dot product
between one filter and one patch of the padded input :math:`\tilde x`,

.. math::

    y_{n,o,i,j} = b_o + \sum_{c=0}^{C/G-1} \sum_{k=0}^{F_h-1} \sum_{l=0}^{F_w-1}
        W_{o,c,k,l}\,\tilde x_{n,\,gC/G + c,\; iS_h + k,\; jS_w + l},
    \qquad g = \lfloor o / (C'/G) \rfloor,

with 0-based indices, and the output has :math:`H' = \lfloor (H + 2P_h - F_h)/S_h
\rfloor + 1` rows (Lemma 1.1 of the notes), likewise along every other axis.
The 1D and 3D convolutions are the same sum with one or three spatial indices.

Every function here takes the arguments of ``torch.nn.functional.conv1d``,
``conv2d`` or ``conv3d`` (``stride``, ``padding``, ``groups``; stride and
padding as an int or one int per axis; dilation is not covered) and is
checked against it in ``tests/test_conv.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from visarch.checks import check_floating, check_int, check_ints, ntuple

__all__ = ["conv_output_size", "conv1d", "conv2d", "conv3d", "conv_nd", "conv2d_loop", "conv_matrix"]

# With fewer output pixels per image than this, conv_nd multiplies the filters by the patches of
# the whole batch at once: a matrix product with only a handful of columns per image runs far
# below the processor's peak, which costs more than the two transposing copies that one product
# needs (measured with ``python -m benchmarks conv2d``, whose 4 x 4 layers have 16 pixels).
_MIN_COLUMNS_PER_IMAGE = 32

# Names of the spatial axes, and the letters of the shapes in messages, by number of axes.
AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
LETTERS = {1: "L", 2: "H, W", 3: "D, H, W"}
KERNEL_LETTERS = {1: "F", 2: "F_h, F_w", 3: "F_d, F_h, F_w"}


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    r"""Output length of a convolution along one axis (Lemma 1.1 of the notes).

    .. math:: Z' = \left\lfloor \frac{Z + 2P - F}{S} \right\rfloor + 1

    Checked against the output sizes of ``torch.nn.functional.conv2d`` in ``tests/test_conv.py``.

    Args:
        size: the input length Z (H or W).
        kernel_size: the filter size F, at most Z + 2P.
        stride: the stride S.
        padding: the P zeros added at each end.

    Returns:
        The output length Z' (H' or W').
    """
    for name, value, low in (("size Z", size, 1), ("kernel_size F", kernel_size, 1),
                             ("stride S", stride, 1), ("padding P", padding, 0)):
        check_int(value, name, where="conv_output_size", ge=low)
    if kernel_size > size + 2 * padding:
        raise ValueError(
            f"filter size F={kernel_size} exceeds padded size Z+2P={size + 2 * padding}"
        )
    return (size + 2 * padding - kernel_size) // stride + 1


def _check_conv(input, weight, bias, stride, padding, groups, dims, *, where):
    """Validate the arguments of a convolution with ``dims`` spatial axes; return them normalised.

    Returns ``(x, unbatched, stride, padding, G)`` where ``x`` is ``[N, C, *spatial]``
    (an input without batch axis gains one, as in torch) and ``stride``, ``padding``
    hold one int per spatial axis.
    """
    check_floating(where=where, input=input, weight=weight, bias=bias)
    letters = LETTERS[dims]
    if input.dim() not in (dims + 1, dims + 2):
        raise ValueError(
            f"input must have rank {dims + 2} [N, C, {letters}] (or {dims + 1} [C, {letters}]), "
            f"got rank {input.dim()}"
        )
    if weight.dim() != dims + 2:
        raise ValueError(
            f"weight must have rank {dims + 2} [C', C/G, {KERNEL_LETTERS[dims]}], got rank {weight.dim()}"
        )
    unbatched = input.dim() == dims + 1
    x = input.unsqueeze(0) if unbatched else input
    stride = ntuple(stride, dims, "stride S", where=where, ge=1)
    padding = ntuple(padding, dims, "padding P", where=where, ge=0)
    groups = check_int(groups, "number of groups G", where=where, ge=1)
    c_in, c_out = x.shape[1], weight.shape[0]
    if c_in % groups:
        raise ValueError(f"input channels C={c_in} are not divisible by groups G={groups}")
    if c_out % groups:
        raise ValueError(f"output channels C'={c_out} are not divisible by groups G={groups}")
    if weight.shape[1] != c_in // groups:
        raise ValueError(
            f"weight has {weight.shape[1]} input channels per filter, expected C/G={c_in // groups}"
        )
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias must have shape (C',) = ({c_out},), got {tuple(bias.shape)}")
    for axis, size, f, p in zip(AXES[dims], x.shape[2:], weight.shape[2:], padding, strict=True):
        if f > size + 2 * p:
            raise ValueError(f"filter {axis} F={f} exceeds padded {axis} {size}+2*{p}={size + 2 * p}")
    return x, unbatched, stride, padding, groups


def conv2d_loop(input, weight, bias=None, *, stride=1, padding=0, groups=1):
    """The notes' Conv2D algorithm, step by step, with explicit loops (small inputs only).

    Step 1 pads the input with P zeros; step 2 slides every filter over the
    padded image in steps of S, row by row, and appends one dot product plus
    bias per position.  Window starts are 0, S, 2S, ... (0-based), and a row
    or column whose window would run past the padded edge is skipped.

    Arguments and result as :func:`~visarch.functional.conv.conv2d`: ``input``
    ``[N, C, H, W]`` (or ``[C, H, W]``), ``weight`` ``[C', C/G, F_h, F_w]``,
    ``bias`` ``[C']``; returns ``[N, C', H', W']`` (or ``[C', H', W']``).
    """
    x, unbatched, (sh, sw), (ph, pw), groups = _check_conv(input, weight, bias, stride, padding, groups, dims=2,
                                                           where="conv2d_loop")
    c_out, c_per_group, fh, fw = weight.shape
    outs_per_group = c_out // groups
    x_pad = F.pad(x, (pw, pw, ph, ph))  # step 1: [N, C, H + 2P_h, W + 2P_w]
    height, width = x_pad.shape[2], x_pad.shape[3]
    batch = []
    for n in range(x.shape[0]):
        channels = []
        for o in range(c_out):  # step 2: one output channel at a time
            g = o // outs_per_group  # the group whose input channels filter o reads
            x_g = x_pad[n, g * c_per_group:(g + 1) * c_per_group]  # [C/G, H + 2P_h, W + 2P_w]
            rows = []
            for i in range(0, height, sh):  # rows 0, S, 2S, ... moving down
                if i + fh > height:  # the window would leave the padded image
                    continue
                row = []
                for j in range(0, width, sw):  # columns 0, S, 2S, ... moving right
                    if j + fw > width:
                        continue
                    patch = x_g[:, i:i + fh, j:j + fw]  # [C/G, F_h, F_w]
                    value = (weight[o] * patch).sum()  # Hadamard product, then sum
                    row.append(value if bias is None else value + bias[o])
                rows.append(torch.stack(row))
            channels.append(torch.stack(rows))  # [H', W']
        batch.append(torch.stack(channels))  # [C', H', W']
    y = torch.stack(batch)  # [N, C', H', W']
    return y[0] if unbatched else y


def conv_nd(input, weight, bias=None, *, dims, stride=1, padding=0, groups=1):
    """Vectorised convolution over ``dims`` = 1, 2 or 3 spatial axes: gather every patch, then one matrix product.

    ``Tensor.unfold(axis, F, S)`` cuts each spatial axis of the padded input
    into windows of length F that start every S steps (the window starts of
    the loop version) without copying anything.  The windows are then laid
    out as the columns of one matrix per image (im2col, after Chellapilla et
    al.), one column per output pixel, and multiplying the flattened filters
    by that matrix gives every output pixel at once; groups are G such
    products side by side.  For a 1x1 filter with stride 1 the matrix is the
    image itself and nothing is copied.  When each image has only a few output
    pixels, the columns of all images form one matrix instead, so one product
    covers the batch.  No Python loop runs over pixels, channels or the batch.

    Args:
        input: ``[N, C, *spatial]`` with ``dims`` spatial axes, or ``[C, *spatial]`` without the batch axis.
        weight: filter bank ``[C', C/G, *F]``, one filter size per spatial axis.
        bias: ``[C']``, or ``None``.
        dims: the number of spatial axes, 1, 2 or 3.
        stride: S, an int or one int per spatial axis.
        padding: P zeros on both sides, an int or one int per spatial axis.
        groups: G, which must divide C and C'.

    Returns:
        ``[N, C', *spatial']`` (``[C', *spatial']`` without the batch axis), each output size given by
        :func:`~visarch.functional.conv.conv_output_size`.
    """
    if dims not in AXES:
        raise ValueError(f"dims (number of spatial axes) must be 1, 2 or 3, got {dims!r}")
    x, unbatched, stride, padding, groups = _check_conv(input, weight, bias, stride, padding, groups, dims,
                                                        where=f"conv{dims}d")
    n, c_out, kernel = x.shape[0], weight.shape[0], weight.shape[2:]
    c_per_group, outs_per_group = x.shape[1] // groups, c_out // groups
    taps = math.prod(kernel)  # F_h * F_w in 2D

    if any(padding):
        x = F.pad(x, [p for p in reversed(padding) for _ in range(2)])  # [N, C, *padded]; last axis first
    for axis, (f, s) in enumerate(zip(kernel, stride, strict=True)):
        x = x.unfold(2 + axis, f, s)  # after all axes: [N, C, *out, *kernel], a view
    out = x.shape[2:2 + dims]  # (H', W') in 2D
    kernel_axes, out_axes = range(2 + dims, 2 + 2 * dims), range(2, 2 + dims)
    filters = weight.reshape(groups, outs_per_group, c_per_group * taps)  # [G, C'/G, C/G*F*F]
    if math.prod(out) >= _MIN_COLUMNS_PER_IMAGE:
        x = x.permute(0, 1, *kernel_axes, *out_axes)  # [N, C, *kernel, *out]
        patches = x.reshape(n, groups, c_per_group * taps, math.prod(out))  # im2col: [N, G, C/G*F*F, H'*W']
        y = torch.matmul(filters, patches).reshape(n, c_out, *out)  # [N, G, C'/G, H'*W'] -> [N, C', H', W']
    else:  # one product for the whole batch: columns are (image, output pixel) pairs
        x = x.permute(1, *kernel_axes, 0, *out_axes)  # [C, *kernel, N, *out]
        patches = x.reshape(groups, c_per_group * taps, n * math.prod(out))  # [G, C/G*F*F, N*H'*W']
        y = torch.matmul(filters, patches).reshape(c_out, n, *out)  # [C', N, H', W']
        y = y.transpose(0, 1).contiguous()  # [N, C', H', W']
    if bias is not None:
        y = y + bias.view(c_out, *(1,) * dims)
    return y[0] if unbatched else y


def conv1d(input, weight, bias=None, *, stride=1, padding=0, groups=1):
    """1D convolution of a batch of sequences ``[N, C, L]`` with filters ``[C', C/G, F]``.

    The arguments of ``torch.nn.functional.conv1d`` without ``dilation``, and checked against it in
    ``tests/test_conv.py``.

    Args:
        input: sequences ``[N, C, L]``, or one sequence ``[C, L]``.
        weight: filter bank ``[C', C/G, F]``.
        bias: ``[C']``, or ``None``.
        stride: S, an int or a 1-tuple.
        padding: P zeros at both ends, an int or a 1-tuple.
        groups: G, which must divide C and C'.

    Returns:
        ``[N, C', L']`` (``[C', L']`` for one sequence), L' as in
        :func:`~visarch.functional.conv.conv_output_size`.
    """
    return conv_nd(input, weight, bias, dims=1, stride=stride, padding=padding, groups=groups)


def conv2d(input, weight, bias=None, *, stride=1, padding=0, groups=1):
    """2D convolution of a batch of images ``[N, C, H, W]`` with filters ``[C', C/G, F_h, F_w]``.

    The arguments of ``torch.nn.functional.conv2d`` without ``dilation``, and checked against it in
    ``tests/test_conv.py``.

    Args:
        input: images ``[N, C, H, W]``, or one image ``[C, H, W]``.
        weight: filter bank ``[C', C/G, F_h, F_w]``.
        bias: ``[C']``, or ``None``.
        stride: S, an int or a pair ``(S_h, S_w)``.
        padding: P zeros on every edge, an int or a pair ``(P_h, P_w)``.
        groups: G, which must divide C and C'.

    Returns:
        ``[N, C', H', W']`` (``[C', H', W']`` for one image), H' and W' as in
        :func:`~visarch.functional.conv.conv_output_size`.
    """
    return conv_nd(input, weight, bias, dims=2, stride=stride, padding=padding, groups=groups)


def conv3d(input, weight, bias=None, *, stride=1, padding=0, groups=1):
    """3D convolution of a batch of volumes or clips ``[N, C, D, H, W]`` with filters ``[C', C/G, F_d, F_h, F_w]``.

    The arguments of ``torch.nn.functional.conv3d`` without ``dilation``, and checked against it in
    ``tests/test_conv.py``.

    Args:
        input: volumes ``[N, C, D, H, W]``, or one volume ``[C, D, H, W]``.
        weight: filter bank ``[C', C/G, F_d, F_h, F_w]``.
        bias: ``[C']``, or ``None``.
        stride: S, an int or a triple ``(S_d, S_h, S_w)``.
        padding: P zeros on every face, an int or a triple ``(P_d, P_h, P_w)``.
        groups: G, which must divide C and C'.

    Returns:
        ``[N, C', D', H', W']`` (``[C', D', H', W']`` for one volume), each size as in
        :func:`~visarch.functional.conv.conv_output_size`.
    """
    return conv_nd(input, weight, bias, dims=3, stride=stride, padding=padding, groups=groups)


def conv_matrix(weight, input_size, *, stride=1, padding=0, groups=1):
    """The matrix V of Fact 1.2: ``conv2d(x, weight) == (V @ vec(x)).view(C', H', W')``.

    ``input_size`` is ``(C, H, W)``; V has shape ``[C' H' W', C H W]`` and
    ``vec`` flattens in row-major order (channel, then row, then column), the
    order of ``Tensor.reshape``.  Entry ``V[(o, i, j), (c, r, s)]`` holds the
    filter weight that multiplies input pixel ``(c, r, s)`` when output pixel
    ``(o, i, j)`` is computed, and is zero when that pixel is outside the
    window or in the zero padding.  The bias is not part of V.  Checked against
    ``torch.nn.functional.conv2d`` and torch's Jacobian of it in ``tests/test_conv.py``.

    Args:
        weight: filter bank ``[C', C/G, F_h, F_w]``.
        input_size: ``(C, H, W)``, the shape of one input image.
        stride: S, an int or a pair, as for :func:`~visarch.functional.conv.conv2d`.
        padding: P, an int or a pair, as for :func:`~visarch.functional.conv.conv2d`.
        groups: G, which must divide C and C'.

    Returns:
        V, ``[C' H' W', C H W]``, with the dtype and device of ``weight``.
    """
    check_floating(where="conv_matrix", weight=weight)
    c_in, h, w = check_ints(tuple(input_size), "input_size (C, H, W)", where="conv_matrix", ge=1, length=3)
    # an empty tensor of the input's shape lets conv_matrix share conv2d's checks
    probe = weight.new_empty(c_in, h, w)
    _, _, (sh, sw), (ph, pw), groups = _check_conv(probe, weight, None, stride, padding, groups, dims=2,
                                                   where="conv_matrix")
    c_out, c_per_group, fh, fw = weight.shape
    h_out = conv_output_size(h, fh, sh, ph)
    w_out = conv_output_size(w, fw, sw, pw)
    o, c, i, j, k, l = torch.meshgrid(
        *(torch.arange(m, device=weight.device) for m in (c_out, c_per_group, h_out, w_out, fh, fw)),
        indexing="ij",
    )  # every (output pixel, filter tap) pair, each [C', C/G, H', W', F_h, F_w]
    channel = (o // (c_out // groups)) * c_per_group + c  # input channel that tap reads
    r, s = i * sh + k - ph, j * sw + l - pw  # input pixel, in unpadded coordinates
    inside = (r >= 0) & (r < h) & (s >= 0) & (s < w)  # taps on padding contribute nothing
    rows = (o * h_out + i) * w_out + j
    cols = (channel * h + r) * w + s
    v = weight.new_zeros(c_out * h_out * w_out, c_in * h * w)
    # each (row, col) pair occurs at most once, since k = r - i*S + P is determined
    v[rows[inside], cols[inside]] = weight[o, c, k, l][inside]
    return v
