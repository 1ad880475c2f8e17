"""visarch.plot.attention_maps: one row per image, one column per map, and clear errors on bad shapes."""

import matplotlib.pyplot as plt
import pytest
import torch

from visarch.plot import attention_maps


def test_layout_and_patch_upsampling():
    images = torch.rand(3, 1, 8, 8)
    maps = torch.softmax(torch.randn(3, 5, 4, 4).flatten(2), -1).view(3, 5, 4, 4)
    fig = attention_maps(images, maps, titles=[f"head {k}" for k in range(4)] + ["mean"])
    axes = fig.axes
    assert len(axes) == 3 * 6
    assert axes[1].get_title() == "head 0" and axes[5].get_title() == "mean"
    shown = axes[1].get_images()[0]  # the first map of the first image: each patch fills its 2 x 2 pixels
    expected = maps[0, 0].repeat_interleave(2, 0).repeat_interleave(2, 1).double()
    torch.testing.assert_close(torch.as_tensor(shown.get_array().data), expected)
    assert shown.get_clim() == (0, expected.max().item())  # scaled from zero to the map's own maximum
    plt.close(fig)


@pytest.mark.parametrize(("images", "maps", "titles", "message"), [
    (torch.rand(2, 3, 8, 8), torch.rand(2, 1, 4, 4), None, r"images must be \[N, H, W\]"),
    (torch.rand(2, 8, 8), torch.rand(2, 4, 4), None, r"maps must be \[N, M, h, w\]"),
    (torch.rand(2, 8, 8), torch.rand(3, 1, 4, 4), None, "2 images but maps for 3"),
    (torch.rand(2, 8, 8), torch.rand(2, 1, 3, 4), None, "3 x 4 patches does not tile a 8 x 8 image"),
    (torch.rand(2, 8, 8), torch.rand(2, 2, 4, 4), ["one"], "1 titles for 2 maps"),
])
def test_bad_shapes_raise(images, maps, titles, message):
    with pytest.raises(ValueError, match=message):
        attention_maps(images, maps, titles=titles)
