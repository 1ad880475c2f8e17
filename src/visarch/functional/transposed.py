r"""Transposed convolution from scratch (Building blocks, section "Transposed convolution").

A transposed convolution maps ``x`` of shape ``[N, C, H, W]`` to a larger
``y`` of shape ``[N, C', H', W']``.  Its weight has PyTorch's layout
``[C, C'/G, F_h, F_w]``: the first axis runs over the *input* channels, the
reverse of :func:`visarch.functional.conv.conv2d`.  With 0-based indices and one
group, every input pixel scatters a copy of its filter, scaled by its value,
into the output at offset :math:`(iS, jS)`, and the result is cropped by
:math:`P` on every edge:

.. math::

    y_{n,o,r,s} = b_o + \sum_{c=0}^{C-1} \sum_{i,j} \sum_{k,l}
        x_{n,c,i,j}\, W_{c,o,k,l}\; [\,iS + k - P = r\,]\,[\,jS + l - P = s\,].

The notes compute the same map as an ordinary convolution (their
TransConv algorithm, section 1.4); :func:`dilate_and_pad` is steps 1-2,
:func:`flip_weight` step 3, and :func:`conv_transpose2d` runs all four:

1. insert :math:`S-1` zeros between neighbouring pixels:
   :math:`H \to (H-1)S + 1` rows;
2. pad :math:`F-1-P` zeros on every edge (plus ``output_padding`` extra rows
   and columns at the bottom and right), so the image has
   :math:`f(H) = H + (H-1)(S-1) + 2(F-1-P)` rows;
3. flip the filter in both spatial axes, :math:`\bar W_{o,c,k,l} =
   W_{c,o,F-1-k,F-1-l}`, which also swaps the two channel axes (within each
   group) because PyTorch stores ``W`` input-channel first;
4. run a stride-1, padding-0 convolution of the padded image with
   :math:`\bar W`, which has :math:`f(H) - F + 1` output rows, that is

.. math::

    H' = (H - 1)S + F - 2P + \text{output\_padding}

(Lemma 1.3 of the notes, with PyTorch's ``output_padding``).  The notes ask
for :math:`P \le F - 1` so that step 2 pads a non-negative number of zeros.
PyTorch accepts any :math:`P \ge 0` that leaves :math:`H' \ge 1`; so does
this module, by reading a negative amount in step 2 as cropping
:math:`P - (F - 1)` rows of the zero-inserted image (``torch.nn.functional.pad``
crops for negative amounts).  Cropping the input of a stride-1 padding-0
convolution by one row crops its output by one row, so this is the same as
cropping the output.

**Skipping the zeros (sub-pixel form).**  At stride S only one row in S and one column in S of
the zero-inserted image are real pixels, so step 4 spends about :math:`1 - 1/S^2` of its
multiplications (three in four at S = 2) on zeros.  Which kernel taps meet real pixels depends
only on the output position modulo S.  Write an (uncropped) output row as :math:`u = qS + r`
with phase :math:`0 \le r < S`; it receives input row i through tap :math:`k = u - iS`, so
:math:`k \equiv r \pmod S`, that is :math:`k = r + mS` and :math:`i = q - m`:

.. math::

    y_{qS + r} = \sum_{m} x_{q - m}\, W_{r + mS}, \qquad 0 \le m < M = \lceil F / S \rceil

(one axis shown, W padded with zeros to MS taps).  For each phase r this is an ordinary
stride-1 convolution of the *original* input, padded by M - 1, with the flipped sub-filter
:math:`(W_{r + (M-1)S}, \dots, W_{r + S}, W_r)`.  Only the positions q that survive the
cropping by P are computed: output row :math:`t = u - P` belongs to phase
:math:`r \equiv t + P \pmod S`, so each phase fills every S-th row of the output, starting at
:math:`t_0 = (r - P) \bmod S`.  One :func:`~visarch.functional.conv.conv2d` call per phase
:math:`(r_h, r_w)` on the rows and columns of the padded input it needs gives the same output as
steps 1-4, while computing only the products of real pixels (and of the zero taps beyond F when
S does not divide F).  This is the equivalence between transposed convolution and sub-pixel
convolution noted by Shi et al. (2016); :func:`conv_transpose2d` uses it by default, and
``method="zero_insertion"`` runs the four steps literally.

Checked against :func:`torch.nn.functional.conv_transpose2d` in
``tests/test_transposed.py`` (both methods); dilation is not covered.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from visarch.checks import check_floating, check_int, pair
from visarch.functional.conv import conv2d

__all__ = ["METHODS", "conv_transpose2d", "conv_transpose2d_subpixel", "conv_transpose_output_size", "dilate_and_pad",
           "flip_weight", "subpixel_weight"]

METHODS = ("subpixel", "zero_insertion")  #: the two algorithms of conv_transpose2d(..., method=...)


def _output_size_formula(size, kernel_size, stride, padding, output_padding, letter="Z"):
    """Lemma 1.3 and its value, as a string for messages: ``(Z-1)S+F-2P+output_padding = ...``."""
    value = (size - 1) * stride + kernel_size - 2 * padding + output_padding
    return value, (f"({letter}-1)S+F-2P+output_padding = ({size}-1)*{stride}+{kernel_size}-2*{padding}"
                   f"+{output_padding} = {value}")


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0) -> int:
    r"""Output length of a transposed convolution along one axis (Lemma 1.3 of the notes).

    .. math:: Z' = (Z - 1)S + F - 2P + \text{output\_padding}

    As in PyTorch, ``output_padding`` must be smaller than S, and P may exceed
    the notes' bound F - 1 as long as Z' >= 1; checked against the sizes that
    ``torch.nn.functional.conv_transpose2d`` produces in ``tests/test_transposed.py``.

    Args:
        size: the input length Z (H or W).
        kernel_size: the filter size F.
        stride: the stride S.
        padding: P, the rows (or columns) cropped at each end.
        output_padding: extra rows (or columns) at the end, smaller than S.

    Returns:
        The output length Z' (H' or W').
    """
    for name, value, low in (("size Z", size, 1), ("kernel_size F", kernel_size, 1), ("stride S", stride, 1),
                             ("padding P", padding, 0), ("output_padding", output_padding, 0)):
        check_int(value, name, where="conv_transpose_output_size", ge=low)
    if output_padding >= stride:
        raise ValueError(f"output_padding={output_padding} must be smaller than stride S={stride}")
    value, formula = _output_size_formula(size, kernel_size, stride, padding, output_padding)
    if value < 1:
        raise ValueError(f"output size {formula} must be >= 1")
    return value


def _check_conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, *, where):
    """Validate the arguments of a 2D transposed convolution; return them normalised.

    Returns ``(x, unbatched, (S_h, S_w), (P_h, P_w), (O_h, O_w), G)`` where ``x``
    is ``[N, C, H, W]`` (a ``[C, H, W]`` input gains a batch axis, as in torch).
    """
    check_floating(where=where, input=input, weight=weight, bias=bias)
    if input.dim() not in (3, 4):
        raise ValueError(f"input must have rank 4 [N, C, H, W] (or 3 [C, H, W]), got rank {input.dim()}")
    if weight.dim() != 4:
        raise ValueError(f"weight must have rank 4 [C, C'/G, F_h, F_w], got rank {weight.dim()}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    stride = pair(stride, "stride S", where=where, ge=1)
    padding = pair(padding, "padding P", where=where, ge=0)
    output_padding = pair(output_padding, "output_padding", where=where, ge=0)
    groups = check_int(groups, "number of groups G", where=where, ge=1)
    c_in = x.shape[1]
    if weight.shape[0] != c_in:
        raise ValueError(
            f"weight [C, C'/G, F_h, F_w] has {weight.shape[0]} filters on its first axis, "
            f"expected one per input channel, C={c_in}"
        )
    if c_in % groups:
        raise ValueError(f"input channels C={c_in} are not divisible by groups G={groups}")
    c_out = weight.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias must have shape (C',) = ({c_out},), got {tuple(bias.shape)}")
    for axis, letter, size, f, s, p, o in zip(("height", "width"), "HW", x.shape[2:], weight.shape[2:], stride,
                                              padding, output_padding, strict=True):
        if o >= s:
            raise ValueError(f"output_padding={o} must be smaller than stride S={s} ({axis})")
        value, formula = _output_size_formula(size, f, s, p, o, letter)
        if value < 1:
            raise ValueError(f"output {axis} {formula} must be >= 1")
    return x, unbatched, stride, padding, output_padding, groups


def dilate_and_pad(input, kernel_size, *, stride=1, padding=0, output_padding=0):
    """Steps 1 and 2 of the notes' TransConv: the image that the stride-1 convolution reads.

    S-1 zeros go between neighbouring pixels, F-1-P on every edge and ``output_padding`` more
    at the bottom and right.  A negative F-1-P (P > F-1, which torch allows) crops the
    zero-inserted image instead.

    Args:
        input: ``[..., H, W]``, any number of leading axes.
        kernel_size: F, an int or a pair ``(F_h, F_w)``.
        stride: S, an int or a pair.
        padding: P, an int or a pair.
        output_padding: O, an int or a pair.

    Returns:
        ``[..., f(H) + O_h, f(W) + O_w]`` with f(t) = t + (t-1)(S-1) + 2(F-1-P).
    """
    check_floating(where="dilate_and_pad", input=input)
    fh, fw = pair(kernel_size, "kernel_size F", where="dilate_and_pad", ge=1)
    sh, sw = pair(stride, "stride S", where="dilate_and_pad", ge=1)
    ph, pw = pair(padding, "padding P", where="dilate_and_pad", ge=0)
    oh, ow = pair(output_padding, "output_padding", where="dilate_and_pad", ge=0)
    h, w = input.shape[-2:]
    # step 1: S-1 zeros between neighbouring pixels
    dilated = input.new_zeros(*input.shape[:-2], (h - 1) * sh + 1, (w - 1) * sw + 1)  # [..., (H-1)S_h+1, (W-1)S_w+1]
    dilated[..., ::sh, ::sw] = input
    # step 2: F-1-P zeros on each edge, output_padding more at the bottom and right
    top, left = fh - 1 - ph, fw - 1 - pw
    return F.pad(dilated, (left, left + ow, top, top + oh))  # [..., f(H) + O_h, f(W) + O_w]


def flip_weight(weight, groups=1):
    r"""Step 3 of the notes' TransConv: torch's ``[C, C'/G, F_h, F_w]`` weight as conv2d filters.

    Inside each group the channel axes swap (conv2d stores output channels first) and the
    filter turns by 180 degrees, :math:`\bar W_{o,c,k,l} = W_{c,o,F_h-1-k,F_w-1-l}`.

    Args:
        weight: a transposed convolution's weight ``[C, C'/G, F_h, F_w]``.
        groups: G, which must divide C.

    Returns:
        Filters ``[C', C/G, F_h, F_w]`` for :func:`~visarch.functional.conv.conv2d`.
    """
    check_floating(where="flip_weight", weight=weight)
    if weight.dim() != 4:
        raise ValueError(f"weight must have rank 4 [C, C'/G, F_h, F_w], got rank {weight.dim()}")
    check_int(groups, "number of groups G", where="flip_weight", ge=1)
    c_in, c_out_per_group, fh, fw = weight.shape
    if c_in % groups:
        raise ValueError(f"input channels C={c_in} are not divisible by groups G={groups}")
    return (
        weight.reshape(groups, c_in // groups, c_out_per_group, fh, fw)  # [G, C/G, C'/G, F_h, F_w]
        .transpose(1, 2)  # [G, C'/G, C/G, F_h, F_w]
        .reshape(groups * c_out_per_group, c_in // groups, fh, fw)  # [C', C/G, F_h, F_w]
        .flip(2, 3)
    )


def subpixel_weight(weight, groups, stride):
    r"""The sub-pixel form's conv2d filters, one filter bank per output phase ``(r_h, r_w)``.

    Filter :math:`(r_h, r_w, o)` holds taps :math:`W_{c,o,r_h + m_h S_h, r_w + m_w S_w}` at
    offset :math:`(M_h-1-m_h, M_w-1-m_w)` (flipped: the convolution reads :math:`x_{q-m}` at
    offset :math:`M-1-m`), and zeros for taps beyond F.

    Args:
        weight: a transposed convolution's weight ``[C, C'/G, F_h, F_w]``.
        groups: G, the number of groups.
        stride: the pair ``(S_h, S_w)``.

    Returns:
        ``[S_h, S_w, C', C/G, M_h, M_w]`` with :math:`M = \lceil F / S \rceil` along each axis.
    """
    c_in, c_out_per_group, fh, fw = weight.shape
    (sh, sw), (mh, mw) = stride, (math.ceil(fh / stride[0]), math.ceil(fw / stride[1]))
    if (mh * sh, mw * sw) != (fh, fw):
        weight = F.pad(weight, (0, mw * sw - fw, 0, mh * sh - fh))  # [C, C'/G, M_h S_h, M_w S_w], zeros beyond F
    taps = (weight.reshape(groups, c_in // groups, c_out_per_group, mh, sh, mw, sw)  # tap k = m S + r
            .permute(4, 6, 0, 2, 1, 3, 5))  # [S_h, S_w, G, C'/G, C/G, M_h, M_w], a view
    filters = weight.new_empty(taps.shape)
    # one strided copy per offset: several times faster than torch.flip and a reshape of this
    # seven-axis view, which copy two numbers at a time along the innermost axis
    for i in range(mh):
        for j in range(mw):
            filters[..., i, j] = taps[..., mh - 1 - i, mw - 1 - j]
    return filters.view(sh, sw, groups * c_out_per_group, c_in // groups, mh, mw)


def _phases(size_out, stride, padding):
    """Per phase r of one axis: ``(t0, q0, count)``, the first output row, its position q, the row count.

    Output row t is uncropped row u = t + P = q S + r; phase r owns rows t0, t0 + S, ... .
    """
    phases = []
    for r in range(stride):
        t0 = (r - padding) % stride
        phases.append((t0, (t0 + padding - r) // stride, len(range(t0, size_out, stride))))
    return phases


def conv_transpose2d_subpixel(x, weight, stride, padding, output_padding, groups):
    """Steps 1-4 without the products of inserted zeros (module docstring): one conv2d per phase.

    Takes checked arguments: ``x`` ``[N, C, H, W]``, ``weight`` ``[C, C'/G, F_h, F_w]``, and
    ``stride``, ``padding``, ``output_padding`` as pairs; returns ``[N, C', H', W']``, without bias.
    """
    n, (h, w), (fh, fw), c_out = x.shape[0], x.shape[2:], weight.shape[2:], weight.shape[1] * groups
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding
    h_out, w_out = (h - 1) * sh + fh - 2 * ph + oh, (w - 1) * sw + fw - 2 * pw + ow
    filters = subpixel_weight(weight, groups, stride)  # [S_h, S_w, C', C/G, M_h, M_w]
    mh, mw = filters.shape[-2:]
    rows, cols = _phases(h_out, sh, ph), _phases(w_out, sw, pw)
    # M-1 zeros before the first pixel; after the last, as many as the furthest phase reads
    # (output_padding can reach past every pixel: those rows are zero)
    bottom = max(0, max(q0 + count for _, q0, count in rows) - h)
    right = max(0, max(q0 + count for _, q0, count in cols) - w)
    padded = F.pad(x, (mw - 1, right, mh - 1, bottom))  # [N, C, M_h-1 + H + bottom, M_w-1 + W + right]
    y = x.new_empty(n, c_out, h_out, w_out)
    for r_h, (t_h, q_h, count_h) in enumerate(rows):
        for r_w, (t_w, q_w, count_w) in enumerate(cols):
            if count_h and count_w:
                window = padded[..., q_h:q_h + count_h + mh - 1, q_w:q_w + count_w + mw - 1]
                y[..., t_h::sh, t_w::sw] = conv2d(window, filters[r_h, r_w], groups=groups)  # [N, C', count_h, count_w]
    return y


def conv_transpose2d(input, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1,
                     method="subpixel"):
    """Transposed convolution as the notes build it: zeros in, pad, flip, convolve.

    The arguments of :func:`torch.nn.functional.conv_transpose2d` without ``dilation``, and
    checked against it in ``tests/test_transposed.py``.  Both output sizes must be at least 1
    (PyTorch also returns an empty tensor when only the width comes out as 0).

    Args:
        input: ``[N, C, H, W]``, or one image ``[C, H, W]``.
        weight: ``[C, C'/G, F_h, F_w]``, input channels first (torch's layout).
        bias: ``[C']``, or ``None``.
        stride: S, an int or a pair.
        padding: P, an int or a pair.
        output_padding: extra rows and columns at the bottom and right, an int or a pair, smaller than S.
        groups: G, which must divide C.
        method: ``"zero_insertion"`` runs the notes' four steps as written; ``"subpixel"`` (the
            default) computes the same sums without the products of inserted zeros, about
            :math:`S_h S_w` times fewer multiplications (see the module docstring).

    Returns:
        ``[N, C', H', W']`` (``[C', H', W']`` for one image), H' and W' as in
        :func:`~visarch.functional.transposed.conv_transpose_output_size`.
    """
    x, unbatched, stride, padding, output_padding, groups = _check_conv_transpose2d(
        input, weight, bias, stride, padding, output_padding, groups, where="conv_transpose2d")
    if method == "subpixel":
        y = conv_transpose2d_subpixel(x, weight, stride, padding, output_padding, groups)  # [N, C', H', W']
        if bias is not None:
            y = y + bias.view(-1, 1, 1)
    elif method == "zero_insertion":
        padded = dilate_and_pad(x, tuple(weight.shape[2:]), stride=stride, padding=padding,
                                output_padding=output_padding)  # [N, C, f(H) + O_h, f(W) + O_w]
        y = conv2d(padded, flip_weight(weight, groups), bias, stride=1, padding=0, groups=groups)  # [N, C', H', W']
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return y[0] if unbatched else y
