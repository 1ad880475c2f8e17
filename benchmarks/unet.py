"""The book's U-Net against labml-nn's DDPM U-Net: one training step's forward and backward, same size.

Both are the notes' U-Net for 3 x 32 x 32 images: a 3 x 3 convolution to 64 channels, residual
blocks of 64, 128, 256 and 1024 channels at the resolutions 32, 16, 8 and 4 (two per resolution
going down, three going up, stride-2 convolutions and 4 x 4 transposed convolutions between
them), single-head self-attention after every residual block at 8 x 8 and 4 x 4, a middle block
(residual block, attention, residual block) and GroupNorm, swish and a 3 x 3 convolution back to
3 channels; every GroupNorm of the residual blocks has 32 groups and every residual block a
dropout of 0.1.  The book's is ``create("unet")`` (its defaults are that configuration),
labml-nn's is ``UNet(image_channels=3, n_channels=64, ch_mults=(1, 2, 2, 4), is_attn=(False,
False, True, True), n_blocks=2)``.  Install it with
``pip install --no-deps -r requirements-benchmarks.txt``.

Parameters.  labml's model turns the time step t (a number per image) into the embedding its
residual blocks see: a sinusoidal embedding of n/4 = 64 numbers (32 sines, 32 cosines) for
n = 4 x 64 = 256 time channels, then Linear(64, 256), swish, Linear(256, 256).  The book's model
takes that embedding u (256 numbers, its ``embed_dim``) as an input instead.  labml's attention
block also holds a GroupNorm(32, C) that its ``forward`` never calls, and adds its input back to
its output, where the book's attention replaces it (no parameters either way).  Everything else,
the attention's projections included (4 C^2 + 4 C each: labml's Linear(C, 3C) and Linear(C, C),
the book's four Linear(C, C)), has the same size on both sides.  So, with each term derived from
the configuration and checked against the modules that hold it:

    book 168,803,523
    + time MLP, Linear(64, 256) + Linear(256, 256): 16,640 + 65,792 = 82,432
    + unused GroupNorm(32, C), 2 C in each of the 11 attention blocks: 5 x 2,048 at 1,024
      channels + 5 x 512 at 256 + 1 x 256 at 128 (the last block going up at 8 x 8 already
      has 128 channels) = 13,056
    = 168,899,011 = labml-nn

and the benchmark asserts it, and also that no gradient reaches labml's unused GroupNorms.

Timing.  What is compared is the whole training step of a DDPM noise predictor: from images and
time steps to a mean-squared-error loss against a fixed target, the backward pass and zeroing the
gradients.  The book's side includes a time MLP of exactly labml's sizes (written here, with
``F.silu``) feeding u to the book's model, so both sides do the same work; its cost is small
(two matrix products on [B, 64] and [B, 256]) next to the convolutions.  Both models are in
training mode with dropout 0.1 in every residual block, float32, on the same inputs.  The final
GroupNorm has 8 groups in labml's model and 32 in the book's (same parameters; the cost of one
64-channel GroupNorm).  The two take turns for a few rounds of ``blocked_autorange`` at each
batch size and the medians are compared: book/peer <= 1 means the book's model is as fast or
faster.  These are 169-million-parameter models, so the batches are small.

labml's attention hands back a [B, C, H, W] tensor with channels-last strides (a transposed view
of its [B, HW, C] tokens), so the 3 x 3 convolutions after it, with up to 1024 x 2048 x 3 x 3
weights, switch to channels-last and copy their weights into that layout on every call, forward
and backward; that copying is a large share of its time here.  The book's image attention makes
its output contiguous, which costs one copy of an activation instead.
Run with ``python -m benchmarks unet``.
"""

from __future__ import annotations

import argparse
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._timing import (
    add_timing_arguments,
    alternating_medians,
    geometric_mean,
    print_reconciled_counts,
    use_threads,
)
from visarch.cost import parameter_count
from visarch.models import create
from visarch.nn import MultiHeadSelfAttention2d

N_CHANNELS = 64  # labml's n_channels; its time embedding has 4 n_channels channels
PEER = {"image_channels": 3, "n_channels": N_CHANNELS, "ch_mults": (1, 2, 2, 4),
        "is_attn": (False, False, True, True), "n_blocks": 2}
BATCHES = (2, 4)
INSTALL = "pip install --no-deps -r requirements-benchmarks.txt"


class TimeMLP(nn.Module):
    """labml's time embedding at the book's side: sinusoidal (n/4 numbers), Linear(n/4, n), swish, Linear(n, n)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.lin1 = nn.Linear(n // 4, n)
        self.lin2 = nn.Linear(n, n)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.n // 8
        frequencies = torch.exp(torch.arange(half, device=t.device) * (-math.log(10_000) / (half - 1)))
        angles = t[:, None] * frequencies[None, :]  # [B, n/8]
        return self.lin2(F.silu(self.lin1(torch.cat([angles.sin(), angles.cos()], dim=1))))  # [B, n]



def models():
    """The book's model with its time MLP, labml's model, and the terms ``[(description, count)]`` book -> peer."""
    try:
        from labml_nn.diffusion.ddpm.unet import AttentionBlock, UNet
    except ImportError as error:
        raise SystemExit(f"labml-nn is not installed ({error}); {INSTALL}") from None
    ours, theirs = create("unet"), UNet(**PEER)
    n = 4 * N_CHANNELS
    assert ours.config.embed_dim == n, "the book's u must have labml's time_channels entries"
    time_mlp = TimeMLP(n)
    lin1, lin2 = n // 4 * n + n, n * n + n
    peer_mlp, book_mlp = theirs.time_emb, time_mlp
    assert [parameter_count(m) for m in (peer_mlp.lin1, peer_mlp.lin2, peer_mlp)] == [lin1, lin2, lin1 + lin2] == \
        [parameter_count(m) for m in (book_mlp.lin1, book_mlp.lin2, book_mlp)], "labml's time MLP changed"
    # attention at the same places on both sides; labml's blocks each hold a GroupNorm(32, C)
    book_attn = [m.attention.embed_dim for m in ours.modules() if isinstance(m, MultiHeadSelfAttention2d)]
    peer_attn = [m.norm for m in theirs.modules() if isinstance(m, AttentionBlock)]
    assert book_attn == [norm.num_channels for norm in peer_attn], "the attention blocks no longer match"
    assert all(parameter_count(norm) == 2 * c for norm, c in zip(peer_attn, book_attn, strict=True))
    terms = [(f"labml's time MLP: Linear({n // 4}, {n})", lin1), (f"  and Linear({n}, {n})", lin2)]
    for c in sorted(set(book_attn), reverse=True):
        k = book_attn.count(c)
        terms.append((f"labml's unused GroupNorm(32, {c}) in {k} attention block(s): {k} x 2 x {c}", k * 2 * c))
    return ours, time_mlp, theirs, peer_attn, terms


def ours_step(model, time_mlp, x, t, target):
    F.mse_loss(model(x, time_mlp(t)), target).backward()
    model.zero_grad(set_to_none=True)
    time_mlp.zero_grad(set_to_none=True)


def peer_step(model, x, t, target):
    F.mse_loss(model(x, t), target).backward()
    model.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks unet", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 only, one round (smoke test)")
    add_timing_arguments(parser, min_run_time=1.0)
    args = parser.parse_args(argv)
    threads = use_threads(args.threads)
    batches = (1,) if args.quick else BATCHES
    rounds = 1 if args.quick else args.rounds

    torch.manual_seed(0)
    ours, time_mlp, theirs, peer_norms, terms = models()
    ours.train()
    time_mlp.train()
    theirs.train()
    n_ours, n_theirs = parameter_count(ours), parameter_count(theirs)
    print_reconciled_counts(("book: create(unet)", n_ours), terms,
                            ("labml-nn: UNet(3, 64, (1, 2, 2, 4), (False, False, True, True), 2)", n_theirs))

    gen = torch.Generator().manual_seed(0)

    def inputs(batch):
        x, target = (torch.randn(batch, 3, 32, 32, generator=gen) for _ in range(2))
        return x, torch.randint(0, 1000, (batch,), generator=gen), target  # DDPM's 1000 time steps

    # before timing: a step of each gives finite losses, gradients for every parameter of the
    # book's side, and none for labml's unused GroupNorms (but for all its other parameters)
    x, t, target = inputs(1)
    losses = [F.mse_loss(ours(x, time_mlp(t)), target), F.mse_loss(theirs(x, t), target)]
    for loss in losses:
        assert torch.isfinite(loss), loss
        loss.backward()
    assert all(p.grad is not None for p in (*ours.parameters(), *time_mlp.parameters()))
    unused = {id(p) for norm in peer_norms for p in norm.parameters()}
    assert all((p.grad is None) == (id(p) in unused) for p in theirs.parameters()), \
        "labml's attention GroupNorms are used in forward now (or something else is not)"
    print(f"  (checked: no gradient reaches the {len(peer_norms)} attention GroupNorms of labml's model, "
          f"all its other parameters get one)")
    for model in (ours, time_mlp, theirs):
        model.zero_grad(set_to_none=True)

    print(f"\ntorch {torch.__version__}, {threads} thread(s), float32, training mode (dropout 0.1), time steps "
          f"-> time MLP -> U-Net -> MSE, backward, zero_grad; images [B, 3, 32, 32]; median over {rounds} "
          f"alternating rounds of blocked_autorange, {args.min_run_time} s per model and batch size\n")
    print(f"{'B':>4s} {'book ms':>10s} {'peer ms':>10s} {'book/peer':>10s}")
    ratios = []
    for batch in batches:
        x, t, target = inputs(batch)
        calls = [functools.partial(ours_step, ours, time_mlp, x, t, target),
                 functools.partial(peer_step, theirs, x, t, target)]
        mine, peer = alternating_medians(calls, threads=threads, rounds=rounds, min_run_time=args.min_run_time)
        ratios.append(mine / peer)
        print(f"{batch:4d} {mine:10.1f} {peer:10.1f} {mine / peer:10.2f}")
    print(f"\ngeometric mean of book/peer over {len(ratios)} batch sizes: {geometric_mean(ratios):.2f}")
    return 0
