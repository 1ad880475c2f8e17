"""The from-scratch pooling of ``visarch.functional.pooling`` agrees with torch.

What this file proves, each time against a source independent of the code under test:

* ``max_pool2d`` and ``avg_pool2d`` give the output of ``torch.nn.functional.max_pool2d`` and
  ``avg_pool2d`` and the same input gradient (torch's autograd through torch's pooling), over random
  configurations of kernel, stride (``None`` included), padding, ``ceil_mode``, ``count_include_pad``,
  odd and non-square sizes, batched and unbatched input, float32 and float64, plus hand-picked edge
  cases.  Max pooling agrees exactly, its gradient too: the upstream gradient holds small integers, so
  sums of it are exact in any order; inputs with many ties check that both pick torch's winner;
* they refuse a configuration (no window fits) exactly when torch does;
* ``pool_output_size`` is the size torch's pooling produces, and refuses exactly when torch does;
* the Jacobian of max pooling has one 1 per output, at the index torch's ``return_indices`` reports
  (tie-free input); that of average pooling spreads 1/(F_h F_w) (or 1 over the cells inside the
  input) over the window and nothing elsewhere;
* ``global_avg_pool2d`` is ``adaptive_avg_pool2d(x, 1)`` flattened, output and gradient;
* bad arguments raise the documented exception, its message naming the function and the condition.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from visarch.functional import avg_pool2d, global_avg_pool2d, max_pool2d, pool_output_size

# float64 sums of at most 25 cells, one division: only rounding differs from torch.
TOL64 = {"rtol": 1e-12, "atol": 1e-14}
EXACT = {"rtol": 0, "atol": 0}


def tolerance(dtype):
    """Average pooling's tolerance against torch: tight in float64, assert_close's defaults in float32."""
    return TOL64 if dtype == torch.float64 else {}


# --------------------------------------------------------------------------- random cases


@dataclasses.dataclass(frozen=True)
class PoolCase:
    """One pooling: shapes, arguments as passed (ints or pairs) and the seed of its random input.

    ``n=None`` means an unbatched ``[C, H, W]`` input; ``ties`` draws the input from {0, 1, 2}.
    """

    n: int | None
    c: int
    h: int
    w: int
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    dtype: torch.dtype = torch.float64
    ties: bool = False
    seed: int = 0

    @property
    def kwargs(self):
        """max_pool2d's keyword arguments (avg_pool2d's add count_include_pad)."""
        return {"stride": self.stride, "padding": self.padding, "ceil_mode": self.ceil_mode}

    @property
    def shape(self):
        return (self.c, self.h, self.w) if self.n is None else (self.n, self.c, self.h, self.w)

    def tensors(self):
        """The input (requiring grad) and a generator for drawing more, from the seed."""
        gen = torch.Generator().manual_seed(self.seed)
        if self.ties:
            x = torch.randint(0, 3, self.shape, generator=gen).to(self.dtype)
        else:
            x = torch.randn(self.shape, generator=gen, dtype=self.dtype)
        return x.requires_grad_(), gen


def int_or_pair(draw, a, b):
    """Pass ``(a, b)`` as the int ``a`` half of the time when both are equal."""
    return a if a == b and draw(st.booleans()) else (a, b)


@st.composite
def pool_cases(draw):
    """Random configurations that satisfy torch's padding rule P <= F // 2; some have no window."""
    fh, fw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, fh // 2)), draw(st.integers(0, fw // 2))
    stride = None
    if draw(st.booleans()):
        stride = int_or_pair(draw, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return PoolCase(
        n=draw(st.sampled_from([None, 1, 2])),
        c=draw(st.integers(1, 3)),
        h=draw(st.integers(1, 9)),
        w=draw(st.integers(1, 9)),
        kernel=int_or_pair(draw, fh, fw),
        stride=stride,
        padding=int_or_pair(draw, ph, pw),
        ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
        dtype=draw(st.sampled_from([torch.float32, torch.float64])),
        ties=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


# Hand-picked edge cases, run as explicit examples before the random ones.
EDGE_CASES = [
    # the ResNet stem's pooling, 3x3 / 2 with padding 1, odd size, ceil mode (last window partial)
    PoolCase(n=2, c=2, h=7, w=7, kernel=3, stride=2, padding=1, ceil_mode=True),
    # GoogLeNet's 3x3 / 2 in ceil mode on an even size: the last window reaches past the input
    PoolCase(n=1, c=3, h=8, w=8, kernel=3, stride=2, ceil_mode=True, count_include_pad=False),
    # ceil mode's correction: ceil((3 + 2 - 2) / 2) + 1 = 3 windows, but the third would start in the padding
    PoolCase(n=1, c=1, h=3, w=3, kernel=2, stride=2, padding=1, ceil_mode=True),
    PoolCase(n=1, c=1, h=3, w=3, kernel=2, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    # a window larger than the 1x1 image: only ceil mode has an output
    PoolCase(n=1, c=2, h=1, w=1, kernel=3, ceil_mode=True),
    # the default stride (= kernel), non-square kernel, unbatched
    PoolCase(n=None, c=2, h=6, w=9, kernel=(2, 3)),
    # stride larger than the kernel: some cells are in no window
    PoolCase(n=2, c=1, h=9, w=7, kernel=2, stride=(3, 4)),
    # overlapping windows (S < F): a cell can win several windows, its gradients add up
    PoolCase(n=1, c=2, h=6, w=5, kernel=3, stride=1, padding=1, ties=True),
    # non-square everything, float32, padding excluded from the mean
    PoolCase(n=2, c=3, h=5, w=8, kernel=(3, 4), stride=(1, 3), padding=(1, 2), ceil_mode=True,
             count_include_pad=False, dtype=torch.float32),
    # 1x1 windows: pooling is subsampling
    PoolCase(n=None, c=1, h=5, w=4, kernel=1, stride=2),
]


def with_edge_cases(test):
    for case in reversed(EDGE_CASES):
        test = example(case=case)(test)
    return test


def integer_grad(shape, gen, dtype):
    """An upstream gradient of small integers: its sums are exact whatever the order of addition."""
    return torch.randint(-4, 5, shape, generator=gen).to(dtype)


# --------------------------------------------------------------------------- max_pool2d, avg_pool2d


@with_edge_cases
@settings(max_examples=400)
@given(case=pool_cases())
def test_max_pool2d_matches_torch(case):
    x, gen = case.tensors()
    try:
        expected = F.max_pool2d(x, case.kernel, **case.kwargs)
    except RuntimeError:  # torch finds no window: ours refuses too
        with pytest.raises(ValueError, match=r"max_pool2d: output (height|width) must be >= 1"):
            max_pool2d(x, case.kernel, **case.kwargs)
        return
    actual = max_pool2d(x, case.kernel, **case.kwargs)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert_close(actual, expected, **EXACT)

    grad_out = integer_grad(expected.shape, gen, case.dtype)
    (want,) = torch.autograd.grad(expected, x, grad_out)
    (got,) = torch.autograd.grad(actual, x, grad_out)
    assert_close(got, want, **EXACT)


@with_edge_cases
@settings(max_examples=400)
@given(case=pool_cases())
def test_avg_pool2d_matches_torch(case):
    x, gen = case.tensors()
    kwargs = {**case.kwargs, "count_include_pad": case.count_include_pad}
    try:
        expected = F.avg_pool2d(x, case.kernel, **kwargs)
    except RuntimeError:
        with pytest.raises(ValueError, match=r"avg_pool2d: output (height|width) must be >= 1"):
            avg_pool2d(x, case.kernel, **kwargs)
        return
    actual = avg_pool2d(x, case.kernel, **kwargs)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert_close(actual, expected, **tolerance(case.dtype))

    grad_out = torch.randn(expected.shape, generator=gen, dtype=case.dtype)
    (want,) = torch.autograd.grad(expected, x, grad_out)
    (got,) = torch.autograd.grad(actual, x, grad_out)
    assert_close(got, want, **tolerance(case.dtype))


def test_max_pool2d_ties_go_to_the_first_maximum_as_in_torch():
    """A constant image: every cell of every window ties; torch credits each window's first cell."""
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    (want,) = torch.autograd.grad(F.max_pool2d(x, 2, 1).sum(), x)
    (got,) = torch.autograd.grad(max_pool2d(x, 2, stride=1).sum(), x)
    assert_close(got, want, **EXACT)
    assert want[0, 0, :3, :3].eq(1).all() and want.sum() == 9  # the first cell of each of the 9 windows


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d_padding_never_wins(ceil_mode):
    """Inputs near -1e300: a padding cell of any finite value would beat them; max pooling pads with -inf."""
    gen = torch.Generator().manual_seed(3)
    x = (-1e300 * (1 + torch.rand(2, 3, 6, 7, generator=gen, dtype=torch.float64))).requires_grad_()
    expected, actual = (fn(x, 3, stride=2, padding=1, ceil_mode=ceil_mode) for fn in (F.max_pool2d, max_pool2d))
    assert_close(actual, expected, **EXACT)
    grad_out = integer_grad(expected.shape, gen, torch.float64)
    assert_close(torch.autograd.grad(actual, x, grad_out)[0], torch.autograd.grad(expected, x, grad_out)[0], **EXACT)


@pytest.mark.parametrize("fn", [max_pool2d, avg_pool2d])
def test_pooling_runs_on_a_batch_of_feature_maps(fn):
    """A ResNet-sized map ([8, 64, 56, 56]) in one vectorised call, equal to torch's."""
    x = torch.randn(8, 64, 56, 56, generator=torch.Generator().manual_seed(0))
    theirs = F.max_pool2d if fn is max_pool2d else F.avg_pool2d
    assert_close(fn(x, 3, stride=2, padding=1), theirs(x, 3, 2, 1))


# --------------------------------------------------------------------------- pool_output_size


@st.composite
def axis_configs(draw):
    """(size Z, kernel F, stride S or None, padding P <= F // 2, ceil_mode); some have no window."""
    kernel = draw(st.integers(1, 8))
    return (draw(st.integers(1, 30)), kernel, draw(st.one_of(st.none(), st.integers(1, 6))),
            draw(st.integers(0, kernel // 2)), draw(st.booleans()))


@settings(max_examples=500)
@given(rows=axis_configs(), cols=axis_configs())
@example(rows=(3, 2, 2, 1, True), cols=(1, 3, None, 0, True))  # the ceil-mode correction; a window past the image
def test_pool_output_size_matches_torch(rows, cols):
    (h, fh, sh, ph, ceil_h), (w, fw, sw, pw, _) = rows, cols
    stride = (fh if sh is None else sh, fw if sw is None else sw)
    try:
        y = F.max_pool2d(torch.zeros(1, 1, h, w), (fh, fw), stride, (ph, pw), ceil_mode=ceil_h)
    except RuntimeError:  # no window along some axis: ours refuses on that axis
        refused = 0
        for size, f, s, p in ((h, fh, sh, ph), (w, fw, sw, pw)):
            try:
                pool_output_size(size, f, s, p, ceil_h)
            except ValueError as error:
                assert re.match(r"pool_output_size: output size must be >= 1, got -?\d+ \(kernel_size F=", str(error))
                refused += 1
        assert refused >= 1
        return
    assert pool_output_size(h, fh, sh, ph, ceil_h) == y.shape[2]
    assert pool_output_size(w, fw, sw, pw, ceil_h) == y.shape[3]


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((0, 1), ValueError, r"pool_output_size: size Z must be >= 1, got 0"),
        ((5, 0), ValueError, r"pool_output_size: kernel_size F must be >= 1, got 0"),
        ((5, 3, 0), ValueError, r"pool_output_size: stride S must be >= 1, got 0"),
        ((5, 3, 1, -1), ValueError, r"pool_output_size: padding P must be >= 0, got -1"),
        ((5, 3, 1, 2), ValueError,
         r"pool_output_size: padding must be at most half of kernel_size \(P <= F // 2\), got padding=2 with "
         r"kernel_size=3"),
        ((2, 5), ValueError,
         r"pool_output_size: output size must be >= 1, got 0 \(kernel_size F=5 exceeds the padded size Z\+2P=2"),
        ((5.0, 3), TypeError, r"pool_output_size: size Z must be an int, got float 5\.0"),
        ((5, 3, True), TypeError, r"pool_output_size: stride S must be an int, got bool"),
        ((5, 3, 1, 0, 1), TypeError, r"pool_output_size: ceil_mode must be a bool, got int 1"),
    ],
)
def test_pool_output_size_raises(args, exc, match):
    with pytest.raises(exc, match=match):
        pool_output_size(*args)


# --------------------------------------------------------------------------- gradient structure


def window_cells(i, j, case):
    """The input cells (row, column) of output (i, j)'s window, from the definition: rows
    [i S_h - P_h, i S_h - P_h + F_h) and likewise for the columns, those inside the image."""
    (fh, fw), (sh, sw), (ph, pw) = ((v, v) if isinstance(v, int) else v for v in
                                    (case.kernel, case.stride or case.kernel, case.padding))
    return [(r, c) for r in range(i * sh - ph, i * sh - ph + fh) for c in range(j * sw - pw, j * sw - pw + fw)
            if 0 <= r < case.h and 0 <= c < case.w]


GRADIENT_CASES = [
    PoolCase(n=None, c=2, h=5, w=6, kernel=3, stride=2, padding=1),
    PoolCase(n=None, c=1, h=6, w=4, kernel=(2, 3), stride=1, padding=(1, 0)),
    PoolCase(n=None, c=2, h=4, w=4, kernel=2),
    PoolCase(n=None, c=1, h=7, w=5, kernel=(3, 2), stride=(2, 3), padding=(1, 1), count_include_pad=False),
    PoolCase(n=None, c=1, h=5, w=5, kernel=3, stride=2, padding=1, count_include_pad=False),
]


@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_max_pool2d_gradient_reaches_one_input_per_window(case):
    """Tie-free input: each output's gradient is a single 1, at the cell torch's return_indices names."""
    x = torch.randperm(case.c * case.h * case.w, generator=torch.Generator().manual_seed(1)).to(torch.float64)
    x = x.view(case.shape)
    jac = torch.autograd.functional.jacobian(lambda v: max_pool2d(v, case.kernel, **case.kwargs), x)
    _, winners = F.max_pool2d(x, case.kernel, **case.kwargs, return_indices=True)  # [C, H', W'], flat in H*W
    c, h_out, w_out = winners.shape
    rows = jac.reshape(c, h_out, w_out, c, case.h * case.w)
    for ch in range(c):
        for i in range(h_out):
            for j in range(w_out):
                expected = torch.zeros(c, case.h * case.w, dtype=torch.float64)
                expected[ch, winners[ch, i, j]] = 1
                assert_close(rows[ch, i, j], expected, **EXACT)
                assert divmod(int(winners[ch, i, j]), case.w) in window_cells(i, j, case)


@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_avg_pool2d_gradient_spreads_over_the_window(case):
    """Each output's gradient is 1/(F_h F_w) on every input cell of its window (1 over the number of its
    cells inside the image when padding is not counted) and zero elsewhere."""
    x = torch.randn(case.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kwargs = {**case.kwargs, "count_include_pad": case.count_include_pad}
    jac = torch.autograd.functional.jacobian(lambda v: avg_pool2d(v, case.kernel, **kwargs), x)
    c, h_out, w_out = jac.shape[:3]
    fh, fw = (case.kernel, case.kernel) if isinstance(case.kernel, int) else case.kernel
    for ch in range(c):
        for i in range(h_out):
            for j in range(w_out):
                cells = window_cells(i, j, case)
                expected = torch.zeros(c, case.h, case.w, dtype=torch.float64)
                for r, col in cells:
                    expected[ch, r, col] = 1 / (fh * fw) if case.count_include_pad else 1 / len(cells)
                assert_close(jac[ch, i, j], expected, **TOL64)


# --------------------------------------------------------------------------- global_avg_pool2d


@settings(max_examples=100)
@given(shape=st.tuples(st.sampled_from([(), (1,), (3,)]), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**32 - 1))
def test_global_avg_pool2d_matches_adaptive_avg_pool2d(shape, dtype, seed):
    batch, c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, c, h, w, generator=gen, dtype=dtype, requires_grad=True)
    expected = F.adaptive_avg_pool2d(x, 1).flatten(-3)  # [N, C] or [C]
    actual = global_avg_pool2d(x)
    assert actual.shape == expected.shape == (*batch, c)
    assert_close(actual, expected, **tolerance(dtype))
    grad_out = torch.randn(expected.shape, generator=gen, dtype=dtype)
    assert_close(torch.autograd.grad(actual, x, grad_out)[0], torch.autograd.grad(expected, x, grad_out)[0],
                 **tolerance(dtype))


@pytest.mark.parametrize(
    "input, exc, match",
    [
        (torch.zeros(3, 4), ValueError, r"global_avg_pool2d: input must have rank 4 \[N, C, H, W\] or 3 \[C, H, W\], "
                                        r"got rank 2"),
        (torch.zeros(1, 2, 3, 4, 5), ValueError, r"global_avg_pool2d: input must have rank 4 .*, got rank 5"),
        (torch.zeros(1, 2, 3, 3, dtype=torch.int64), TypeError,
         r"global_avg_pool2d: input must have a floating-point dtype, got torch.int64"),
        (torch.zeros(1, 2, 0, 3), ValueError, r"global_avg_pool2d: input height H must be >= 1, got 0"),
        ([[[0.0]]], TypeError, r"global_avg_pool2d: input must be a torch.Tensor, got list"),
    ],
)
def test_global_avg_pool2d_bad_input_raises(input, exc, match):
    with pytest.raises(exc, match=match):
        global_avg_pool2d(input)


# --------------------------------------------------------------------------- bad arguments


# A valid call, which each case below breaks in one way: x [2, 3, 5, 6], 3x3 windows, stride 2, padding 1.
VALID_ARGS = {"input": torch.zeros(2, 3, 5, 6), "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": False}

BAD_CASES = [
    ("kernel-0", {"kernel_size": 0}, ValueError, r"{fn}: kernel_size must be >= 1, got 0"),
    ("kernel-pair-with-0", {"kernel_size": (3, 0), "padding": 0}, ValueError,
     r"{fn}: kernel_size must be >= 1, got \(3, 0\)"),
    ("kernel-float", {"kernel_size": 3.0}, TypeError, r"{fn}: kernel_size must be an int or a pair of ints, got 3\.0"),
    ("kernel-triple", {"kernel_size": (3, 3, 3)}, TypeError,
     r"{fn}: kernel_size must be an int or a pair of ints, got \(3, 3, 3\)"),
    ("stride-0", {"stride": 0}, ValueError, r"{fn}: stride must be >= 1, got 0"),
    ("stride-pair-negative", {"stride": (2, -1)}, ValueError, r"{fn}: stride must be >= 1, got \(2, -1\)"),
    ("padding-negative", {"padding": -1}, ValueError, r"{fn}: padding must be >= 0, got -1"),
    ("padding-over-half-kernel", {"padding": 2}, ValueError,
     r"{fn}: padding must be at most half of kernel_size \(P <= F // 2\), got padding=2 with kernel_size=3"),
    ("padding-over-half-kernel-width", {"kernel_size": (3, 2), "padding": (1, 2)}, ValueError,
     r"{fn}: padding must be at most half of kernel_size \(P <= F // 2\), got padding=\(1, 2\) with "
     r"kernel_size=\(3, 2\)"),
    ("no-window", {"input": torch.zeros(2, 3, 2, 6), "kernel_size": 5, "stride": 1, "padding": 0}, ValueError,
     r"{fn}: output height must be >= 1, got -2 \(kernel_size F=5 exceeds the padded height Z\+2P=2\+2\*0=2\)"),
    ("empty-width", {"input": torch.zeros(2, 3, 5, 0)}, ValueError, r"{fn}: input width W must be >= 1, got 0"),
    ("ceil-mode-int", {"ceil_mode": 1}, TypeError, r"{fn}: ceil_mode must be a bool, got int 1"),
    ("input-integer", {"input": torch.zeros(2, 3, 5, 6, dtype=torch.int64)}, TypeError,
     r"{fn}: input must have a floating-point dtype, got torch.int64"),
    ("input-list", {"input": [[[[0.0]]]]}, TypeError, r"{fn}: input must be a torch.Tensor, got list"),
    ("input-rank-2", {"input": torch.zeros(5, 6)}, ValueError,
     r"{fn}: input must have rank 4 \[N, C, H, W\] or 3 \[C, H, W\], got rank 2"),
    ("input-rank-5", {"input": torch.zeros(1, 2, 3, 5, 6)}, ValueError, r"{fn}: input must have rank 4 .*, got rank 5"),
]


@pytest.mark.parametrize("fn", [max_pool2d, avg_pool2d], ids=lambda fn: fn.__name__)
@pytest.mark.parametrize("changes, exc, match", [pytest.param(*case[1:], id=case[0]) for case in BAD_CASES])
def test_bad_input_raises(fn, changes, exc, match):
    args = {**VALID_ARGS, **changes}
    with pytest.raises(exc, match=match.format(fn=fn.__name__)):
        fn(args.pop("input"), args.pop("kernel_size"), **args)


def test_avg_pool2d_count_include_pad_must_be_a_bool():
    with pytest.raises(TypeError, match=r"avg_pool2d: count_include_pad must be a bool, got str 'yes'"):
        avg_pool2d(torch.zeros(1, 1, 4, 4), 2, count_include_pad="yes")


@pytest.mark.parametrize("case", [case for case in BAD_CASES if case[2] is ValueError and "rank" not in case[0]],
                         ids=lambda case: case[0])
def test_torch_refuses_the_same_values(case):
    """Each out-of-range value is one torch refuses too, so the checks add no rule of their own."""
    args = {**VALID_ARGS, **case[1]}
    with pytest.raises(RuntimeError):
        F.max_pool2d(args.pop("input"), args.pop("kernel_size"), **args)


def test_valid_args_are_valid():
    """The base call of the table works, so each case fails for the one change it makes."""
    args = dict(VALID_ARGS)
    x, kernel = args.pop("input"), args.pop("kernel_size")
    assert_close(max_pool2d(x, kernel, **args), F.max_pool2d(x, kernel, **args))
    assert_close(avg_pool2d(x, kernel, **args), F.avg_pool2d(x, kernel, **args))
