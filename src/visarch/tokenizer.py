r"""A word-level tokenizer for the tiny CLIP, built from the book's own captions (nothing to download).

CLIP (Radford et al., 2021) reads text as byte-pair-encoded tokens of a 49,408-entry vocabulary, put
between a start-of-text and an end-of-text token and padded with zeros to a context of 77; the text
encoder's feature is its output at the end-of-text token, found as the *largest* id of each row.  This
tokenizer keeps that layout with whole words instead of byte pairs:

* a text is lower-cased and split into words (runs of letters) and single digits;
* the vocabulary is ``<pad>`` (id 0), the words of the texts it was built from in sorted order
  (ids 1 .. n), then ``<sot>`` (n + 1) and ``<eot>`` (n + 2), so the end-of-text token has the largest
  id, as in CLIP's vocabulary, and ``tokens.argmax(-1)`` finds it;
* ``encode(texts, context_length)`` gives ``[B, context_length]`` int64 ids:
  ``<sot> w_1 ... w_m <eot> <pad> ...``.

A word outside the vocabulary raises ``ValueError`` naming it (there is no unknown-word id: a prompt
the model has no embedding for should fail loudly, not silently read as something else), and so does a
caption whose ``m + 2`` tokens do not fit in the context.

The module also holds the captions of the book's digits: ``DIGIT_TEMPLATES``, grouped by the style of
the image they describe (plain, blurry, faint, bold), filled with a digit's name ("seven") or numeral
("7"), e.g. "a photo of the digit seven", "a blurry 7".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch

from visarch.checks import check_int

__all__ = ["DIGIT_NAMES", "DIGIT_TEMPLATES", "WordTokenizer", "digit_captions", "digit_tokenizer", "split_words"]

PAD, SOT, EOT = "<pad>", "<sot>", "<eot>"
_WORD = re.compile(r"[a-z]+|[0-9]")

#: the English name of each digit, indexed by the digit
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: style of the image -> caption templates; "{}" is a digit's name or numeral
DIGIT_TEMPLATES = {
    "plain": ("a photo of the digit {}", "a handwritten {}", "the number {}", "{}"),
    "blurry": ("a blurry photo of the digit {}", "a blurry {}"),
    "faint": ("a faint photo of the digit {}", "a faint {}"),
    "bold": ("a bold photo of the digit {}", "a thick handwritten {}"),
}


def split_words(text: str) -> list[str]:
    """The words of ``text``: lower-cased runs of letters and single digits; everything else separates."""
    if not isinstance(text, str):
        raise TypeError(f"a text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def digit_captions(label: int, style: str | None = None) -> list[str]:
    """The captions of one digit: each template of a style with the digit's name, then each with its numeral.

    Args:
        label: the digit, 0..9.
        style: a key of :data:`~visarch.tokenizer.DIGIT_TEMPLATES`, or ``None`` for every style, in
            that dict's order.

    Returns:
        The captions, e.g. ``"a photo of the digit seven"``, ..., ``"a photo of the digit 7"``, ...
    """
    check_int(label, "digit label", where="digit_captions", ge=0)
    if label > 9:
        raise ValueError(f"digit label must be in 0..9, got {label}")
    if style is not None and style not in DIGIT_TEMPLATES:
        raise ValueError(f"style must be one of {list(DIGIT_TEMPLATES)}, got {style!r}")
    styles = list(DIGIT_TEMPLATES) if style is None else [style]
    return [t.format(word) for s in styles for word in (DIGIT_NAMES[label], str(label)) for t in DIGIT_TEMPLATES[s]]


class WordTokenizer:
    """Word-level tokenizer over the words of ``texts`` (see the module docstring for the id layout).

    ``len(tokenizer)`` is the vocabulary size, the words and the three special tokens; ``vocab`` lists
    the tokens by id and ``ids`` maps a token to its id, and ``pad_id``, ``sot_id`` and ``eot_id`` are the
    ids of ``<pad>``, ``<sot>`` and ``<eot>``.

    Args:
        texts: the texts whose words (:func:`~visarch.tokenizer.split_words`) form the vocabulary;
            at least one word.
    """

    def __init__(self, texts: Iterable[str]):
        words = sorted({w for text in texts for w in split_words(text)})
        if not words:
            raise ValueError("a tokenizer needs at least one word in the texts it is built from")
        self.vocab = [PAD, *words, SOT, EOT]  # id -> token
        self.ids = {token: i for i, token in enumerate(self.vocab)}
        self.pad_id, self.sot_id, self.eot_id = 0, len(self.vocab) - 2, len(self.vocab) - 1

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"WordTokenizer({len(self.vocab) - 3} words, vocabulary size {len(self)})"

    def encode(self, texts: str | Sequence[str], context_length: int = 77) -> torch.Tensor:
        """Token ids of ``texts``, each row ``<sot> w_1 ... w_m <eot>`` and zeros (``<pad>``) after.

        A word outside the vocabulary, or a text of more than ``context_length - 2`` words, raises
        ``ValueError`` naming the text.

        Args:
            texts (``str`` or a sequence of ``str``): one text, or a sequence of B of them.
            context_length: L, the length of every row, at least 2.

        Returns:
            int64 ids ``[B, L]`` (B = 1 for one str).
        """
        check_int(context_length, "context length", where=type(self).__name__, ge=2)
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.full((len(texts), context_length), self.pad_id, dtype=torch.int64)
        for row, text in enumerate(texts):
            words = split_words(text)
            unknown = [w for w in words if w not in self.ids]
            if unknown:
                raise ValueError(f"caption {text!r} has words outside the vocabulary: {unknown}")
            if len(words) + 2 > context_length:
                raise ValueError(f"caption {text!r} needs {len(words) + 2} tokens (with start and end of text), "
                                 f"more than the context length {context_length}")
            ids = [self.sot_id, *(self.ids[w] for w in words), self.eot_id]
            out[row, : len(ids)] = torch.tensor(ids)
        return out

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """The B texts of ids ``[B, L]``: the words between start and end of text, joined by single spaces.

        Every row must hold the end-of-text id.
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L], got shape {tuple(tokens.shape)}")
        texts = []
        for row in tokens.tolist():
            if self.eot_id not in row:
                raise ValueError(f"a row of tokens has no end-of-text token (id {self.eot_id}): {row}")
            body = row[: row.index(self.eot_id)]
            texts.append(" ".join(self.vocab[i] for i in body if i not in (self.pad_id, self.sot_id)))
        return texts


def digit_tokenizer() -> WordTokenizer:
    """The tokenizer of the tiny CLIP: the words of every digit caption."""
    return WordTokenizer(c for label in range(10) for c in digit_captions(label))
