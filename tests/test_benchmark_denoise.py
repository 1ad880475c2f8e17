"""``python -m benchmarks denoise``: its arguments and its tiling; no training, no timing (the command
prints its gains, never asserts them)."""

import pytest
import torch

from benchmarks.denoise import PAGE, denoise, parse, symmetries_mean


def test_defaults_are_the_curve_at_one_two_and_four_times_the_page():
    args = parse([])
    assert args.mode == "curve" and args.multiples == [1, 2, 4] and args.threads == 1
    assert 0.01 in args.lr and 32 in args.patch and PAGE.stride == PAGE.patch // 2


def test_tune_takes_its_grids():
    args = parse(["tune", "--lr", "0.01", "0.02", "--patch", "32", "48"])
    assert args.mode == "tune" and args.lr == [0.01, 0.02] and args.patch == [32, 48]


@pytest.mark.parametrize("argv, message", [
    (["--multiples", "0", "2"], "--multiples must be positive integers"),
    (["tune", "--lr", "-0.1"], "--lr must be positive"),
    (["tune", "--patch", "40"], "--patch must be multiples of 16"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["train"], "invalid choice: 'train'"),
])
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse(argv)
    assert message in capsys.readouterr().err


class NoNoise(torch.nn.Module):
    config = type("Config", (), {"embed_dim": 32})

    def forward(self, x, u):
        return torch.zeros_like(x)


@pytest.mark.parametrize("tile, shape", [(32, (1, 48, 80)), (48, (1, 50, 70))])
def test_tiling_and_symmetries_return_the_input_for_a_zero_noise_model(tile, shape):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(denoise(NoNoise(), image, tile), image)
    for count in (1, 2, 4, 8):
        assert torch.allclose(symmetries_mean(lambda x: denoise(NoNoise(), x, tile), image, count), image)
