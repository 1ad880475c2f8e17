r"""Max and average pooling from scratch (Building blocks chapter).

Notation (shared by the whole book): an input batch ``x`` has shape ``[N, C, H, W]``; a pooling
window is ``F_h x F_w``, it moves with stride ``S`` and the input gets ``P`` cells of padding on
every edge.  Pooling has no weights: each channel is reduced on its own, window by window.  With
0-based indices and the padded input :math:`\tilde x`, the window of output ``(i, j)`` holds the
cells :math:`\tilde x_{n,c,\,iS_h + k,\; jS_w + l}` for :math:`0 \le k < F_h,\ 0 \le l < F_w`, and

.. math::

    \text{max pooling:}\quad y_{n,c,i,j} = \max_{k,l}\ \tilde x_{n,c,\,iS_h + k,\; jS_w + l},
    \qquad
    \text{average pooling:}\quad y_{n,c,i,j} = \frac{1}{D_{ij}} \sum_{k,l} \tilde x_{n,c,\,iS_h + k,\; jS_w + l}.

Max pooling pads with :math:`-\infty`, so a padding cell never wins; average pooling pads with
zeros and divides by :math:`D_{ij} = F_h F_w` (``count_include_pad=True``, the padding zeros
count) or by the number of the window's cells that lie in the input (``count_include_pad=False``).

The output has :math:`H' = \lfloor (H + 2P_h - F_h)/S_h \rfloor + 1` rows, the size of a
convolution's output (Lemma 1.1 of the notes); ``ceil_mode=True`` rounds up instead, so a last,
partial window covers the input's remaining rows, unless that window would start in the bottom
padding (see :func:`pool_output_size`).  Likewise for the columns.  The cells a partial window
reaches beyond the padding count as padding for the maximum but never for the divisor.

Gradients follow from the formulas: the gradient of one output of max pooling reaches only the
cell that won its window, with weight 1; that of average pooling reaches every input cell of the
window, with weight :math:`1/D_{ij}`.  Overlapping windows (``S < F``) add their contributions.

Every function takes the arguments of ``torch.nn.functional.max_pool2d`` or ``avg_pool2d`` except
``dilation``, ``return_indices`` and ``divisor_override``, which are not covered, and is checked
against it, outputs and input gradients, in ``tests/test_pooling.py``.  :func:`global_avg_pool2d`
is the global pooling of the ResNet and ViT heads, ``adaptive_avg_pool2d(x, 1)`` flattened.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visarch.checks import check_bool, check_floating, check_int, pair

__all__ = ["avg_pool2d", "global_avg_pool2d", "max_pool2d", "pool_output_size"]


def _output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool, *, where: str,
                 axis: str) -> int:
    """:func:`pool_output_size` for arguments already checked one by one; refuses an empty output."""
    out = -(-(size + 2 * padding - kernel) // stride) if ceil_mode else (size + 2 * padding - kernel) // stride
    out += 1
    if ceil_mode and (out - 1) * stride >= size + padding:  # the last window would start in the right padding
        out -= 1
    if out < 1:
        raise ValueError(
            f"{where}: output {axis} must be >= 1, got {out} "
            f"(kernel_size F={kernel} exceeds the padded {axis} Z+2P={size}+2*{padding}={size + 2 * padding})"
        )
    return out


def _check_padding(kernel: tuple[int, ...], padding: tuple[int, ...], *, where: str, given) -> None:
    """torch's rule: the padding is at most half the kernel, so every window holds an input cell.

    ``given`` is ``(padding, kernel_size)`` as the caller passed them, for the message.
    """
    if any(p > f // 2 for f, p in zip(kernel, padding, strict=True)):
        raise ValueError(
            f"{where}: padding must be at most half of kernel_size (P <= F // 2), "
            f"got padding={given[0]!r} with kernel_size={given[1]!r}"
        )


def pool_output_size(size: int, kernel_size: int, stride: int | None = None, padding: int = 0,
                     ceil_mode: bool = False) -> int:
    r"""Output length of a pooling along one axis, as ``torch.nn.functional.max_pool2d`` computes it.

    .. math::

        Z' = \left\lfloor \frac{Z + 2P - F}{S} \right\rfloor + 1
        \quad\text{or, in ceil mode,}\quad
        Z' = \left\lceil \frac{Z + 2P - F}{S} \right\rceil + 1,

    and in ceil mode one less if :math:`(Z' - 1)S \ge Z + P`: the last window must start inside
    the input or the left padding, never in the right padding only.  The floor is the size of a
    convolution's output (:func:`~visarch.functional.conv.conv_output_size`).  Rounding up keeps
    a last, partial window that reaches past the padded input.  Checked against the output shapes
    of ``torch.nn.functional.max_pool2d`` in ``tests/test_pooling.py``.

    Args:
        size: the input length Z (H or W).
        kernel_size: the window size F.
        stride: the stride S; ``None`` (the default) means F, windows side by side.
        padding: the P cells added at each end, at most F // 2.
        ceil_mode: round up instead of down.

    Returns:
        The output length Z' (H' or W'), at least 1.

    Raises:
        ValueError: an argument is out of range, or no window fits (Z' < 1).
    """
    where = "pool_output_size"
    size = check_int(size, "size Z", where=where, ge=1)
    kernel_size = check_int(kernel_size, "kernel_size F", where=where, ge=1)
    stride = kernel_size if stride is None else check_int(stride, "stride S", where=where, ge=1)
    padding = check_int(padding, "padding P", where=where, ge=0)
    _check_padding((kernel_size,), (padding,), where=where, given=(padding, kernel_size))
    check_bool(ceil_mode, "ceil_mode", where=where)
    return _output_size(size, kernel_size, stride, padding, ceil_mode, where=where, axis="size")


def _windows(input, kernel_size, stride, padding, ceil_mode, *, where, fill):
    """Check the arguments of a 2D pooling and cut the input into its windows.

    Pads ``input`` with ``fill``: P cells on the top and left, and on the bottom and right P cells
    or as many as ceil mode's last window needs.  ``Tensor.unfold(axis, F, S)`` then views each
    axis as windows of length F every S cells, without copying.

    Returns:
        ``(windows, unbatched, geometry)``: ``windows`` is ``[N, C, H', W', F_h, F_w]`` (a view),
        ``unbatched`` says whether ``input`` was ``[C, H, W]``, and ``geometry`` holds
        ``(Z, F, S, P, Z')`` for the rows, then for the columns.
    """
    check_floating(where=where, input=input)
    if input.dim() not in (3, 4):
        raise ValueError(f"{where}: input must have rank 4 [N, C, H, W] or 3 [C, H, W], got rank {input.dim()}")
    kernel = pair(kernel_size, "kernel_size", where=where, ge=1)
    stride = kernel if stride is None else pair(stride, "stride", where=where, ge=1)
    pads = pair(padding, "padding", where=where, ge=0)
    _check_padding(kernel, pads, where=where, given=(padding, kernel_size))
    padding = pads
    check_bool(ceil_mode, "ceil_mode", where=where)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input  # [N, C, H, W]
    geometry = []
    for axis, letter, size, f, s, p in zip(("height", "width"), "HW", x.shape[2:], kernel, stride, padding,
                                           strict=True):
        check_int(size, f"input {axis} {letter}", where=where, ge=1)
        geometry.append((size, f, s, p, _output_size(size, f, s, p, ceil_mode, where=where, axis=axis)))
    (h, fh, sh, ph, h_out), (w, fw, sw, pw, w_out) = geometry
    bottom, right = (max(p, (out - 1) * s + f - size - p) for size, f, s, p, out in geometry)
    x = F.pad(x, (pw, right, ph, bottom), value=fill)  # [N, C, P_h + H + bottom, P_w + W + right]
    windows = x.unfold(2, fh, sh).unfold(3, fw, sw)  # [N, C, >= H', >= W', F_h, F_w], a view
    return windows[:, :, :h_out, :w_out], unbatched, geometry  # [N, C, H', W', F_h, F_w]


def max_pool2d(input, kernel_size, *, stride=None, padding=0, ceil_mode=False):
    """2D max pooling of a batch of images ``[N, C, H, W]``: the largest value of every window.

    The input is padded with -inf and cut into windows (views, no copy); each window is flattened
    row by row and ``argmax`` picks its winner, which ``take_along_dim`` reads out.  Autograd
    through that read sends the gradient of each output to its winner only.  On a tie the first
    maximum in row-by-row order wins, as in torch's kernels, which scan the window that way and
    replace the running maximum only by a strictly larger value; the gradients therefore agree
    with torch's on ties too.  Two corners differ: a window whose input cells are all -inf (torch
    credits its first input cell, here a padding cell may win and the gradient is dropped) and a
    window with several NaNs (torch credits the last, here the first).

    The arguments of ``torch.nn.functional.max_pool2d`` without ``dilation`` and
    ``return_indices``; those after ``kernel_size`` are keyword-only, as in
    :func:`~visarch.functional.conv.conv2d` (torch's fifth positional argument is ``dilation``).

    Args:
        input: images ``[N, C, H, W]``, or one image ``[C, H, W]``, floating point.
        kernel_size: the window F, an int or a pair ``(F_h, F_w)``.
        stride: S, an int or a pair ``(S_h, S_w)``; ``None`` (the default) means F.
        padding: P cells of -inf on every edge, an int or a pair, at most half the kernel (F // 2).
        ceil_mode: round the output size up (:func:`pool_output_size`).

    Returns:
        ``[N, C, H', W']`` (``[C, H', W']`` for one image), H' and W' as in :func:`pool_output_size`.
    """
    windows, unbatched, _ = _windows(input, kernel_size, stride, padding, ceil_mode, where="max_pool2d",
                                     fill=float("-inf"))
    flat = windows.flatten(-2)  # [N, C, H', W', F_h*F_w], a copy: row by row within each window
    winner = flat.argmax(dim=-1, keepdim=True)  # [N, C, H', W', 1], the first maximum
    y = flat.take_along_dim(winner, dim=-1).squeeze(-1)  # [N, C, H', W']
    return y[0] if unbatched else y


def _divisor(size: int, kernel: int, stride: int, padding: int, out: int, count_include_pad: bool):
    """The number of cells average pooling divides by, for each window along one axis: ``[Z']``.

    Window ``i`` covers the input cells ``[iS - P, iS - P + F)``, cut at the end of the right
    padding (ceil mode's last window may reach past it; those cells never count), and, without
    ``count_include_pad``, also cut to the input ``[0, Z)``.
    """
    start = torch.arange(out) * stride - padding  # [Z']
    end = (start + kernel).clamp(max=size + padding)
    if not count_include_pad:
        start, end = start.clamp(min=0), end.clamp(max=size)
    return end - start  # [Z']


def avg_pool2d(input, kernel_size, *, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """2D average pooling of a batch of images ``[N, C, H, W]``: the mean of every window.

    The input is padded with zeros and cut into windows (views, no copy); each window's sum is
    divided by its number of cells, ``F_h F_w`` with ``count_include_pad`` (the padding zeros
    count, as a convolution with the filter ``1 / (F_h F_w)`` everywhere would see them),
    otherwise the number of its cells inside the input.  The divisors of a window are the product
    of one count per axis.  Autograd through the sum gives each cell of a window the output's
    gradient times ``1 / divisor``.

    The arguments of ``torch.nn.functional.avg_pool2d`` without ``divisor_override``; those after
    ``kernel_size`` are keyword-only, as in :func:`~visarch.functional.conv.conv2d`.

    Args:
        input: images ``[N, C, H, W]``, or one image ``[C, H, W]``, floating point.
        kernel_size: the window F, an int or a pair ``(F_h, F_w)``.
        stride: S, an int or a pair ``(S_h, S_w)``; ``None`` (the default) means F.
        padding: P zeros on every edge, an int or a pair, at most half the kernel (F // 2).
        ceil_mode: round the output size up (:func:`pool_output_size`).
        count_include_pad: divide by the whole window, padding included (the default), or only by
            its cells inside the input.

    Returns:
        ``[N, C, H', W']`` (``[C, H', W']`` for one image), H' and W' as in :func:`pool_output_size`.
    """
    where = "avg_pool2d"
    check_bool(count_include_pad, "count_include_pad", where=where)
    windows, unbatched, (rows, cols) = _windows(input, kernel_size, stride, padding, ceil_mode, where=where,
                                                fill=0.0)
    sums = windows.sum(dim=(-2, -1))  # [N, C, H', W']
    counts = _divisor(*rows, count_include_pad)[:, None] * _divisor(*cols, count_include_pad)  # [H', W']
    y = sums / counts.to(device=sums.device, dtype=sums.dtype)  # [N, C, H', W']
    return y[0] if unbatched else y


def global_avg_pool2d(input):
    """Global average pooling: the mean of each channel over the whole image, ``[N, C, H, W] -> [N, C]``.

    The head of ResNet reduces every feature map to one number this way, whatever the image size
    (a ViT head that averages its patch tokens does the same over the token grid); it equals
    ``adaptive_avg_pool2d(x, 1)`` flattened, and :func:`avg_pool2d` with one window as large as
    the image.  The gradient of
    output ``(n, c)`` reaches every cell of its map with weight ``1 / (H W)``.

    Args:
        input: feature maps ``[N, C, H, W]``, or one image's ``[C, H, W]``, floating point.

    Returns:
        ``[N, C]`` (``[C]`` for one image).
    """
    where = "global_avg_pool2d"
    check_floating(where=where, input=input)
    if input.dim() not in (3, 4):
        raise ValueError(f"{where}: input must have rank 4 [N, C, H, W] or 3 [C, H, W], got rank {input.dim()}")
    for axis, letter, size in zip(("height", "width"), "HW", input.shape[-2:], strict=True):
        check_int(size, f"input {axis} {letter}", where=where, ge=1)
    return input.mean(dim=(-2, -1))  # [N, C] or [C]
