"""``python -m benchmarks denoise``: its arguments and the page's settings; no training, no timing (the
command prints its gains, never asserts them).  The steps it runs are ``visarch.denoising``'s, tested in
``tests/test_denoising.py``."""

import pytest

from benchmarks.denoise import PAGE, parse
from visarch.denoising import DenoiserSettings


def test_defaults_are_the_curve_at_one_two_and_four_times_the_page():
    args = parse([])
    assert args.mode == "curve" and args.multiples == [1, 2, 4] and args.threads == 1
    assert 0.01 in args.lr and 32 in args.patch and PAGE == DenoiserSettings()


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
