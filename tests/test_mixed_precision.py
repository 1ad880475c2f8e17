"""``fit(autocast_dtype=torch.bfloat16)``: the forward pass runs in bfloat16 and the loss curve stays close
to float32's.

The tolerance.  bfloat16 keeps 8 significant bits (relative rounding 2^-9, about 0.2 %), so every step's
activations and gradients are off by a fraction of a percent; over the 168 steps of the run the two
trainings follow slightly different paths, and on this small CNN their epoch-mean losses drift apart,
by 0.0005, 0.0015, 0.0032 and 0.0043 nats in the four epochs (measured; the drift grows with the steps).
We allow 0.02 nats + 5 % of float32's loss at every epoch: five times the drift at the end, yet at most
a fifteenth of the loss's fall over the run (1.73 -> 0.10), so a bf16 run that trained worse in earnest
would fail.  To show that the comparison is not vacuous, the bf16 run must also differ from float32's
and its scores must be bf16.

A float16 request on the CPU (float16 needs loss scaling and has few fast CPU kernels) and any other
dtype raise errors naming the condition.  On a GPU, when one is present, bf16 is checked the same way
and float16 trains with a gradient scaler.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visarch.data import digits
from visarch.train import fit

EPOCHS = 4


def small_cnn():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # [B, 16, 4, 4]
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 16, 10))


def run(autocast_dtype, device="cpu"):
    """Epoch losses of the CNN on the digits, and the dtypes of the scores the loss saw."""
    model = small_cnn()
    seen = set()

    def loss_fn(m, images, labels):
        scores = m(images)  # [B, 10]
        seen.add(scores.dtype)
        return nn.functional.cross_entropy(scores, labels)

    history = fit(model, loss_fn, digits("train"), epochs=EPOCHS, batch_size=32, device=device,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), autocast_dtype=autocast_dtype)
    return history.loss, seen


def assert_close_curves(reduced, full):
    assert len(reduced) == len(full) == EPOCHS
    for epoch, (r, f) in enumerate(zip(reduced, full, strict=True)):
        assert abs(r - f) <= 0.02 + 0.05 * f, f"epoch {epoch}: {r:.4f} vs float32 {f:.4f}"
    assert full[-1] < 0.2 * full[0]  # both trained: the tolerance is small against the fall


def test_bf16_loss_curve_tracks_float32_on_the_cpu():
    full, full_dtypes = run(None)
    reduced, reduced_dtypes = run(torch.bfloat16)
    assert full_dtypes == {torch.float32} and reduced_dtypes == {torch.bfloat16}
    assert reduced != full  # bf16 arithmetic really ran
    assert_close_curves(reduced, full)


@pytest.mark.parametrize("dtype, error, match", [
    (torch.float16, ValueError, r"autocast_dtype=torch.float16 needs a CUDA device, got cpu"),
    (torch.float64, ValueError, r"autocast_dtype must be torch.bfloat16 \(CPU or CUDA\) or torch.float16"),
    ("bf16", TypeError, r"autocast_dtype must be a torch.dtype"),
])
def test_unsupported_autocast_requests_raise(dtype, error, match):
    model = small_cnn()
    with pytest.raises(error, match=match):
        fit(model, lambda m, x, y: 0, (torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64)), epochs=1,
            batch_size=2, device="cpu", optimizer=torch.optim.SGD(model.parameters(), lr=0.1), autocast_dtype=dtype)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_and_float16_on_the_gpu():
    full, _ = run(None, "cuda")
    for dtype in (torch.bfloat16, torch.float16):
        reduced, dtypes = run(dtype, "cuda")
        assert dtypes == {dtype}
        assert_close_curves(reduced, full)
