"""The convolution test cases every convolution test draws from (``tests/test_conv.py``,
``tests/test_transposed.py``), in one place.

* :class:`ConvCase`, the random strategy :func:`conv_cases` and the hand-picked :data:`EDGE_CASES` of a
  2D convolution (strides, padding, groups, non-square shapes, batch 1 and unbatched input);
* :class:`TransCase`, :func:`trans_cases` and :data:`TRANS_EDGE_CASES` of a transposed convolution
  (also padding beyond the notes' bound F - 1, and output padding);
* :func:`nd_cases`, a random convolution with 1 or 3 spatial axes;
* :func:`make_tensors`, the seeded float64 tensors of a case, and :data:`TOL`, the tolerance against
  torch.
"""

from __future__ import annotations

import dataclasses

import torch
from hypothesis import example
from hypothesis import strategies as st

# float64 sums of at most C/G * F_h * F_w = 75 products: only rounding differs from torch.
TOL = {"rtol": 1e-10, "atol": 1e-12}


def int_or_pair(draw, a, b):
    """Pass ``(a, b)`` as the int ``a`` half of the time when both are equal."""
    return a if a == b and draw(st.booleans()) else (a, b)


def as_pair(value):
    """An int or a pair, as a pair."""
    return value if isinstance(value, tuple) else (value, value)


def zeros(*shape, dtype=torch.float64):
    return torch.zeros(shape, dtype=dtype)


def make_tensors(case, requires_grad=False):
    """Random float64 input, weight and bias (or None) of ``case`` (a ConvCase or TransCase), from its seed,
    and the generator, for drawing more."""
    gen = torch.Generator().manual_seed(case.seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=requires_grad)

    x, weight = randn(*case.input_shape), randn(*case.weight_shape)
    bias = randn(case.c_out) if case.bias else None
    return x, weight, bias, gen


def with_edge_cases(test, cases=None, *, unbatched=False):
    """Decorate a ``@given(case=...)`` test with every edge case as an explicit example (as unbatched
    ``[C, H, W]`` inputs if ``unbatched``)."""
    for case in reversed(EDGE_CASES if cases is None else cases):
        test = example(case=dataclasses.replace(case, n=None) if unbatched else case)(test)
    return test


# --------------------------------------------------------------------------- convolutions


@dataclasses.dataclass(frozen=True)
class ConvCase:
    """One convolution: shapes, hyper-parameters and the seed of its random tensors.

    ``n=None`` means an unbatched ``[C, H, W]`` input.  ``stride`` and ``padding`` are kept
    in the form passed to the functions (an int or a pair).
    """

    n: int | None
    c_in: int
    c_out: int
    groups: int
    h: int
    w: int
    fh: int
    fw: int
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    bias: bool = True
    seed: int = 0

    @property
    def kwargs(self):
        return {"stride": self.stride, "padding": self.padding, "groups": self.groups}

    @property
    def input_shape(self):
        chw = (self.c_in, self.h, self.w)
        return chw if self.n is None else (self.n, *chw)

    @property
    def weight_shape(self):
        return (self.c_out, self.c_in // self.groups, self.fh, self.fw)

    @property
    def output_padding(self):
        """The output_padding that makes the transposed convolution with this case's weight, stride and
        padding return the input's H x W (0 <= it < S)."""
        return tuple((size + 2 * p - f) % s for size, f, s, p in
                     zip((self.h, self.w), (self.fh, self.fw), as_pair(self.stride), as_pair(self.padding),
                         strict=True))


@st.composite
def conv_cases(draw, unbatched=False):
    """Random configurations, small enough for the loop version."""
    groups = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return ConvCase(
        n=None if unbatched else draw(st.integers(1, 2)),
        c_in=groups * draw(st.integers(1, 3)),
        c_out=groups * draw(st.integers(1, 3)),
        groups=groups,
        h=h,
        w=w,
        fh=draw(st.integers(1, min(5, h + 2 * ph))),
        fw=draw(st.integers(1, min(5, w + 2 * pw))),
        stride=int_or_pair(draw, sh, sw),
        padding=int_or_pair(draw, ph, pw),
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


# Hand-picked edge cases, run as explicit examples before the random ones.
EDGE_CASES = [
    # 1x1 image, 1x1 filter, no padding; batch 1
    ConvCase(n=1, c_in=1, c_out=1, groups=1, h=1, w=1, fh=1, fw=1),
    # 1x1 image with padding: every tap but the centre reads a zero; no bias
    ConvCase(n=2, c_in=2, c_out=3, groups=1, h=1, w=1, fh=3, fw=3, stride=2, padding=1, bias=False),
    # 1x1 image, unequal padding, filter exactly the padded size (5 x 3)
    ConvCase(n=1, c_in=1, c_out=2, groups=1, h=1, w=1, fh=5, fw=3, padding=(2, 1)),
    # filter as large as the padded input (H' = W' = 1), non-square
    ConvCase(n=2, c_in=2, c_out=2, groups=1, h=3, w=5, fh=5, fw=5, padding=(1, 0)),
    # stride larger than the filter: some input pixels are never read
    ConvCase(n=1, c_in=1, c_out=2, groups=1, h=7, w=6, fh=2, fw=1, stride=(3, 4), bias=False),
    # non-square everything: H != W, F_h != F_w, S_h != S_w, P_h != P_w
    ConvCase(n=2, c_in=2, c_out=3, groups=1, h=5, w=7, fh=3, fw=2, stride=(1, 2), padding=(2, 1)),
    # groups > 1
    ConvCase(n=2, c_in=4, c_out=6, groups=2, h=6, w=5, fh=3, fw=3, stride=2, padding=1),
    # depthwise (G = C = C'), and depthwise with channel multiplier 2
    ConvCase(n=1, c_in=3, c_out=3, groups=3, h=5, w=5, fh=3, fw=3, padding=1, bias=False),
    ConvCase(n=2, c_in=3, c_out=6, groups=3, h=4, w=6, fh=2, fw=3, stride=(2, 1)),
    # unbatched [C, H, W] input, with and without bias
    ConvCase(n=None, c_in=2, c_out=4, groups=2, h=5, w=4, fh=3, fw=2, stride=(2, 1), padding=(1, 0)),
    ConvCase(n=None, c_in=1, c_out=1, groups=1, h=1, w=1, fh=1, fw=1, bias=False),
]


@st.composite
def nd_cases(draw, dims, max_size):
    """A random convolution with ``dims`` spatial axes: (input, weight, bias, kwargs), float64."""
    groups = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, max_size)) for _ in range(dims)]
    padding = [draw(st.integers(0, 2)) for _ in range(dims)]
    kernel = [draw(st.integers(1, min(4, z + 2 * p))) for z, p in zip(sizes, padding, strict=True)]
    stride = [draw(st.integers(1, 3)) for _ in range(dims)]
    n, c_in, c_out = draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)

    x = randn(*([] if draw(st.booleans()) and n == 1 else [n]), c_in, *sizes)  # sometimes unbatched
    bias = randn(c_out) if draw(st.booleans()) else None
    as_int = draw(st.booleans())
    kwargs = {"stride": stride[0] if as_int and len(set(stride)) == 1 else tuple(stride),
              "padding": padding[0] if as_int and len(set(padding)) == 1 else tuple(padding),
              "groups": groups}
    return x, randn(c_out, c_in // groups, *kernel), bias, kwargs


# --------------------------------------------------------------------------- transposed convolutions


def transposed_out_size(size, f, s, p, o):
    """Lemma 1.3 with output padding; only used to discard invalid draws."""
    return (size - 1) * s + f - 2 * p + o


@dataclasses.dataclass(frozen=True)
class TransCase:
    """One transposed convolution; ``n=None`` means an unbatched ``[C, H, W]`` input.

    ``c_in`` is the number of input channels C, ``c_out`` the number of output channels C'.
    """

    n: int | None
    c_in: int
    c_out: int
    groups: int
    h: int
    w: int
    fh: int
    fw: int
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    output_padding: int | tuple[int, int] = 0
    bias: bool = True
    seed: int = 0

    @property
    def kwargs(self):
        return {"stride": self.stride, "padding": self.padding, "output_padding": self.output_padding,
                "groups": self.groups}

    @property
    def input_shape(self):
        chw = (self.c_in, self.h, self.w)
        return chw if self.n is None else (self.n, *chw)

    @property
    def weight_shape(self):
        return (self.c_in, self.c_out // self.groups, self.fh, self.fw)  # torch's layout [C, C'/G, F_h, F_w]


@st.composite
def trans_cases(draw):
    groups = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    fh, fw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    oh, ow = draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))
    # P up to F + 1 covers the notes' range P <= F - 1 and torch's cropping beyond it
    ph, pw = draw(st.integers(0, fh + 1)), draw(st.integers(0, fw + 1))
    if transposed_out_size(h, fh, sh, ph, oh) < 1 or transposed_out_size(w, fw, sw, pw, ow) < 1:
        ph, pw = 0, 0  # torch refuses an empty output; keep the draw, without padding
    return TransCase(
        n=draw(st.sampled_from([None, 1, 2])),
        c_in=groups * draw(st.integers(1, 3)),
        c_out=groups * draw(st.integers(1, 3)),
        groups=groups,
        h=h, w=w, fh=fh, fw=fw,
        stride=int_or_pair(draw, sh, sw),
        padding=int_or_pair(draw, ph, pw),
        output_padding=int_or_pair(draw, oh, ow),
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


TRANS_EDGE_CASES = [
    # 1x1 everything, batch 1
    TransCase(n=1, c_in=1, c_out=1, groups=1, h=1, w=1, fh=1, fw=1),
    # the notes' picture: 3x3 input, F=3, S=2, P=1 -> 5x5
    TransCase(n=1, c_in=1, c_out=1, groups=1, h=3, w=3, fh=3, fw=3, stride=2, padding=1),
    # the U-Net upsampling F=4, S=2, P=1 (doubles the size), grouped
    TransCase(n=2, c_in=4, c_out=4, groups=2, h=4, w=4, fh=4, fw=4, stride=2, padding=1),
    # P > F - 1: torch crops; F=1, S=2, P=1
    TransCase(n=2, c_in=2, c_out=3, groups=1, h=3, w=4, fh=1, fw=1, stride=2, padding=1, bias=False),
    # output padding, non-square everything
    TransCase(n=2, c_in=3, c_out=2, groups=1, h=3, w=5, fh=2, fw=3, stride=(3, 2), padding=(1, 0),
              output_padding=(2, 1)),
    # depthwise (G = C = C')
    TransCase(n=1, c_in=3, c_out=3, groups=3, h=4, w=3, fh=3, fw=2, stride=2, output_padding=1),
    # unbatched [C, H, W] input, with and without bias
    TransCase(n=None, c_in=2, c_out=4, groups=2, h=3, w=2, fh=3, fw=2, stride=(2, 1), padding=(1, 0)),
    TransCase(n=None, c_in=1, c_out=1, groups=1, h=1, w=1, fh=2, fw=2, stride=2, bias=False),
]
