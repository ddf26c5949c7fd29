"""Content hashing for deduplication and the deterministic train/eval split.

Both work on *normalised* text: Unicode NFC, leading/trailing whitespace removed, every run of
whitespace (any Unicode whitespace, line ends included) collapsed to one space. Case is kept: for
generation, translation and extraction the case of the output is part of the answer, and
classification outputs are already canonical labels by the time they are hashed. So a row that
differs from another only by re-wrapping, indentation, CRLF vs LF or composed vs decomposed accents
is a duplicate; a row that differs by one letter's case is not.

content_hash = sha256(sha256(normalise(input)) || normalise(output)), hex (64 characters). The input
is hashed on its own first because that digest also decides the split: one hash of the input serves
both, and the fixed-length prefix makes the pair encoding unambiguous without a separator.

The split is decided by the input alone, so the same input (whatever its output, whatever the
order of rows or files) always lands in the same split and never leaks from train into eval.
"""

from __future__ import annotations

import hashlib
import unicodedata

TRAIN = "train"
EVAL = "eval"
DEFAULT_EVAL_SHARE = 0.10
_TWO_POW_64 = 2**64
_nfc = unicodedata.normalize
_sha256 = hashlib.sha256
_PRINTABLE_ASCII = bytes(range(0x20, 0x80))


def normalise(text: str) -> str:
    """Return `text` in NFC with whitespace trimmed and each whitespace run collapsed to one space."""
    text = _nfc("NFC", text)
    # Fast path (most rows): isprintable() is False for every whitespace character except the ASCII
    # space, so a printable text needs work only for a double space or a space at either end.
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return " ".join(text.split())


def normalised_bytes(text: str) -> bytes:
    """Return normalise(text) encoded as UTF-8: what the hashes are computed over (hot path)."""
    if text.isascii():
        # ASCII is already NFC, and its only whitespace besides the space are control characters,
        # which translate() finds in C far faster than isprintable() (this runs once per row).
        data = text.encode()
        if data.translate(None, _PRINTABLE_ASCII) or "  " in text or text[:1] == " " or text[-1:] == " ":
            return " ".join(text.split()).encode()
        return data
    return normalise(text).encode("utf-8", "surrogatepass")


def input_digest(text: str) -> bytes:
    """Return the sha256 digest of the normalised input (the key of the split)."""
    return _sha256(normalised_bytes(text)).digest()


def output_key(output: str) -> bytes:
    """Return the normalised output as bytes, the second part of the content hash."""
    return normalised_bytes(output)


def split_of_digest(digest: bytes, threshold: int) -> str:
    """Return the split for an input digest given split_threshold(eval_share)."""
    return EVAL if int.from_bytes(digest[:8], "big") < threshold else TRAIN


def split_threshold(eval_share: float) -> int:
    """Return the 64-bit bucket bound below which an input goes to eval."""
    if not 0.0 <= eval_share <= 1.0:
        raise ValueError(f"eval_share must be between 0 and 1, got {eval_share!r}")
    return int(eval_share * _TWO_POW_64)


def assign_split(input: str, eval_share: float = DEFAULT_EVAL_SHARE) -> str:
    """Return "train" or "eval" for `input`, deterministically from its normalised text only."""
    return split_of_digest(input_digest(input), split_threshold(eval_share))


def content_hash(input: str, output: str) -> str:
    """Return the 64-character sha256 hex of the normalised (input, output) pair."""
    return _sha256(input_digest(input) + output_key(output)).hexdigest()
