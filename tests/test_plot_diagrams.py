"""The schematic figures of visarch.plot: what they draw, that they render, and clear errors on bad input."""

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from visarch.plot import (
    clip_towers,
    data_parallel,
    dense_block,
    encoder_blocks,
    filter_bank,
    residual_blocks,
    shifted_windows,
    unet_shapes,
    unet_trail,
    vit_pipeline,
)


def rendered_ink(fig):
    """The fraction of the rendered figure's pixels that are not white."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    pixels = plt.imread(io.BytesIO(buffer.getvalue()))[..., :3]
    return float((pixels < 0.95).any(axis=-1).mean())


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_vit_pipeline_numbers_the_patches_row_by_row_and_elides_a_long_sequence():
    fig = vit_pipeline(torch.rand(1, 8, 16), 4)
    ax_image, ax_seq = fig.axes
    assert texts(ax_image) == [str(k) for k in range(1, 9)]  # 2 x 4 patches, row-major
    assert ax_image.get_title() == "8 x 16 image, 2 x 4 patches of 4 x 4"
    assert ax_seq.get_title() == "sequence of 1 + 8 tokens"
    drawn = [t for t in texts(ax_seq) if t == "CLS" or t.startswith("patch")]
    assert drawn == ["CLS", "patch\n1", "patch\n2", "patch\n3", "patch\n4", "patch\n8"]
    assert "..." in texts(ax_seq)
    assert rendered_ink(fig) > 0.05
    plt.close(fig)


def test_vit_pipeline_draws_every_token_of_a_short_sequence():
    fig = vit_pipeline(torch.rand(4, 4), 2)
    assert "..." not in texts(fig.axes[1]) and "patch\n4" in texts(fig.axes[1])
    plt.close(fig)


@pytest.mark.parametrize(("image", "patch_size", "message"), [
    (torch.rand(2, 8, 8), 2, r"image must be \[H, W\] or \[1, H, W\]"),
    (torch.rand(8, 8), 3, "must be a positive int dividing H=8 and W=8"),
    (torch.rand(8, 8), 0, "must be a positive int"),
])
def test_vit_pipeline_rejects_bad_input(image, patch_size, message):
    with pytest.raises(ValueError, match=message):
        vit_pipeline(image, patch_size)


@pytest.mark.parametrize("n", [2, 4, 6])
def test_clip_towers_marks_the_n_matching_pairs_on_the_diagonal(n):
    fig = clip_towers(n)
    ax = fig.axes[0]
    cells = [p for p in ax.patches if type(p).__name__ == "Rectangle"]
    assert len(cells) == n * n
    matching = [p for p in cells if np.allclose(p.get_facecolor(), to_rgba("tab:green", 0.45))]
    assert sorted((round(p.get_x()), round(p.get_y())) for p in matching) == [(k, n - 1 - k) for k in range(n)]
    assert f"$I_{n} \\cdot T_{n}$" in texts(ax)
    assert rendered_ink(fig) > 0.05
    plt.close(fig)


@pytest.mark.parametrize("n", [1, 7, 2.0])
def test_clip_towers_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n must be an int from 2 to 6"):
        clip_towers(n)


def test_filter_bank_draws_every_channel_filter_and_output_pixel():
    c, c_out, f, h = 3, 4, 3, 6
    fig = filter_bank(c, c_out, f, h)
    ax = fig.axes[0]
    squares = [p for p in ax.patches if type(p).__name__ == "Rectangle"]
    windows = [p for p in squares if p.get_facecolor()[3] == 0 and np.isclose(p.get_linewidth(), 1.6)]
    pixels = [p for p in squares if p.get_facecolor()[3] == 1]  # the solid first pixel of each output channel
    assert len(windows) == c  # the F x F window, outlined on every input channel
    assert len(pixels) == c_out
    assert len(squares) == c + c_out * c + c_out + len(windows) + len(pixels)  # sheets, filter sheets, marks
    assert any(f"C' = {c_out} filters of {c} x {f} x {f}" in t for t in texts(ax))
    assert rendered_ink(fig) > 0.05
    plt.close(fig)


@pytest.mark.parametrize(("args", "message"), [
    ((0, 4, 3, 6), "in_channels C must be an int from 1 to 6"),
    ((3, 7, 3, 6), "out_channels C' must be an int from 1 to 6"),
    ((3, 4, 3, 11), "size H must be an int from 3 to 10"),
    ((3, 4, 2, 6), "kernel_size F must be an odd int below H=6"),
    ((3, 4, 7, 6), "kernel_size F must be an odd int below H=6"),
])
def test_filter_bank_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        filter_bank(*args)


def test_encoder_blocks_place_the_norm_on_or_off_the_residual_path():
    fig = encoder_blocks()
    ax = fig.axes[0]
    left = [t.get_text() for t in ax.texts if t.get_position()[0] == 0.0]
    right = [t.get_text() for t in ax.texts if t.get_position()[0] == 5.0]
    steps = ("x: [N, T, d]", "multi-head\nself-attention", "+", "LayerNorm", "feed-forward\n(MLP)", "[N, T, d]")
    post = [t for t in left if t in steps]
    pre = [t for t in right if t in steps]
    # post-norm normalises the sum; pre-norm normalises the sublayer's input, and the sum is the output
    assert post == ["x: [N, T, d]", "multi-head\nself-attention", "+", "LayerNorm", "feed-forward\n(MLP)", "+",
                    "LayerNorm", "[N, T, d]"]
    assert pre == ["x: [N, T, d]", "LayerNorm", "multi-head\nself-attention", "+", "LayerNorm",
                   "feed-forward\n(MLP)", "+", "[N, T, d]"]
    assert sum(t == "identity" for t in texts(ax)) == 4
    assert rendered_ink(fig) > 0.05
    plt.close(fig)


def test_residual_blocks_squeeze_the_bottleneck_to_a_quarter():
    fig = residual_blocks(32, 128)
    ax = fig.axes[0]
    right = [t.get_text() for t in ax.texts if t.get_position()[0] == 5.0 and t.get_text()]  # not the arrows
    assert right[:5] == ["x: [128, H, W]", "1 x 1 conv, 32\nBN, ReLU", "3 x 3 conv, 32\nBN, ReLU",
                         "1 x 1 conv, 128\nBN", "+"]
    assert sum(t == "identity" for t in texts(ax)) == 2
    assert rendered_ink(fig) > 0.05
    plt.close(fig)


@pytest.mark.parametrize(("basic", "bottleneck", "message"), [
    (0, 256, "basic_channels C must be a positive int"),
    (64, 6, "bottleneck_channels C' must be a positive multiple of 4"),
    (64, 256.0, "bottleneck_channels C' must be a positive multiple of 4"),
])
def test_residual_blocks_reject_bad_channels(basic, bottleneck, message):
    with pytest.raises(ValueError, match=message):
        residual_blocks(basic, bottleneck)


def test_residual_blocks_default_pair_has_nearly_equal_weights():
    """The docstring's numbers, from torch's own layers: the paper's basic block on 64 channels and
    bottleneck on 256 have 73,728 and 69,632 convolution weights."""
    from torch import nn

    def weights(*convs):
        return sum(nn.Conv2d(i, o, k, bias=False).weight.numel() for i, o, k in convs)

    assert weights((64, 64, 3), (64, 64, 3)) == 73_728
    assert weights((256, 64, 1), (64, 64, 3), (64, 256, 1)) == 69_632


def test_shifted_windows_moves_the_grid_by_the_shift():
    regions = torch.arange(64.0).view(8, 8) % 3  # any labels: the figure shows them as given
    fig = shifted_windows(regions, 4, 1)
    regular, shifted, rolled = fig.axes
    def rows(ax):  # the window borders between rows: the horizontal lines, which span the axes in x
        return sorted(line.get_ydata()[0] + 0.5 for line in ax.lines if list(line.get_xdata()) == [0, 1])

    assert rows(regular) == [0, 4, 8] and rows(shifted) == [0, 1, 5, 8]  # every M; offset by S
    np.testing.assert_array_equal(rolled.get_images()[0].get_array().data, regions.numpy())
    assert rendered_ink(fig) > 0.05
    plt.close(fig)


@pytest.mark.parametrize(("regions", "window", "shift", "message"), [
    (torch.zeros(2, 8, 8), 4, 2, r"regions must be \[H, W\]"),
    (torch.zeros(8, 8), 3, 1, "window M=3 must be a positive int dividing H=8 and W=8"),
    (torch.zeros(8, 8), 4, 4, "shift S=4 must be an int from 1 to M-1=3"),
    (torch.zeros(8, 8), 4, 0, "shift S=0 must be an int from 1 to M-1=3"),
])
def test_shifted_windows_rejects_bad_input(regions, window, shift, message):
    with pytest.raises(ValueError, match=message):
        shifted_windows(regions, window, shift)


def test_dense_block_stacks_what_each_layer_reads():
    c0, k, layers = 16, 8, 3
    fig = dense_block(c0, k, layers)
    ax = fig.axes[0]
    bars = {}
    for patch in ax.patches:
        if type(patch).__name__ == "Rectangle":
            bars.setdefault(round(patch.get_x(), 6), []).append(patch.get_height())
    heights = [sum(h) for _, h in sorted(bars.items())]
    unit = heights[-1] / (c0 + layers * k)
    assert [round(h / unit) for h in heights] == [c0 + j * k for j in range(layers + 1)]  # 16, 24, 32, 40
    assert [len(h) for _, h in sorted(bars.items())] == [1, 2, 3, 4]  # x0, then one new piece per layer
    assert [t for t in texts(ax) if t.startswith("H")] == ["H1 reads\n16", "H1: +8", "H2 reads\n24", "H2: +8",
                                                           "H3 reads\n32", "H3: +8"]
    assert rendered_ink(fig) > 0.05
    plt.close(fig)


@pytest.mark.parametrize(("args", "message"), [
    ((0, 32, 4), "in_channels c0 must be a positive int"),
    ((64, 2.0, 4), "growth_rate k must be a positive int"),
    ((64, 32, 9), "layers L must be a positive int up to 8"),
])
def test_dense_block_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        dense_block(*args)


def test_data_parallel_deals_the_rows_round_robin():
    fig = data_parallel(3, 6)
    ax = fig.axes[0]
    rows = sorted((p for p in ax.patches if type(p).__name__ == "Rectangle"), key=lambda p: -p.get_y())
    assert len(rows) == 6
    lanes = [p.get_facecolor() for p in rows]
    assert [lanes.index(colour) for colour in lanes] == [0, 1, 2, 0, 1, 2]  # row i goes to process i mod W
    assert [t for t in texts(ax) if t.startswith("process")] == [
        "process 0\nrows 0, 3, ...", "process 1\nrows 1, 4, ...", "process 2\nrows 2, 5, ..."]
    assert rendered_ink(fig) > 0.05
    plt.close(fig)


@pytest.mark.parametrize(("args", "message"), [
    ((0, 8), "processes W must be an int from 1 to 4"),
    ((5, 10), "processes W must be an int from 1 to 4"),
    ((3, 8), "batch B must be a multiple of W=3 from 1 to 16"),
    ((2, 18), "batch B must be a multiple of W=2 from 1 to 16"),
])
def test_data_parallel_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        data_parallel(*args)


# The notes' shapes of the default U-Net on a 3 x 32 x 32 image, as (C, side): z1 ... z12 on the way down;
# y13, y12, y11, y10-bar, y10 (after the transposed convolution), y9, ..., y1 on the way up.
NOTES_DESCENT = ([(64, 32)] * 3 + [(64, 16)] + [(128, 16)] * 2 + [(128, 8)] + [(256, 8)] * 2 + [(256, 4)]
                 + [(1024, 4)] * 2)
NOTES_ASCENT = ([(1024, 4)] * 3 + [(256, 4), (256, 8)] + [(256, 8)] * 2 + [(128, 8), (128, 16)]
                + [(128, 16)] * 2 + [(64, 16), (64, 32)] + [(64, 32)] * 3)


def default_unet_trail():
    """The trail of the default U-Net on a 3 x 32 x 32 image, on the meta device, and the input channels
    of the ascent's stages, read from their first GroupNorm."""
    from torch import nn

    from visarch.models import create

    with torch.device("meta"):
        unet = create("unet")
    x, u = torch.empty(1, 3, 32, 32, device="meta"), torch.empty(1, unet.config.embed_dim, device="meta")
    descent, ascent, output = unet_trail(unet, x, u)
    assert output.shape == x.shape
    stages = [m for m in unet.up if not isinstance(m, nn.ConvTranspose2d)]
    return descent, ascent, [m.res.norm1.num_channels for m in stages]


def test_unet_trail_is_the_notes_trail():
    descent, ascent, _ = default_unet_trail()
    assert descent == NOTES_DESCENT and ascent == NOTES_ASCENT


def test_unet_trail_of_a_small_unet_computes_its_output():
    from visarch.models import create

    torch.manual_seed(0)
    unet = create("unet", in_channels=1, base_channels=8, channels=(8, 16), attention=(False, False), blocks=1,
                  groups=4, embed_dim=4).eval()
    x, u = torch.randn(2, 1, 12, 12), torch.randn(2, 4)
    with torch.no_grad():
        descent, ascent, output = unet_trail(unet, x, u)
        assert torch.equal(output, unet(x, u))
    assert descent == [(8, 12), (8, 12), (8, 6), (16, 6)]  # conv_in, a stage, the halving, a stage
    assert ascent[0] == (16, 6) and ascent[-1] == (8, 12) and not unet.conv_in._forward_hooks


def test_unet_trail_rejects_other_networks():
    with pytest.raises(TypeError, match="unet must be a visarch U-Net with conv_in, down, middle and up"):
        unet_trail(torch.nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, 2))


def test_unet_shapes_pairs_each_skip_with_the_stage_that_takes_it():
    descent, ascent, stage_inputs = default_unet_trail()
    fig = unet_shapes(descent, ascent)
    ax = fig.axes[0]
    boxes = {}  # (x, y) of each box's centre -> its label
    for t in ax.texts:
        if " x " in t.get_text():
            boxes[(round(t.get_position()[0], 6), round(t.get_position()[1], 6))] = t.get_text()
    left = [label for (x, y), label in sorted(boxes.items(), key=lambda kv: -kv[0][1]) if x == 0.0]
    right = [label for (x, y), label in sorted(boxes.items(), key=lambda kv: kv[0][1]) if x == 6.0]
    assert left == [f"{c} x {s} x {s}" for c, s in descent]  # z1 ... z12, top to bottom
    assert right == [f"{c} x {s} x {s}" for c, s in ascent[1:]]  # bottom to top
    skips = [a for a in ax.texts if type(a).__name__ == "Annotation" and a.arrowprops.get("linestyle") == "--"]
    assert len(skips) == len(descent) == 12
    # each dashed arrow joins z_i to the stage on its row; that stage's input has the channels of the
    # previous ascent entry plus those of z_i, as the network's own GroupNorm says
    by_row = {}
    for (x, y), label in boxes.items():
        by_row.setdefault(y, {})[x] = int(label.split()[0])
    right_rows = sorted(y for (x, y) in boxes if x == 6.0)  # bottom to top: ascent[1:]
    concatenated = []
    for arrow in sorted(skips, key=lambda a: a.xy[1]):
        y = round(arrow.xy[1], 6)
        before = ascent[right_rows.index(y)][0]  # the ascent entry just below this stage
        concatenated.append(before + by_row[y][0.0])
    assert concatenated == stage_inputs
    assert rendered_ink(fig) > 0.05
    plt.close(fig)


@pytest.mark.parametrize(("descent", "ascent", "message"), [
    ([], [(8, 4)], "descent must be a non-empty list"),
    ([(8, 4)], [(8, 4.0)], "ascent must be a non-empty list"),
    ([(8, 4), (8, 4)], [(8, 4), (8, 4)], "the ascent has 1 stages that take a skip, the descent keeps 2"),
])
def test_unet_shapes_rejects_bad_input(descent, ascent, message):
    with pytest.raises(ValueError, match=message):
        unet_shapes(descent, ascent)
