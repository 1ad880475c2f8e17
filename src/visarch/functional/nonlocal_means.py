r"""Non-local means denoising from scratch (Buades, Coll and Morel, 2005), with the fast variant of
Darbon et al. (2008).

Every pixel :math:`x_1` of a noisy image :math:`z` is replaced by a weighted mean of the pixels
:math:`x_2 = x_1 + t` of its search window, :math:`t \in \{-d, \dots, d\}^2` (:math:`(2d+1)^2`
candidates), weighted by how much the *patches* around the two pixels look alike:

.. math::

    \hat y(x_1) = \frac{\sum_t w(x_1, x_1 + t)\, z(x_1 + t)}{\sum_t w(x_1, x_1 + t)}, \qquad
    w(x_1, x_2) = \exp\!\Big(-\frac{\max(f(x_1, x_2) - 2\sigma^2,\ 0)}{h^2}\Big),

    f(x_1, x_2) = \frac{1}{C} \sum_{c=1}^{C} \sum_{u \in U} k(u)\,
        \big(z_c(x_1 + u) - z_c(x_2 + u)\big)^2 ,

with :math:`U` the :math:`s \times s` patch around the origin (:math:`s` odd), a kernel
:math:`k \geq 0` that sums to one, the filtering parameter :math:`h > 0` and the noise standard
deviation :math:`\sigma \ge 0`: the squared difference of two independent noisy pixels is
:math:`2\sigma^2` on average, so subtracting it leaves the part of :math:`f` that comes from the
clean image (Buades et al., 2011).  The image is extended by mirror reflection (without repeating the
edge pixel, numpy's ``"reflect"``), so every pixel has a full patch and a full window.

* ``fast_mode=True`` (Darbon et al., 2008): :math:`k = 1/s^2` on the patch.  For one offset
  :math:`t` the squared differences :math:`(z(q) - z(q + t))^2` form one image, and its sum over
  every patch is a box filter, two running sums (an integral image), so a weight costs
  :math:`O(1)` whatever :math:`s`: :math:`O(N (2d+1)^2)` for :math:`N` pixels.  Since
  :math:`w(x_1, x_1 + t) = w(x_1 + t, (x_1 + t) - t)`, one weight image serves the offsets
  :math:`t` and :math:`-t`, so only half of the offsets are computed.
* ``fast_mode=False``: the Gaussian kernel :math:`k(u) \propto \exp(-|u|^2 / (2A^2))`,
  :math:`A = (s-1)/4`, of scikit-image's classic mode; the kernel is separable, so the weighted
  patch sums are two 1-D filters, :math:`O(N (2d+1)^2 s)`, against :math:`O(N (2d+1)^2 s^2)`
  for the direct sum.

``nl_means`` runs over the offsets with every pixel at once; ``nl_means_loop`` is the definition
above pixel by pixel (tiny images only); ``nl_means_weights`` returns the normalised weights of one
pixel over its window.

``skimage_compatible=True`` reproduces scikit-image's ``denoise_nl_means(..., fast_mode=True)``
(version 0.26), three details included: its integral image sums the squared differences over the
:math:`(s-1) \times (s-1)` pixels :math:`u \in \{-s/2 + 1, \dots, \lfloor s/2 \rfloor\}^2` (half
a pixel off centre) but divides by :math:`s^2` (as if :math:`h` were :math:`h\,s/(s-1)`); a
weight whose scaled distance exceeds 5 is set to zero; and the exponential is Schraudolph's (1999)
approximation (relative error up to about 4 %), computed bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from visarch.checks import check_floating, check_int, check_real

__all__ = ["NLMeansConfig", "nl_means", "nl_means_loop", "nl_means_weights", "reflect_pad", "schraudolph_exp"]

# scikit-image's fast_exp.h (Schraudolph, 1999): the high 32 bits of a double are set to
# EXP_A * y + EXP_BC, i.e. 2^(y / ln 2) with the fraction read off linearly.
_EXP_A = 1512775.3951951856938  # 2^20 / ln 2
_EXP_BC = 1072632447  # 1023 * 2^20 - 60801, the offset with the least RMS error
_SKIMAGE_CUTOFF = 5.0  # scikit-image drops a weight whose distance f / h^2 exceeds this
# Exponents are clipped at -80: exp(-80) ~ 2e-35 is still a normal float32, whereas the smaller weights
# would be subnormal numbers, which x86 processors handle tens of times more slowly.  A weight of
# 2e-35 instead of less moves no mean of at most (2d+1)^2 weights, the largest of which is 1, by 1e-30.
_MIN_EXPONENT = -80.0
# nl_means works on horizontal strips of about this many pixels (all images of the batch together), so
# that the few images of one offset stay in the processor's cache: on one thread a 512 x 512 image in
# one piece took about 1.3 times as long as in two strips of 256 rows (strips of 64 rows: the
# per-operation overhead of the many small operations wins again).
STRIP_PIXELS = 2**17


@dataclass(frozen=True)
class NLMeansConfig:
    """The parameters of non-local means, the keyword arguments of :func:`~visarch.functional.nonlocal_means.nl_means`.

    ``__post_init__`` checks them and raises ``TypeError`` or ``ValueError`` naming the violated condition.
    """

    patch_size: int = 7  #: s, the side of the square patch compared around each pixel (odd, so it has a centre)
    patch_distance: int = 11  #: d; the search window holds the (2d+1)^2 pixels within d of the pixel along each axis
    h: float = 0.1  #: the filtering parameter; a patch distance of h^2 above 2 sigma^2 divides a weight by e
    sigma: float = 0.0  #: noise standard deviation; 2 sigma^2 is subtracted from every patch distance
    fast_mode: bool = True  #: uniform patch kernel with box filters (Darbon et al.), or else the Gaussian kernel
    skimage_compatible: bool = False  #: reproduce scikit-image 0.26's fast mode to rounding (see the module)

    def __post_init__(self):
        s = check_int(self.patch_size, "patch size s", where=type(self).__name__, ge=1)
        d = check_int(self.patch_distance, "patch distance d", where=type(self).__name__, ge=0)
        if s % 2 == 0:
            raise ValueError(f"patch size s must be odd so that a patch has a centre pixel, got {s}")
        if 2 * d + 1 < s:
            raise ValueError(f"the search window (2d+1 = {2 * d + 1} pixels a side) must be at least as large as "
                             f"the patch (s = {s})")
        check_real(self.h, "filtering parameter h", where=type(self).__name__, gt=0, lt=math.inf)
        check_real(self.sigma, "noise standard deviation sigma", where=type(self).__name__, ge=0, lt=math.inf)
        if self.skimage_compatible and not self.fast_mode:
            raise ValueError("skimage_compatible reproduces scikit-image's fast mode only (fast_mode=True)")

    def kernel_1d(self, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
        """The factor ``g`` ``[s]`` of the separable patch kernel ``k = g g^T``.

        ``g`` sums to one, except in the scikit-image fast mode, whose first entry is 0 and the others 1/s.

        Args:
            dtype: the dtype of the result.
            device: its device (default: the CPU).

        Returns:
            ``[s]``.
        """
        s = self.patch_size
        if self.skimage_compatible:
            return torch.cat([torch.zeros(1, dtype=dtype, device=device),
                              torch.full((s - 1,), 1.0 / s, dtype=dtype, device=device)])
        if self.fast_mode or s == 1:
            return torch.full((s,), 1.0 / s, dtype=dtype, device=device)
        u = torch.arange(s, dtype=dtype, device=device) - s // 2
        g = torch.exp(-u * u / (2 * ((s - 1) / 4) ** 2))
        return g / g.sum()


def schraudolph_exp(y: torch.Tensor) -> torch.Tensor:
    """Scikit-image's ``fast_exp``: exp(y) to about 4 % (Schraudolph, 1999), float64, for y in [-700, 0].

    Args:
        y: float64 exponents, any shape.

    Returns:
        float64 of the shape of ``y``, bit for bit scikit-image's values.
    """
    high = torch.trunc(y * _EXP_A).to(torch.int64) + _EXP_BC  # C's (int) cast truncates toward zero
    return torch.bitwise_left_shift(high, 32).view(torch.float64)


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Mirror padding about the edge pixels, without repeating them (numpy's ``"reflect"``).

    Unlike ``torch.nn.functional.pad`` this accepts ``pad >= H``: the reflections repeat, the index
    running back and forth with period 2(H - 1).

    Args:
        x: ``[..., H, W]``.
        pad: the number of pixels added on every edge.

    Returns:
        ``[..., H + 2 pad, W + 2 pad]``.
    """
    for dim in (-2, -1):
        n = x.shape[dim]
        i = torch.arange(-pad, n + pad, device=x.device)
        if n == 1:
            i = torch.zeros_like(i)
        else:
            i = i.remainder(2 * (n - 1))
            i = torch.where(i >= n, 2 * (n - 1) - i, i)
        x = x.index_select(dim, i)
    return x


def _as_batch(image: torch.Tensor, *, where) -> torch.Tensor:
    """``[H, W]``, ``[C, H, W]`` or ``[B, C, H, W]`` -> ``[B, C, H, W]`` (a view)."""
    check_floating(where=where, image=image)
    if image.dim() not in (2, 3, 4):
        raise ValueError(f"image must be [H, W], [C, H, W] or [B, C, H, W], got shape {tuple(image.shape)}")
    if min(image.shape[-2:]) < 1 or image.numel() == 0:
        raise ValueError(f"image must not be empty, got shape {tuple(image.shape)}")
    return image.reshape((-1, *image.shape[-3:]) if image.dim() == 4 else (1, -1, *image.shape[-2:]))


def _weights(dist: torch.Tensor, cfg: NLMeansConfig, channels: int, total: float) -> torch.Tensor:
    """Patch sums ``dist`` = sum_u g g^T sum_c (differences)^2 -> weights, in place (``total`` = sum of k)."""
    h2 = cfg.h * cfg.h
    if cfg.skimage_compatible:
        # scikit-image's order of operations: max(sum - 2 C var (s-1)^2, 0) / (C h^2 s^2)
        s = cfg.patch_size
        dist = dist.mul_(s * s).sub_(channels * 2 * cfg.sigma**2 * (s - 1) ** 2).clamp_(min=0)
        dist = dist.div_(channels * cfg.h * cfg.h * s * s)
        return torch.where(dist > _SKIMAGE_CUTOFF, 0.0, schraudolph_exp(-dist))
    dist = dist.sub_(channels * 2 * cfg.sigma**2 * total).clamp_(min=0).mul_(-1.0 / (channels * h2))
    return dist.clamp_(min=_MIN_EXPONENT).exp_()


def _patch_sums(diff2: torch.Tensor, g: torch.Tensor, box: tuple[int, float] | None) -> torch.Tensor:
    """``[B, L_h, L_w] -> [B, L_h - s + 1, L_w - s + 1]``: the sums of ``diff2`` weighted by ``g g^T`` over every
    s x s window.  With ``box = (first, scale)`` the kernel is ``scale`` on entries ``first..s-1`` of ``g``
    (uniform), and the sums are running sums: two subtractions per pixel whatever s."""
    s = g.numel()
    if box is None:
        for dim in (-2, -1):
            diff2 = diff2.unfold(dim, s, 1) @ g  # separable kernel: one 1-D filter per axis
        return diff2
    first, scale = box
    k = s - first  # box side
    if k == 0:  # scikit-image's box of a 1 x 1 patch is empty: every distance is 0
        return diff2.new_zeros(*diff2.shape[:-2], diff2.shape[-2] - s + 1, diff2.shape[-1] - s + 1)
    out = diff2.narrow(-2, first, diff2.shape[-2] - first).narrow(-1, first, diff2.shape[-1] - first)
    for dim in (-2, -1):
        c = out.cumsum(dim)
        n = c.shape[dim] - k + 1
        window = c.narrow(dim, k - 1, n).clone()
        window.narrow(dim, 1, n - 1).sub_(c.narrow(dim, 0, n - 1))
        out = window
    return out.mul_(scale * scale)


def nl_means(image: torch.Tensor, *, patch_size: int = 7, patch_distance: int = 11, h: float = 0.1,
             sigma: float = 0.0, fast_mode: bool = True, skimage_compatible: bool = False) -> torch.Tensor:
    """Non-local means of ``image`` (``[H, W]``, ``[C, H, W]`` or ``[B, C, H, W]``), same shape and dtype.

    The loop runs over the offsets t of the search window, half of them (one weight image serves t and
    -t), each one a few operations on a whole strip of rows; the channels share one weight per pixel pair.
    Checked against :func:`~visarch.functional.nonlocal_means.nl_means_loop` and scikit-image's
    ``denoise_nl_means`` in ``tests/test_nonlocal_means.py``.

    Args:
        image: ``[H, W]``, ``[C, H, W]`` or ``[B, C, H, W]``, floating point.
        patch_size: s, the odd side of the compared patches.
        patch_distance: d; the search window is ``(2d+1) x (2d+1)`` pixels, with 2d+1 at least s.
        h: the filtering parameter, > 0.
        sigma: the noise standard deviation, >= 0.
        fast_mode: the uniform kernel with box filters (True) or the Gaussian kernel (False).
        skimage_compatible: reproduce scikit-image's fast mode (see the module docstring).

    Returns:
        The denoised image, of the shape and dtype of ``image``.
    """
    cfg = NLMeansConfig(patch_size, patch_distance, h, sigma, fast_mode, skimage_compatible)
    x = _as_batch(image, where="nl_means")
    dtype = x.dtype
    if skimage_compatible:
        x = x.double()  # scikit-image computes in float64
    s, d = cfg.patch_size, cfg.patch_distance
    o = s // 2
    big = o + d  # padding: patches of neighbours at distance d
    xp = reflect_pad(x, big)  # [B, C, H + 2(o+d), W + 2(o+d)]
    channels, rows, cols = x.shape[1:]
    g = cfg.kernel_1d(x.dtype, x.device)
    total = float(g.sum()) ** 2
    if skimage_compatible:
        box = (1, 1.0 / s)
    elif fast_mode:
        box = (0, 1.0 / s)
    else:
        box = None
    # the offset t = 0: f = 0, the largest weight
    w0 = _weights(x.new_zeros(()), cfg, channels, total)
    num = x * w0  # [B, C, H, W]
    den = torch.full_like(x[:, :1], float(w0))  # [B, 1, H, W]
    strip = max(1, STRIP_PIXELS // (x.shape[0] * cols))
    for r0 in range(0, rows, strip):
        m = min(strip, rows - r0)  # the rows r0 .. r0 + m - 1 of the result
        num_strip, den_strip = num[..., r0:r0 + m, :], den[..., r0:r0 + m, :]
        for a in range(d + 1):
            for b in range(-d, d + 1):
                if a == 0 and b <= 0:
                    continue  # the other half of the window is served by -t
                c0 = min(0, -b)  # weights are needed for p in the strip and for p - t: rows r0-a.., cols c0..
                n_rows, n_cols = m + a, cols + abs(b)
                top, left = big + r0 - a - o, big + c0 - o  # padded index of the first patch pixel
                ref = xp[..., top:top + n_rows + s - 1, left:left + n_cols + s - 1]
                nb = xp[..., top + a:top + a + n_rows + s - 1, left + b:left + b + n_cols + s - 1]
                diff2 = (ref - nb).square_()
                diff2 = diff2[:, 0] if channels == 1 else diff2.sum(1)  # [B, m + a + s - 1, W + |b| + s - 1]
                w = _weights(_patch_sums(diff2, g, box), cfg, channels, total).unsqueeze(1)  # [B, 1, m + a, W + |b|]
                w_fwd = w[..., a:a + m, -c0:-c0 + cols]  # w(p, p + t), p in the strip
                w_bwd = w[..., :m, -c0 - b:-c0 - b + cols]  # w(p - t, p) = w(p, p - t)
                top = big + r0
                num_strip.addcmul_(w_fwd, xp[..., top + a:top + a + m, big + b:big + b + cols])
                num_strip.addcmul_(w_bwd, xp[..., top - a:top - a + m, big - b:big - b + cols])
                den_strip.add_(w_fwd).add_(w_bwd)
    return (num / den).to(dtype).reshape(image.shape)


def _patch_distance_loop(p1: torch.Tensor, p2: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """f for two ``[C, s, s]`` patches and the ``[s, s]`` kernel k: the sum over u, mean over channels."""
    return (k * (p1 - p2).square()).sum() / p1.shape[0]


def nl_means_loop(image: torch.Tensor, *, patch_size: int = 7, patch_distance: int = 11, h: float = 0.1,
                  sigma: float = 0.0, fast_mode: bool = True, skimage_compatible: bool = False) -> torch.Tensor:
    """The definition pixel by pixel and neighbour by neighbour: a reference for tiny images only.

    Same arguments and result as :func:`~visarch.functional.nonlocal_means.nl_means`; costs
    O(N (2d+1)^2 s^2) Python-level work.
    """
    cfg = NLMeansConfig(patch_size, patch_distance, h, sigma, fast_mode, skimage_compatible)
    x = _as_batch(image, where="nl_means_loop")
    dtype = x.dtype
    if skimage_compatible:
        x = x.double()
    s, d = cfg.patch_size, cfg.patch_distance
    o, big = s // 2, s // 2 + d
    xp = reflect_pad(x, big)
    g = cfg.kernel_1d(x.dtype, x.device)
    k = torch.outer(g, g)  # [s, s]
    total = float(k.sum())
    out = torch.empty_like(x)
    batch, channels, rows, cols = x.shape
    for n in range(batch):
        for i in range(rows):
            for j in range(cols):
                centre = xp[n, :, big + i - o:big + i + o + 1, big + j - o:big + j + o + 1]  # [C, s, s]
                num, den = x.new_zeros(channels), x.new_zeros(())
                for a in range(-d, d + 1):
                    for b in range(-d, d + 1):
                        r, c = big + i + a, big + j + b  # the neighbour x_2 = x_1 + t
                        f = _patch_distance_loop(centre, xp[n, :, r - o:r + o + 1, c - o:c + o + 1], k)
                        w = _weights(f * channels, cfg, channels, total)
                        num += w * xp[n, :, r, c]
                        den += w
                out[n, :, i, j] = num / den
    return out.to(dtype).reshape(image.shape)


def nl_means_weights(image: torch.Tensor, pixel: tuple[int, int], *, patch_size: int = 7, patch_distance: int = 11,
                     h: float = 0.1, sigma: float = 0.0, fast_mode: bool = True,
                     skimage_compatible: bool = False) -> torch.Tensor:
    """The normalised weights w(x_1, x_1 + t) of one pixel over its search window.

    They sum to one, and ``(weights * window).sum()`` is
    :func:`~visarch.functional.nonlocal_means.nl_means` at that pixel, whose keyword arguments
    this function takes too.

    Args:
        image: one image, ``[H, W]`` or ``[C, H, W]``.
        pixel: ``x_1 = (row, col)``.

    Returns:
        ``[2d+1, 2d+1]`` in the dtype of ``image``, the pixel itself (t = 0) at ``[d, d]``.
    """
    cfg = NLMeansConfig(patch_size, patch_distance, h, sigma, fast_mode, skimage_compatible)
    if image.dim() == 4:
        raise ValueError(f"nl_means_weights takes one image, [H, W] or [C, H, W], got shape {tuple(image.shape)}")
    x = _as_batch(image, where="nl_means_weights")[0]
    if skimage_compatible:
        x = x.double()
    channels, rows, cols = x.shape
    i, j = pixel
    if not (0 <= i < rows and 0 <= j < cols):
        raise ValueError(f"pixel {pixel} is outside the {rows} x {cols} image")
    s, d = cfg.patch_size, cfg.patch_distance
    big = s // 2 + d
    xp = reflect_pad(x, big)
    g = cfg.kernel_1d(x.dtype, x.device)
    k = torch.outer(g, g)
    region = xp[:, i:i + 2 * big + 1, j:j + 2 * big + 1]  # the window's patches: [C, 2d+s, 2d+s]
    patches = region.unfold(1, s, 1).unfold(2, s, 1)  # [C, 2d+1, 2d+1, s, s]
    centre = patches[:, d, d]  # [C, s, s]
    f = (k * (patches - centre[:, None, None]).square()).sum((-1, -2)).sum(0)  # [2d+1, 2d+1], times C
    w = _weights(f, cfg, channels, float(k.sum()))
    return (w / w.sum()).to(image.dtype)
