"""The word tokenizer of the tiny CLIP: id layout, round trip, padding, end-of-text position, errors."""

from __future__ import annotations

import pytest
import torch

from visarch.tokenizer import DIGIT_NAMES, DIGIT_TEMPLATES, WordTokenizer, digit_captions, digit_tokenizer, split_words


def test_vocabulary_is_sorted_words_between_padding_and_the_two_special_tokens():
    texts = ["the number seven", "A photo of a 7", "seven sevens"]
    tok = WordTokenizer(texts)
    assert tok.vocab == ["<pad>", "7", "a", "number", "of", "photo", "seven", "sevens", "the", "<sot>", "<eot>"]
    assert (tok.pad_id, tok.sot_id, tok.eot_id, len(tok)) == (0, 9, 10, 11)
    assert WordTokenizer(reversed(texts)).vocab == tok.vocab  # the order of the texts does not matter


def test_split_words_lowercases_and_keeps_digits_apart():
    assert split_words("A Photo of 42, the digit!") == ["a", "photo", "of", "4", "2", "the", "digit"]


def test_encode_pads_with_zeros_after_the_end_of_text_token():
    tok = WordTokenizer(["a handwritten seven", "the number"])
    ids = tok.encode(["a handwritten seven", "the"], context_length=6)
    a, handwritten, seven, the = (tok.ids[w] for w in ("a", "handwritten", "seven", "the"))
    assert ids.dtype == torch.int64 and ids.shape == (2, 6)
    assert ids.tolist() == [[tok.sot_id, a, handwritten, seven, tok.eot_id, 0], [tok.sot_id, the, tok.eot_id, 0, 0, 0]]
    assert tok.encode("the", 4).shape == (1, 4)  # one str is a batch of one


def test_round_trip_and_end_of_text_position_over_every_digit_caption():
    tok = digit_tokenizer()
    captions = [c for label in range(10) for c in digit_captions(label)]
    ids = tok.encode(captions, context_length=12)
    assert tok.decode(ids) == captions  # the captions are lower case with single spaces
    words = torch.tensor([len(c.split()) for c in captions])
    assert torch.equal(ids.argmax(-1), words + 1)  # the largest id is the end of text, after sot and the words
    assert bool((ids[:, 0] == tok.sot_id).all())


def test_digit_captions():
    per_label = 2 * sum(len(t) for t in DIGIT_TEMPLATES.values())  # each template with the name and the numeral
    for label in range(10):
        captions = digit_captions(label)
        assert len(captions) == len(set(captions)) == per_label
        assert captions[0] == f"a photo of the digit {DIGIT_NAMES[label]}" and f"a blurry {label}" in captions
    assert digit_captions(3, "faint") == ["a faint photo of the digit three", "a faint three",
                                          "a faint photo of the digit 3", "a faint 3"]


def test_errors_name_the_condition():
    tok = WordTokenizer(["a photo of the digit seven"])
    with pytest.raises(ValueError, match=r"needs 8 tokens \(with start and end of text\), more than the context "
                                         r"length 7"):
        tok.encode("a photo of the digit seven", context_length=7)
    with pytest.raises(ValueError, match=r"words outside the vocabulary: \['cat'\]"):
        tok.encode("a photo of the cat")
    with pytest.raises(ValueError, match="context length must be >= 2"):
        tok.encode("a", context_length=1)
    with pytest.raises(ValueError, match="no end-of-text token"):
        tok.decode(torch.tensor([[tok.sot_id, 1, 0]]))
    with pytest.raises(TypeError, match="a text must be a str"):
        tok.encode([7])
    with pytest.raises(ValueError, match="at least one word"):
        WordTokenizer(["!!"])
    with pytest.raises(ValueError, match=r"digit label must be in 0..9"):
        digit_captions(10)
    with pytest.raises(ValueError, match="style must be one of"):
        digit_captions(1, "noisy")
