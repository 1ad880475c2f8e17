r"""2D convolution from scratch (Building blocks, section "2D convolution").

Notation (shared by the whole book): an input batch ``x`` has shape
``[N, C, H, W]``; a filter bank ``W`` has shape ``[C', C/G, F_h, F_w]``; the
stride is ``S``, the zero padding ``P``, the number of groups ``G``.  One
output value is a dot product between one filter and one patch of the padded
input :math:`\tilde x`,

.. math::

    y_{n,o,i,j} = b_o + \sum_{c=0}^{C/G-1} \sum_{k=0}^{F_h-1} \sum_{l=0}^{F_w-1}
        W_{o,c,k,l}\,\tilde x_{n,\,gC/G + c,\; iS_h + k,\; jS_w + l},
    \qquad g = \lfloor o / (C'/G) \rfloor,

with 0-based indices, and the output has :math:`H' = \lfloor (H + 2P_h - F_h)/S_h
\rfloor + 1` rows (Lemma 1.1 of the notes), likewise for the columns.

Every function here takes the arguments of :func:`torch.nn.functional.conv2d`
(``stride``, ``padding``, ``groups`` as ints or pairs; dilation is not covered)
and is checked against it in ``tests/test_conv.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visarch.functional._checks import check_floating, pair

__all__ = ["conv_output_size", "conv2d_loop", "conv2d", "conv_matrix"]


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    r"""Output length of a convolution along one axis (Lemma 1.1 of the notes).

    .. math:: Z' = \left\lfloor \frac{Z + 2P - F}{S} \right\rfloor + 1

    ``size`` is Z (H or W), ``kernel_size`` is F, ``stride`` is S, ``padding`` is P.
    """
    for name, value, low in (("size Z", size, 1), ("kernel_size F", kernel_size, 1),
                             ("stride S", stride, 1), ("padding P", padding, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if kernel_size > size + 2 * padding:
        raise ValueError(
            f"filter size F={kernel_size} exceeds padded size Z+2P={size + 2 * padding}"
        )
    return (size + 2 * padding - kernel_size) // stride + 1


def _check_conv2d(input, weight, bias, stride, padding, groups):
    """Validate the arguments of a 2D convolution; return them normalised.

    Returns ``(x, unbatched, (S_h, S_w), (P_h, P_w), G)`` where ``x`` is
    ``[N, C, H, W]`` (a ``[C, H, W]`` input gains a batch axis, as in torch).
    """
    check_floating(input=input, weight=weight, bias=bias)
    if input.dim() not in (3, 4):
        raise ValueError(
            f"input must have rank 4 [N, C, H, W] (or 3 [C, H, W]), got rank {input.dim()}"
        )
    if weight.dim() != 4:
        raise ValueError(f"weight must have rank 4 [C', C/G, F_h, F_w], got rank {weight.dim()}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    stride = pair(stride, "stride S", low=1)
    padding = pair(padding, "padding P", low=0)
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"groups must be an int, got {type(groups).__name__}")
    if groups < 1:
        raise ValueError(f"number of groups G must be >= 1, got {groups}")
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
    for axis, size, f, p in (("height", x.shape[2], weight.shape[2], padding[0]),
                             ("width", x.shape[3], weight.shape[3], padding[1])):
        if f > size + 2 * p:
            raise ValueError(f"filter {axis} F={f} exceeds padded {axis} {size}+2*{p}={size + 2 * p}")
    return x, unbatched, stride, padding, groups


def conv2d_loop(input, weight, bias=None, *, stride=1, padding=0, groups=1):
    """The notes' Conv2D algorithm, step by step, with explicit loops (small inputs only).

    Step 1 pads the input with P zeros; step 2 slides every filter over the
    padded image in steps of S, row by row, and appends one dot product plus
    bias per position.  Window starts are 0, S, 2S, ... (0-based), and a row
    or column whose window would run past the padded edge is skipped.
    """
    x, unbatched, (sh, sw), (ph, pw), groups = _check_conv2d(input, weight, bias, stride, padding, groups)
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


def conv2d(input, weight, bias=None, *, stride=1, padding=0, groups=1):
    """Vectorised 2D convolution: gather every patch at once, then one contraction.

    ``Tensor.unfold(dim, F, S)`` cuts axis ``dim`` into windows of length F
    taken every S steps, which is exactly the set of window starts of the
    loop version; no Python loop runs over pixels, channels or the batch.
    """
    x, unbatched, (sh, sw), (ph, pw), groups = _check_conv2d(input, weight, bias, stride, padding, groups)
    n, c_in = x.shape[:2]
    c_out, c_per_group, fh, fw = weight.shape
    x_pad = F.pad(x, (pw, pw, ph, ph))  # [N, C, H + 2P_h, W + 2P_w]
    patches = x_pad.unfold(2, fh, sh).unfold(3, fw, sw)  # [N, C, H', W', F_h, F_w]
    h_out, w_out = patches.shape[2:4]
    patches = patches.reshape(n, groups, c_per_group, h_out, w_out, fh, fw)  # split C into G groups
    filters = weight.reshape(groups, c_out // groups, c_per_group, fh, fw)  # [G, C'/G, C/G, F_h, F_w]
    # y[n, g, o, i, j] = sum over (c, k, l) of patch * filter, for every group at once
    y = torch.einsum("ngcijkl,gockl->ngoij", patches, filters)
    y = y.reshape(n, c_out, h_out, w_out)  # [N, C', H', W']
    if bias is not None:
        y = y + bias.view(1, c_out, 1, 1)
    return y[0] if unbatched else y


def conv_matrix(weight, input_size, *, stride=1, padding=0, groups=1):
    """The matrix V of Fact 1.2: ``conv2d(x, weight) == (V @ vec(x)).view(C', H', W')``.

    ``input_size`` is ``(C, H, W)``; V has shape ``[C' H' W', C H W]`` and
    ``vec`` flattens in row-major order (channel, then row, then column), the
    order of ``Tensor.reshape``.  Entry ``V[(o, i, j), (c, r, s)]`` holds the
    filter weight that multiplies input pixel ``(c, r, s)`` when output pixel
    ``(o, i, j)`` is computed, and is zero when that pixel is outside the
    window or in the zero padding.  The bias is not part of V.
    """
    check_floating(weight=weight)
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (C, H, W), got {tuple(input_size)}")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in input_size):
        raise ValueError(f"input_size (C, H, W) must hold positive ints, got {tuple(input_size)}")
    c_in, h, w = input_size
    # an empty tensor of the input's shape lets conv_matrix share conv2d's checks
    probe = weight.new_empty(c_in, h, w)
    _, _, (sh, sw), (ph, pw), groups = _check_conv2d(probe, weight, None, stride, padding, groups)
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
