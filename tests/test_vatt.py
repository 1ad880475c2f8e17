"""VATT's pieces: the tokenizers are linear maps on voxel patches, waveform segments and one-hot words, the
positions factorise, DropToken keeps an ordered random subset, the two losses follow the paper's equations 4
and 5 (checked against a cross-entropy over the explicit list of pairs), and bad input is refused."""

import math

import pytest
import torch
import torch.nn.functional as F

from visarch.models import create
from visarch.models.vatt import (
    AudioTokenizer,
    VATTConfig,
    VideoTokenizer,
    drop_tokens,
    mil_nce_loss,
    nce_loss,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("frames", "size", "patch"), [(5, 12, (2, 4, 4)), (8, 16, (4, 8, 8)), (3, 7, (1, 3, 2))])
def test_video_tokens_are_a_linear_map_of_zero_padded_voxel_patches(frames, size, patch):
    t, h, w = patch
    grid = (math.ceil(frames / t), math.ceil(size / h), math.ceil(size / w))
    tokenizer = VideoTokenizer(2, patch=patch, grid=grid, dim=6).double()
    video = torch.randn(3, 2, frames, size, size, generator=gen(), dtype=torch.float64)
    padded = torch.zeros(3, 2, grid[0] * t, grid[1] * h, grid[2] * w, dtype=torch.float64)
    padded[:, :, :frames, :size, :size] = video
    # [B, C, T', t, H', h, W', w] -> [B, T', H', W', C t h w]: one row of voxels per patch, time-major
    rows = padded.reshape(3, 2, grid[0], t, grid[1], h, grid[2], w).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(
        3, math.prod(grid), -1)
    weight = tokenizer.project.weight.reshape(6, -1)  # W_vp, [d, C t h w]
    positions = torch.stack([tokenizer.temporal[i] + tokenizer.rows[j] + tokenizer.cols[k]
                             for i in range(grid[0]) for j in range(grid[1]) for k in range(grid[2])])
    expected = rows @ weight.T + tokenizer.project.bias + positions
    torch.testing.assert_close(tokenizer(video), expected, rtol=0, atol=1e-12)


def test_audio_tokens_are_a_linear_map_of_waveform_segments():
    # 100 samples -> 7 segments, the last padded with 12 zeros
    tokenizer = AudioTokenizer(patch=16, tokens=7, dim=5).double()
    audio = torch.randn(2, 100, generator=gen(), dtype=torch.float64)
    segments = F.pad(audio, (0, 12)).reshape(2, 7, 16)
    expected = segments @ tokenizer.project.weight[:, 0].T + tokenizer.project.bias + tokenizer.position
    torch.testing.assert_close(tokenizer(audio), expected, rtol=0, atol=1e-12)


def test_word_tokens_are_one_hot_vectors_times_a_matrix():
    model = create("vatt_tiny").double()
    words = torch.randint(0, 34, (3, 12), generator=gen())
    one_hot = F.one_hot(words, 34).double()
    torch.testing.assert_close(model.word_embedding(words), one_hot @ model.word_embedding.weight, rtol=0, atol=0)


def test_the_paper_layout_counts_tokens_and_positions():
    config = VATTConfig()
    assert config.video_grid == (8, 14, 14) and math.prod(config.video_grid) == 1568
    assert config.audio_tokens == 1200 and sum(config.video_grid) == 36


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.75, 0.99])
def test_drop_tokens_keeps_an_ordered_random_subset(rate):
    tokens = torch.arange(2 * 40 * 3, dtype=torch.float64).reshape(2, 40, 3)
    kept = drop_tokens(tokens, rate, generator=gen(int(100 * rate)))
    assert kept.shape == (2, max(1, round((1 - rate) * 40)), 3)
    index = kept[..., 0] // 3 - torch.arange(2)[:, None] * 40  # which token of its row each kept one is
    assert (index.diff(dim=1) > 0).all()  # in the original order, without repeats
    torch.testing.assert_close(kept, tokens.gather(1, index.long()[..., None].expand(-1, -1, 3)), rtol=0, atol=0)


def explicit_nce(video, audio, temperature):
    """Equation 4 written out: for pair i a cross-entropy over [s_ii, every s_jk with j != k]."""
    scores = video @ audio.T / temperature
    b = scores.shape[0]
    pairs = [scores[j, k] for j in range(b) for k in range(b) if j != k]
    negatives = torch.stack(pairs) if pairs else scores.new_zeros(0)  # one pair alone has no negatives
    losses = [F.cross_entropy(torch.cat([scores[i, i].reshape(1), negatives])[None], torch.tensor([0]))
              for i in range(b)]
    return torch.stack(losses).mean()


@pytest.mark.parametrize("b", [1, 2, 5, 8])
def test_nce_is_a_cross_entropy_against_every_non_matching_pair(b):
    video = F.normalize(torch.randn(b, 6, generator=gen(b), dtype=torch.float64), dim=-1)
    audio = F.normalize(torch.randn(b, 6, generator=gen(b + 10), dtype=torch.float64), dim=-1)
    loss = nce_loss(video, audio, temperature=0.1)
    torch.testing.assert_close(loss, explicit_nce(video, audio, 0.1), rtol=0, atol=1e-12)
    # CLIP's row-wise loss sees only the B - 1 negatives of its row, so equation 4 is never smaller
    rowwise = F.cross_entropy(video @ audio.T / 0.1, torch.arange(b))
    assert loss >= rowwise - 1e-12
    equal = torch.zeros(b, 6, dtype=torch.float64)
    equal[:, 0] = 1.0  # every score the same: log(B^2 - B + 1)
    assert nce_loss(equal, equal).item() == pytest.approx(math.log(b * b - b + 1), abs=1e-12)


def test_mil_nce_with_one_caption_is_nce_and_more_captions_help():
    video = F.normalize(torch.randn(4, 6, generator=gen(1), dtype=torch.float64), dim=-1)
    texts = F.normalize(torch.randn(4, 5, 6, generator=gen(2), dtype=torch.float64), dim=-1)
    for p in range(5):
        torch.testing.assert_close(mil_nce_loss(video, texts[:, p:p + 1]), nce_loss(video, texts[:, p]),
                                   rtol=0, atol=1e-12)
    # the numerator sums the positives: with the same negatives, five captions beat any single one of them
    scores = torch.einsum("id,kpd->ikp", video, texts) / 0.07
    same = torch.eye(4, dtype=torch.bool)
    negatives = torch.logsumexp(scores[~same].flatten(), dim=0)
    for p in range(5):
        single = (torch.logaddexp(scores[same][:, p], negatives) - scores[same][:, p]).mean()
        assert mil_nce_loss(video, texts) < single


def test_forward_gives_the_two_similarity_matrices():
    torch.manual_seed(0)
    model = create("vatt_tiny").eval()
    video, audio = torch.rand(3, 1, 5, 12, 12, generator=gen()), torch.randn(3, 400, generator=gen(1))
    words = torch.randint(0, 34, (3, 12), generator=gen(2))
    sims = model(video, audio, words)
    z = model.embed(video, audio, words)
    assert sims.shape == (2, 3, 3) and {k: tuple(v.shape) for k, v in z.items()} == {
        "v_va": (3, 32), "a_va": (3, 32), "v_vt": (3, 16), "t_vt": (3, 16)}
    torch.testing.assert_close(sims[0], z["v_va"] @ z["a_va"].T / 0.07)
    assert (sims.abs() <= 1 / 0.07 + 1e-4).all()  # cosines over the temperature


def test_text_features_are_the_encoder_on_one_hot_words_plus_positions():
    torch.manual_seed(0)
    model = create("vatt_tiny").double().eval()
    words = torch.randint(0, 34, (4, 12), generator=gen(3))
    tokens = F.one_hot(words, 34).double() @ model.word_embedding.weight + model.text_position  # [4, 12, d_t]
    torch.testing.assert_close(model.encode_text(words), model.text_encoder(tokens), rtol=0, atol=1e-12)
    torch.testing.assert_close(model.embed_text(words),
                               F.normalize(model.text_to_vt(model.text_encoder(tokens)), dim=-1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_picked_captions_are_embedded_as_if_repeated(training):
    torch.manual_seed(0)
    model = create("vatt_tiny").double().train(training)
    distinct = torch.randint(0, 34, (5, 12), generator=gen(4))  # five captions
    rows = torch.randint(0, 5, (9,), generator=gen(5))  # nine draws among them, with repeats
    picked = model.embed_text(distinct, pick=rows)
    assert picked.shape == (9, 16)
    torch.testing.assert_close(picked, model.embed_text(distinct[rows]), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: nce_loss(torch.zeros(3, 4), torch.zeros(2, 4)), r"two \[B, d\] batches of matching pairs"),
        (lambda: nce_loss(torch.zeros(3, 4), torch.zeros(3, 4), temperature=0.0), "temperature must be > 0"),
        (lambda: mil_nce_loss(torch.zeros(3, 4), torch.zeros(3, 4)), r"texts \[B, K, d\]"),
        (lambda: drop_tokens(torch.zeros(1, 4, 2), 1.0), "rate"),
        (lambda: VATTConfig(video_patch=(4, 16)), r"video_patch must be \(t, h, w\)"),
        (lambda: VATTConfig(text=(500, 6, 8, 2048)), "text width 500 is not divisible by its 8 heads"),
        (lambda: create("vatt_tiny")(torch.zeros(2, 1, 5, 16, 16), torch.zeros(2, 400), torch.zeros(2, 12).long()),
         r"gives a \(3, 4, 4\) grid of patches, expected \(3, 3, 3\)"),
        (lambda: create("vatt_tiny")(torch.zeros(2, 1, 5, 12, 12), torch.zeros(2, 500), torch.zeros(2, 12).long()),
         "gives 32 segments, expected 25"),
        (lambda: create("vatt_tiny")(torch.zeros(2, 1, 5, 12, 12), torch.zeros(2, 400), torch.zeros(2, 9).long()),
         r"words must be \[B, 12\] token ids"),
        (lambda: create("vatt_tiny").embed_text(torch.zeros(2, 12).long(), pick=torch.tensor([0.0])),
         r"pick must be a \[B''\] int64 tensor of row indices"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
