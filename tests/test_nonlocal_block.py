"""The non-local block: identity at the start, the embedded Gaussian as torch's attention, the other pairwise
functions computed independently, permutation equivariance, parameter and MAC counts, and bad input."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from visarch.cost import nonlocal_block_parameters, nonlocal_macs, parameter_count
from visarch.nn.nonlocal_block import MODES, NonLocalBlock


def clip(dims, batch=2, channels=6, generator=None):
    shape = (batch, channels, 3, 4, 6) if dims == 3 else (batch, channels, 4, 6)
    return torch.randn(shape, dtype=torch.float64, generator=generator)


def randomised(block):
    """The block with every parameter random (W_z and the batch-norm scale start at zero)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return block


def tokens(conv, x):
    """A 1x1(x1) convolution applied by hand to the token matrix ``[B, N, C]`` of ``x``."""
    w = conv.weight.flatten(1)  # [C_out, C_in]
    return x.flatten(2).transpose(1, 2) @ w.T + conv.bias


@pytest.mark.parametrize(("mode", "dims", "subsample", "batch_norm"),
                         list(itertools.product(MODES, (2, 3), (False, True), (False, True))))
def test_identity_at_start(mode, dims, subsample, batch_norm):
    block = NonLocalBlock(6, mode=mode, dims=dims, subsample=subsample, batch_norm=batch_norm).double()
    x = clip(dims)
    for training in (True, False):
        block.train(training)
        assert torch.equal(block(x), x)


def test_inserting_the_block_changes_no_output_bit():
    torch.manual_seed(0)
    trained = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    extended = nn.Sequential(*trained[:2], NonLocalBlock(8, subsample=True), *trained[2:]).eval()
    x = torch.randn(4, 3, 10, 10)
    assert extended[2](trained[:2](x)).is_contiguous()  # a channels-last z would change the sums after it
    assert torch.equal(extended(x), trained(x))


@pytest.mark.parametrize(("dims", "subsample"), [(2, False), (2, True), (3, False), (3, True)])
def test_embedded_gaussian_is_attention_with_scale_one(dims, subsample):
    block = randomised(NonLocalBlock(6, dims=dims, subsample=subsample).double())
    x = clip(dims)
    q, k, v = tokens(block.theta, x), block.phi(x), block.g(x)
    if subsample:  # max-pool by 2 in height and width only
        pool = (lambda t: F.max_pool2d(t, 2)) if dims == 2 else (lambda t: F.max_pool3d(t, (1, 2, 2)))
        k, v = pool(k), pool(v)
    k, v = k.flatten(2).transpose(1, 2), v.flatten(2).transpose(1, 2)
    expected = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # [B, N, C']
    torch.testing.assert_close(block.non_local(x).flatten(2).transpose(1, 2), expected)


def test_embedded_gaussian_block_is_one_head_multihead_attention():
    c = 6
    block = randomised(NonLocalBlock(c, inter_channels=c, batch_norm=False).double())
    mha = nn.MultiheadAttention(c, 1, batch_first=True).double()
    scale = c ** 0.5  # torch divides the logits by sqrt(C); the paper does not
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([block.theta.weight.flatten(1) * scale, block.phi.weight.flatten(1),
                                            block.g.weight.flatten(1)]))
        mha.in_proj_bias.copy_(torch.cat([block.theta.bias * scale, block.phi.bias, block.g.bias]))
        mha.out_proj.weight.copy_(block.w_z.weight.flatten(1))
        mha.out_proj.bias.copy_(block.w_z.bias)
    x = clip(2, channels=c)
    t = x.flatten(2).transpose(1, 2)  # [B, HW, C]
    out, _ = mha(t, t, t, need_weights=False)
    torch.testing.assert_close(block(x), x + out.transpose(1, 2).reshape(x.shape))


@pytest.mark.parametrize("dims", [2, 3])
def test_gaussian_is_embedded_gaussian_with_identity_embeddings(dims):
    c = 6
    gaussian = randomised(NonLocalBlock(c, inter_channels=c, mode="gaussian", dims=dims).double())
    embedded = NonLocalBlock(c, inter_channels=c, dims=dims).double()
    with torch.no_grad():
        for conv in (embedded.theta, embedded.phi):
            conv.weight.copy_(torch.eye(c, dtype=torch.float64).view(conv.weight.shape))
            conv.bias.zero_()
        for name in ("g", "w_z", "bn"):
            getattr(embedded, name).load_state_dict(getattr(gaussian, name).state_dict())
    x = clip(dims, channels=c)
    torch.testing.assert_close(gaussian(x), embedded(x))
    t = x.flatten(2).transpose(1, 2)
    torch.testing.assert_close(gaussian.weights(x), torch.softmax(t @ t.transpose(1, 2), -1))


@pytest.mark.parametrize("subsample", [False, True])
def test_dot_product_weights_are_f_over_the_number_of_keys(subsample):
    block = randomised(NonLocalBlock(6, mode="dot_product", subsample=subsample).double())
    x = clip(2)
    theta, phi = tokens(block.theta, x), block.phi(x)
    if subsample:
        phi = F.max_pool2d(phi, 2)
    phi = phi.flatten(2).transpose(1, 2)
    keys = 6 if subsample else 24  # 4 x 6 pixels, pooled to 2 x 3
    torch.testing.assert_close(block.weights(x), theta @ phi.transpose(1, 2) / keys)


def test_concatenation_weights_from_the_concatenated_vectors():
    block = randomised(NonLocalBlock(4, mode="concatenation").double())
    x = clip(2, batch=1, channels=4)
    theta, phi = tokens(block.theta, x)[0], tokens(block.phi, x)[0]  # [N, C']
    w_f = block.w_f.weight[0]
    n = theta.shape[0]
    expected = torch.stack([torch.stack([torch.relu(w_f @ torch.cat([theta[i], phi[j]])) / n for j in range(n)])
                            for i in range(n)])
    torch.testing.assert_close(block.weights(x)[0], expected)


@pytest.mark.parametrize(("mode", "dims"), list(itertools.product(MODES, (2, 3))))
def test_permuting_positions_permutes_the_output(mode, dims):
    block = randomised(NonLocalBlock(6, mode=mode, dims=dims).double()).eval()
    x = clip(dims)
    perm = torch.randperm(x[0, 0].numel(), generator=torch.Generator().manual_seed(2))

    def permuted(t):
        return t.flatten(2)[..., perm].reshape(t.shape)

    torch.testing.assert_close(block(permuted(x)), permuted(block(x)))
    conv = nn.Conv2d(6, 6, 3, padding=1).double() if dims == 2 else nn.Conv3d(6, 6, 3, padding=1).double()
    assert not torch.allclose(conv(permuted(x)), permuted(conv(x)))


def closed_form_parameters(c, ci, mode, batch_norm):
    return nonlocal_block_parameters(c, ci, mode=mode, batch_norm=batch_norm)


@pytest.mark.parametrize(("mode", "dims", "batch_norm"), list(itertools.product(MODES, (2, 3), (False, True))))
def test_parameter_count(mode, dims, batch_norm):
    assert parameter_count(NonLocalBlock(10, inter_channels=3, mode=mode, dims=dims, batch_norm=batch_norm)) == \
        closed_form_parameters(10, 3, mode, batch_norm)


def test_space_time_example_of_the_figure():
    # T x H x W x 1024 with a 512 bottleneck at res4 of the paper's R50 (8 x 14 x 14), embedded Gaussian
    with torch.device("meta"):
        block = NonLocalBlock(1024, dims=3)
        pooled = NonLocalBlock(1024, dims=3, subsample=True)
    assert block.inter_channels == 512
    assert parameter_count(block) == nonlocal_block_parameters(1024, 512) == 2_100_736
    n = 8 * 14 * 14  # 1568 positions
    for b, keys in ((block, n), (pooled, 8 * 7 * 7)):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            b.eval()(torch.empty(1, 1024, 8, 14, 14, device="meta"))
        assert counter.get_total_flops() // 2 == nonlocal_macs("embedded_gaussian", in_channels=1024,
                                                                inter_channels=512, positions=n, keys=keys)
    # 3.29 G in the convolutions, 2.52 G pairwise
    assert nonlocal_macs("embedded_gaussian", in_channels=1024, inter_channels=512, positions=n,
                         keys=n) == 5_805_965_312


@pytest.mark.parametrize(("mode", "dims", "subsample"), list(itertools.product(MODES, (2, 3), (False, True))))
def test_macs_against_flop_counter(mode, dims, subsample):
    block = NonLocalBlock(6, inter_channels=4, mode=mode, dims=dims, subsample=subsample).eval()
    x = torch.zeros(1, 6, *((3,) if dims == 3 else ()), 4, 6)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        block(x)
    n = x[0, 0].numel()
    assert counter.get_total_flops() // 2 == nonlocal_macs(mode, in_channels=6, inter_channels=4, positions=n,
                                                           keys=n // 4 if subsample else n)


def test_every_parameter_learns_once_w_z_is_not_zero():
    for mode in MODES:
        block = randomised(NonLocalBlock(6, mode=mode, dims=3, subsample=True).double())
        block(clip(3)).square().sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters()), mode


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be one of"):
        NonLocalBlock(8, mode="cosine")
    with pytest.raises(ValueError, match="dims must be 2"):
        NonLocalBlock(8, dims=1)
    with pytest.raises(ValueError, match=r"input channels C \(in_channels\) must be >= 1"):
        NonLocalBlock(0)
    with pytest.raises(ValueError, match=r"bottleneck channels C' \(inter_channels\) must be >= 1"):
        NonLocalBlock(8, inter_channels=0)
    with pytest.raises(TypeError, match="must be an int"):
        NonLocalBlock(8.0)
    with pytest.raises(TypeError, match="subsample must be a bool"):
        NonLocalBlock(8, subsample=1)
    with pytest.raises(ValueError, match="mode must be one of"):
        nonlocal_macs("l2", in_channels=8, inter_channels=4, positions=4, keys=4)


def test_bad_input():
    with pytest.raises(ValueError, match=r"input must be \[B, C, H, W\] with C=8, got \(1, 4, 5, 5\)"):
        NonLocalBlock(8)(torch.zeros(1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"input must be \[B, C, T, H, W\]"):
        NonLocalBlock(8, dims=3)(torch.zeros(1, 8, 5, 5))
    with pytest.raises(ValueError, match="H and W by 2, which must be >= 2, got 1x5"):
        NonLocalBlock(8, subsample=True)(torch.zeros(1, 8, 1, 5))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        NonLocalBlock(8)([[0.0]])
