"""The receptive-field recursion of ``visarch.receptive_field`` agrees with torch's autograd.

What this file proves, each time against a source independent of the code under test:

* for random stacks of ``torch.nn.Conv2d`` (filter sizes, strides, paddings, dilations, a
  different stack along rows and columns), the recursion's interval for a unit is exactly
  the bounding box of the nonzero input gradient of that unit, computed by torch's autograd
  with weights and input all ones (so no sum cancels); when no stride exceeds its filter
  and nothing is dilated, every pixel of the interval is reached;
* closed forms: L layers of size F and stride 1 give r = L(F - 1) + 1; the jump is the
  product of the strides; a stride-2 layer followed by a 3x3 layer gives r = F_1 + 4;
* ``gradient_receptive_field`` is the row of torch's Jacobian belonging to the unit;
* ``erf_std`` and ``gaussian_fit_r2`` give the closed-form values of a sampled Gaussian and
  of the n-fold convolution of a uniform kernel (variance n(F^2 - 1)/12);
* bad arguments raise the documented exception with a message naming the violated condition.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from visarch.receptive_field import (
    Layer,
    ReceptiveField,
    conv_stack,
    effective_receptive_field,
    erf_std,
    gaussian_fit_r2,
    gradient_receptive_field,
    receptive_field,
)

# --------------------------------------------------------------------------- recursion vs autograd


@st.composite
def stacks(draw):
    """1 to 4 layers along one axis: F in 1..5, S in 1..3, P in 0..2, D in 1..2."""
    return [
        Layer(draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(1, 2)))
        for _ in range(draw(st.integers(1, 4)))
    ]


def torch_stack(rows, cols):
    """One Conv2d per layer, rows and columns from two stacks of one depth; weights all ones."""
    convs = [
        nn.Conv2d(1, 1, (r.kernel_size, c.kernel_size), stride=(r.stride, c.stride),
                  padding=(r.padding, c.padding), dilation=(r.dilation, c.dilation), bias=False)
        for r, c in zip(rows, cols, strict=True)
    ]
    for conv in convs:
        nn.init.ones_(conv.weight)
    return nn.Sequential(*convs).double()


def input_size(stack):
    """An input length whose centre output unit has its whole receptive field inside the image."""
    field = receptive_field(stack)[-1]
    return 2 * (field.size - field.start) + 2 * field.jump + 1


def support(grad, axis):
    """Indices along ``axis`` (0 rows, 1 columns) where the [H, W] gradient is nonzero."""
    return torch.nonzero(grad.abs().sum(1 - axis) > 0).flatten().tolist()


@settings(max_examples=150)
@given(rows=stacks(), data=st.data())
def test_recursion_is_support_of_input_gradient(rows, data):
    depth = len(rows)
    cols = [data.draw(stacks().map(lambda s: s[0])) for _ in range(depth)]
    model = torch_stack(rows, cols)
    h, w = input_size(rows), input_size(cols)
    y = model(torch.ones(1, 1, h, w, dtype=torch.float64))  # [1, 1, H', W']
    unit = (y.shape[2] // 2, y.shape[3] // 2)
    x = torch.ones(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x)[0, 0, unit[0], unit[1]], x)
    for axis, stack, size in ((0, rows, h), (1, cols, w)):
        first, last = receptive_field(stack)[-1].span(unit[axis])
        assert 0 <= first and last < size, "the chosen unit's field must lie inside the image"
        reached = support(grad[0, 0], axis)
        assert (reached[0], reached[-1]) == (first, last)
        if all(layer.stride <= layer.kernel_size and layer.dilation == 1 for layer in stack):
            assert reached == list(range(first, last + 1))


@settings(max_examples=100)
@given(stack=stacks())
def test_gradient_receptive_field_is_jacobian_row(stack):
    model = conv_stack(stack, channels=2, nonlinearity=nn.Tanh, bias=True).double()
    size = receptive_field(stack)[-1].size  # the smallest input with an output: a small Jacobian
    gen = torch.Generator().manual_seed(len(stack))
    x = torch.randn(1, 2, size, size, generator=gen, dtype=torch.float64)
    grad = gradient_receptive_field(model, (2, size, size), inputs=x)  # [1, 2, H, W]
    y = model(x)
    unit = (1, y.shape[2] // 2, y.shape[3] // 2)
    jacobian = torch.autograd.functional.jacobian(model, x)  # [1, C', H', W', 1, C, H, W]
    grad_unit = gradient_receptive_field(model, (2, size, size), inputs=x, unit=unit)
    torch.testing.assert_close(grad[0], jacobian[0, 0, unit[1], unit[2], 0])
    torch.testing.assert_close(grad_unit[0], jacobian[0, unit[0], unit[1], unit[2], 0])


def test_batch_rows_are_separate_gradients():
    model = conv_stack([Layer(3)] * 3, channels=2, nonlinearity=nn.ReLU).double()
    x = torch.randn(3, 2, 9, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batched = gradient_receptive_field(model, (2, 9, 9), inputs=x)
    for n in range(3):
        torch.testing.assert_close(batched[n], gradient_receptive_field(model, (2, 9, 9), inputs=x[n:n + 1])[0])


def test_default_input_is_ones_in_model_dtype():
    model = conv_stack([Layer(3)]).double()
    nn.init.ones_(model[0].weight)
    grad = gradient_receptive_field(model, (1, 5, 5))
    assert grad.dtype == torch.float64
    expected = torch.zeros(5, 5, dtype=torch.float64)
    expected[1:4, 1:4] = 1
    torch.testing.assert_close(grad[0, 0], expected)


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("depth", [1, 2, 5, 10])
@pytest.mark.parametrize("kernel", [1, 2, 3, 7])
def test_stride_one_stack_closed_form(depth, kernel):
    fields = receptive_field([Layer(kernel)] * depth)
    assert [f.size for f in fields] == [n * (kernel - 1) + 1 for n in range(1, depth + 1)]
    assert all(f.jump == 1 and f.start == 0 for f in fields)


@pytest.mark.parametrize("first_kernel", [1, 2, 3, 4])
def test_stride_two_then_three_by_three(first_kernel):
    # r_1 = F_1, j_1 = 2, then r_2 = F_1 + (3 - 1) * 2
    first, second = receptive_field([Layer(first_kernel, stride=2), Layer(3)])
    assert (first.size, first.jump) == (first_kernel, 2)
    assert (second.size, second.jump) == (first_kernel + 4, 2)


def test_jump_is_product_of_strides_and_padding_moves_start():
    fields = receptive_field([Layer(3, 2, 1), Layer(3, 3, 1), Layer(1, 2, 2)])
    assert [f.jump for f in fields] == [2, 6, 12]
    assert [f.start for f in fields] == [-1, -1 - 2, -3 - 2 * 6]
    assert [f.size for f in fields] == [3, 3 + 2 * 2, 7]
    assert fields[0].span(2) == (3, 5) and fields[0].centre == 0.0


def test_dilation_widens_the_filter():
    assert receptive_field([Layer(3, dilation=2), Layer(3, dilation=4)])[-1].size == 1 + 4 + 8


def test_erf_std_of_uniform_stack_is_closed_form():
    # n-fold convolution of a uniform F-tap kernel: variance n (F^2 - 1) / 12 per axis
    for depth, kernel in ((1, 3), (4, 3), (6, 5), (3, 2)):
        grad = gradient_receptive_field(_ones_stack(depth, kernel), (1, 40, 40))[0, 0]
        expected = math.sqrt(depth * (kernel**2 - 1) / 12)
        assert erf_std(grad) == pytest.approx((expected, expected), rel=1e-9)


def _ones_stack(depth, kernel):
    model = conv_stack([Layer(kernel)] * depth).double()
    for conv in model:
        nn.init.ones_(conv.weight)
    return model


def test_gaussian_fit_r2_of_a_gaussian_is_one():
    # sampled on 81 points, 6 standard deviations or more either side: truncation is negligible
    u = torch.arange(81, dtype=torch.float64)
    assert gaussian_fit_r2(3.0 * torch.exp(-((u - 40.5) ** 2) / (2 * 4.0**2))) == pytest.approx(1, abs=1e-12)
    assert gaussian_fit_r2(torch.ones(9, dtype=torch.float64)) < 0.5  # a box is no Gaussian
    h = torch.exp(-((u - 40) ** 2) / (2 * 5.0**2)).view(81, 1) * torch.exp(-((u - 30) ** 2) / (2 * 2.0**2)).view(1, 81)
    assert erf_std(h) == pytest.approx((5.0, 2.0), rel=1e-6)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "build, exc, match",
    [
        (lambda: Layer(0), ValueError, r"kernel_size F must be >= 1, got 0"),
        (lambda: Layer(3, stride=0), ValueError, r"stride S must be >= 1, got 0"),
        (lambda: Layer(3, stride=-2), ValueError, r"stride S must be >= 1, got -2"),
        (lambda: Layer(3, padding=-1), ValueError, r"padding P must be >= 0, got -1"),
        (lambda: Layer(3, dilation=0), ValueError, r"dilation D must be >= 1, got 0"),
        (lambda: Layer(3.0), TypeError, r"kernel_size F must be an int, got float"),
        (lambda: Layer(3, stride=True), TypeError, r"stride S must be an int, got bool"),
        (lambda: Layer(3, padding=None), TypeError, r"padding P must be an int, got NoneType"),
        (lambda: receptive_field([]), ValueError, r"the stack must hold at least one layer"),
        (lambda: receptive_field([(3, 1, 0)]), TypeError, r"each layer must be a Layer, got tuple"),
        (lambda: conv_stack([]), ValueError, r"the stack must hold at least one layer"),
        (lambda: conv_stack([Layer(3)], channels=0), ValueError, r"channels must be >= 1, got 0"),
        (lambda: gradient_receptive_field(lambda x: x, (1, 3, 3)), TypeError,
         r"model must be a torch.nn.Module, got function"),
        (lambda: gradient_receptive_field(conv_stack([Layer(3)]), (3, 3)), ValueError,
         r"input_shape must be \(C, H, W\), got \(3, 3\)"),
        (lambda: gradient_receptive_field(conv_stack([Layer(3)]), (1, 0, 3)), ValueError,
         r"input_shape H must be >= 1, got 0"),
        (lambda: gradient_receptive_field(conv_stack([Layer(3)]), (1, 5, 5), inputs=torch.ones(1, 2, 5, 5)),
         ValueError, r"inputs must have shape \[N, 1, 5, 5\], got \[1, 2, 5, 5\]"),
        (lambda: gradient_receptive_field(conv_stack([Layer(3)]), (1, 5, 5), inputs=[[1.0]]),
         TypeError, r"inputs must be a torch.Tensor, got list"),
        (lambda: gradient_receptive_field(conv_stack([Layer(3)]), (1, 5, 5), unit=(0, 3, 1)),
         ValueError, r"unit \(channel, row, column\) must index the output of shape \[1, 3, 3\], got \(0, 3, 1\)"),
        (lambda: erf_std(torch.zeros(3, 3)), ValueError, r"the gradient map is zero everywhere"),
        (lambda: effective_receptive_field(lambda: conv_stack([Layer(3)]), (1, 5, 5), seeds=[0, 1], input_seeds=[2],
                                           batch=1), ValueError, r"seeds and input_seeds must be non-empty and of one"),
        (lambda: effective_receptive_field(lambda: conv_stack([Layer(3)]), (1, 5, 5), seeds=[0], input_seeds=[2],
                                           batch=0), ValueError, r"batch must be >= 1, got 0"),
        (lambda: erf_std(torch.ones(3)), ValueError, r"the gradient map must have shape \[H, W\], got \[3\]"),
        (lambda: erf_std(torch.ones(3, 3, dtype=torch.int64)), TypeError,
         r"the gradient map must be a floating-point torch.Tensor"),
        (lambda: gaussian_fit_r2(torch.ones(3, 3)), ValueError, r"the profile must have shape \[L\], got \[3, 3\]"),
        (lambda: gaussian_fit_r2(torch.tensor([0.0, 2.0, 0.0])), ValueError, r"the profile is a single spike"),
    ],
)
def test_bad_input_raises(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_receptive_field_span_of_unit():
    assert ReceptiveField(size=5, jump=2, start=-2).span(3) == (4, 8)


def test_effective_receptive_field_is_the_mean_squared_jacobian_row():
    # independent: torch's Jacobian of each seeded network at each of its seeded inputs, one image at a time
    shape, seeds, input_seeds, batch = (2, 7, 7), [3, 5], [10, 11], 3

    def make():
        return conv_stack([Layer(3), Layer(3)], channels=2, nonlinearity=nn.ReLU)

    expected = torch.zeros(7, 7)
    for seed, input_seed in zip(seeds, input_seeds, strict=True):
        torch.manual_seed(seed)
        model = make()
        images = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(input_seed))
        for image in images:
            jac = torch.autograd.functional.jacobian(lambda x, model=model: model(x[None])[0, 0, 1, 1], image)
            expected += (jac**2).sum(0) / (batch * len(seeds))  # [H, W]
    state = torch.get_rng_state()
    erf = effective_receptive_field(make, shape, seeds=seeds, input_seeds=input_seeds, batch=batch)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is untouched
    torch.testing.assert_close(erf, expected)
