"""TimeSformer: token counts, parameter count in closed form, attention costs against torch's FLOP counter,
the factorised attentions as masked joint attention, and bad input."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from visarch.cost import parameter_count, timesformer_parameters
from visarch.models.timesformer import (
    SpaceTimeAttention,
    TimeSformer,
    TimeSformerBlock,
    TimeSformerConfig,
    attention_macs,
    space_time_mask,
)


def closed_form_params(c, attentions):
    return timesformer_parameters(c, attentions=attentions)


@pytest.mark.parametrize(("scheme", "attentions"), [("joint", 1), ("space", 1), ("divided", 2), ("axial", 3),
                                                   ("local_global", 2)])
def test_parameter_count(scheme, attentions):
    c = TimeSformerConfig(attention=scheme)
    assert parameter_count(TimeSformer(c)) == closed_form_params(c, attentions)


def test_small_config_numbers():
    # 2 frames of 32 x 32, p = 8: N = 16 patches a frame, 32 tokens; D = 64, 2 divided blocks
    c = TimeSformerConfig()
    assert (c.num_patches, c.num_patches * c.frames) == (16, 32)
    assert parameter_count(TimeSformer(c)) == 147786  # 12352 + 1152 + 2 * 66752 + 778, by hand
    model = TimeSformer(c)
    assert model.tokens(torch.zeros(2, 3, 2, 32, 32)).shape == (2, 2, 4, 4, 64)
    assert model(torch.zeros(2, 3, 2, 32, 32)).shape == (2, 10)


def test_paper_base_on_meta():
    # TimeSformer-Base: ViT-B (D = 768, 12 blocks, 12 heads, r = 4) on 8 frames of 224 x 224, p = 16
    c = TimeSformerConfig(image_size=224, frames=8, patch_size=16, dim=768, depth=12, heads=12, num_classes=400)
    with torch.device("meta"):
        model = TimeSformer(c)
    assert c.num_patches * c.frames == 1568
    assert parameter_count(model) == closed_form_params(c, 2)


def count_macs(module, x):
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2  # torch counts 2 FLOPs per multiply-accumulate


@pytest.mark.parametrize(("frames", "grid", "dim"), [(2, (4, 4), 16), (3, (2, 5), 8), (4, (3, 3), 12),
                                                 (4, (2, 6), 8)])
def test_attention_macs_against_flop_counter(frames, grid, dim):
    n = grid[0] * grid[1]
    x = torch.zeros(1, frames, *grid, dim)
    even = frames % 2 == grid[0] % 2 == grid[1] % 2 == 0
    for scheme, axes in (("joint", ("joint",)), ("space", ("space",)), ("divided", ("time", "space")),
                         ("axial", ("time", "width", "height")), ("local_global", ("local", "global"))):
        if scheme == "local_global" and not even:
            continue
        counted = sum(count_macs(SpaceTimeAttention(dim, heads=2, axis=axis), x) for axis in axes)
        assert counted == attention_macs(scheme, patches=n, frames=frames, dim=dim, grid=grid), scheme
    block = TimeSformerBlock(dim, heads=2, mlp_ratio=4, scheme="divided")
    mlp = 2 * 4 * dim * dim * n * frames
    assert count_macs(block, x) == attention_macs("divided", patches=n, frames=frames, dim=dim) + mlp


def test_divided_saves_the_quadratic_term():
    n, f, d = 196, 8, 768
    joint = attention_macs("joint", patches=n, frames=f, dim=d) - 4 * n * f * d * d
    divided = attention_macs("divided", patches=n, frames=f, dim=d) - 8 * n * f * d * d
    assert joint * (n + f) == divided * n * f


@pytest.mark.parametrize(("axis", "keys"), [("joint", 2 * 6 * 4), ("space", 24), ("time", 2), ("width", 4),
                                            ("height", 6), ("local", 2 * 6 * 4 // 4), ("global", 2 * 6 * 4 // 8)])
def test_mask_counts(axis, keys):
    mask = space_time_mask(axis, 2, 6, 4)
    assert mask.shape == (48, 48)
    assert mask.sum(1).tolist() == [keys] * 48
    assert torch.equal(mask, mask.T)


@pytest.mark.parametrize("axis", ["space", "time", "width", "height", "local", "global"])
def test_factorised_attention_is_masked_joint_attention(axis):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 2, 4, 8, dtype=torch.float64)
    factorised = SpaceTimeAttention(8, heads=2, axis=axis).double()
    joint = SpaceTimeAttention(8, heads=2, axis="joint").double()
    joint.load_state_dict(factorised.state_dict())
    torch.testing.assert_close(factorised(x), joint(x, space_time_mask(axis, 4, 2, 4)))


def test_every_parameter_gets_gradient():
    torch.manual_seed(0)
    for scheme in ("joint", "divided", "axial", "local_global"):
        model = TimeSformer(TimeSformerConfig(attention=scheme, depth=1))
        model(torch.randn(2, 3, 2, 32, 32)).square().sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), scheme


def test_bad_input():
    with pytest.raises(ValueError, match="patch size p=6 does not divide the frame size 32"):
        TimeSformerConfig(patch_size=6)
    with pytest.raises(ValueError, match="heads=5 does not divide"):
        TimeSformerConfig(heads=5)
    with pytest.raises(ValueError, match="attention scheme must be one of"):
        TimeSformerConfig(attention="local")
    with pytest.raises(ValueError, match="number of frames F must be >= 1, got 0"):
        TimeSformerConfig(frames=0)
    model = TimeSformer()
    with pytest.raises(ValueError, match="clip has 3 frames"):
        model(torch.zeros(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="frames are 30x30"):
        model(torch.zeros(1, 3, 2, 30, 30))
    with pytest.raises(ValueError, match=r"must be a clip \[B, 3, F, H, W\]"):
        model(torch.zeros(1, 3, 32, 32))
    joint = SpaceTimeAttention(8, heads=2, axis="joint")
    x = torch.zeros(1, 2, 2, 2, 8)
    with pytest.raises(ValueError, match=r"mask must be bool \[FN, FN\] = \[8, 8\]"):
        joint(x, torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be bool"):
        joint(x, torch.ones(8, 8))
    with pytest.raises(ValueError, match="joint attention only"):
        SpaceTimeAttention(8, heads=2, axis="time")(x, torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="axial scheme needs grid"):
        attention_macs("axial", patches=16, frames=2, dim=8)
    with pytest.raises(ValueError, match="global attention halves or strides the frames F, which must be even"):
        TimeSformerConfig(attention="local_global", frames=3)
    with pytest.raises(ValueError, match="local attention halves or strides the grid height H/p"):
        SpaceTimeAttention(8, heads=2, axis="local")(torch.zeros(1, 2, 3, 2, 8))
    with pytest.raises(ValueError, match="grid width W/p, which must be even, got 5"):
        space_time_mask("global", 2, 2, 5)
    with pytest.raises(ValueError, match="frames F, which must be even, got 3"):
        attention_macs("local_global", patches=4, frames=3, dim=8, grid=(2, 2))
