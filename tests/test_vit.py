"""Moving a ViT's learned position embeddings to another patch grid (fine-tuning at a new resolution):
against the authors' ``scipy.ndimage.zoom(order=1)``, exact on affine fields, and loadable by a ViT of
the new size."""

import numpy as np
import pytest
import scipy.ndimage
import torch

from visarch.models import create
from visarch.models.vit import resize_position_embedding


def embeddings(prefix, g, d, seed=0):
    return torch.randn(1, prefix + g * g, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize(("g", "new"), [(2, 3), (3, 7), (14, 24), (7, 4), (5, (8, 3)), (4, (4, 9)), (6, 6)])
@pytest.mark.parametrize("prefix", [0, 1, 2])
def test_matches_the_authors_scipy_zoom(g, new, prefix):
    pos = embeddings(prefix, g, 5, seed=g)
    out = resize_position_embedding(pos, new, prefix_tokens=prefix)
    gh, gw = (new, new) if isinstance(new, int) else new
    grid = pos[0, prefix:].reshape(g, g, 5).numpy()
    expected = scipy.ndimage.zoom(grid, (gh / g, gw / g, 1), order=1)  # vit_jax/checkpoint.py's resize
    assert expected.shape == (gh, gw, 5)
    np.testing.assert_allclose(out[0, prefix:].reshape(gh, gw, 5).numpy(), expected, rtol=0, atol=1e-12)
    assert torch.equal(out[:, :prefix], pos[:, :prefix])


def test_same_grid_is_the_identity():
    pos = embeddings(1, 9, 16)
    assert torch.equal(resize_position_embedding(pos, 9), pos)


@pytest.mark.parametrize(("g", "new"), [(3, 10), (14, 24), (8, 5)])
def test_affine_fields_are_reproduced_exactly(g, new):
    # an embedding that is an affine function of the patch's relative position (row, col) in [0, 1]
    a, b, c = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def field(n):
        t = torch.linspace(0, 1, n, dtype=torch.float64)
        rows, cols = torch.meshgrid(t, t, indexing="ij")
        return (rows.reshape(-1, 1) * a + cols.reshape(-1, 1) * b + c)[None]  # [1, n^2, 4]

    torch.testing.assert_close(resize_position_embedding(field(g), new, prefix_tokens=0), field(new),
                               rtol=0, atol=1e-12)


def test_a_larger_vit_loads_the_resized_embeddings():
    torch.manual_seed(0)
    small = create("vit", image_size=32, patch_size=4, dim=32, depth=2, heads=2, mlp_dim=64,
                   pos_embedding="learned").eval()
    large = create("vit", image_size=48, patch_size=4, dim=32, depth=2, heads=2, mlp_dim=64,
                   pos_embedding="learned").eval()
    state = small.state_dict()
    state["pos_embedding"] = resize_position_embedding(state["pos_embedding"], 12)  # 8 x 8 -> 12 x 12 patches
    large.load_state_dict(state)
    assert large.pos_embedding.shape == (1, 145, 32)
    assert torch.isfinite(large(torch.randn(2, 3, 48, 48))).all()


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((torch.zeros(1, 11, 4), 3), {}, "leave 10 grid embeddings, not a positive square"),
        ((torch.zeros(1, 1, 4), 3), {}, "leave 0 grid embeddings"),
        ((torch.zeros(10, 4), 3), {}, r"must be a tensor \[1, P \+ g\^2, D\], got \(10, 4\)"),
        ((torch.zeros(2, 10, 4), 3), {}, r"got \(2, 10, 4\)"),
        ((torch.zeros(1, 10, 4), 0), {}, "grid must be >= 1, got 0"),
        ((torch.zeros(1, 10, 4), 2.5), {}, "grid must be an int or a pair of ints, got 2.5"),
        ((torch.zeros(1, 10, 4), (2, 3, 4)), {}, "grid must be an int or a pair"),
        ((torch.zeros(1, 10, 4), 3), {"prefix_tokens": -1}, "prefix_tokens must be >= 0, got -1"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        resize_position_embedding(*args, **kwargs)
