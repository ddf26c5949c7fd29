"""Normalisation, content hash and the deterministic split."""

from __future__ import annotations

import random
import string

from hypothesis import given
from hypothesis import strategies as st

from training.ingest import assign_split, content_hash, normalise
from training.ingest.dedup import normalised_bytes


def test_normalise_nfc_trim_and_collapse():
    assert normalise("  Cafe\u0301 \t au\n\n lait\u00a0 ") == "Caf\u00e9 au lait"


def test_normalise_keeps_case():
    assert normalise("Refund") != normalise("refund")


def test_normalise_fast_path_and_empty():
    assert normalise("plain text") == "plain text"
    assert normalise("") == ""


@given(st.text())
def test_normalised_bytes_matches_normalise(text):
    assert normalised_bytes(text) == normalise(text).encode("utf-8", "surrogatepass")


@given(st.text(alphabet=" \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000ab\x00\x7f"))
def test_normalised_bytes_matches_normalise_on_whitespace(text):
    assert normalised_bytes(text) == normalise(text).encode("utf-8", "surrogatepass")


def test_content_hash_is_sha256_hex():
    value = content_hash("input", "output")
    assert len(value) == 64 and set(value) <= set(string.hexdigits.lower())


def test_reformatted_repeats_have_the_same_hash():
    assert content_hash("Where is\r\n my  card?", "card") == content_hash("Where is my card?", " card\n")
    assert content_hash("Cafe\u0301", "x") == content_hash("Caf\u00e9", "x")


def test_different_pairs_have_different_hashes():
    assert content_hash("a b", "c") != content_hash("a", "b c")
    assert content_hash("a", "b") != content_hash("a", "B")
    assert content_hash("a", "b") != content_hash("b", "a")


def test_split_is_deterministic_and_ignores_formatting():
    assert assign_split("Where is my card?") == assign_split("  Where is\nmy card? ")
    assert assign_split("x", eval_share=0.0) == "train"
    assert assign_split("x", eval_share=1.0) == "eval"


def test_about_ten_percent_go_to_eval():
    rng = random.Random(7)
    inputs = {"".join(rng.choices(string.ascii_letters + " ", k=40)) for _ in range(10_000)}
    share = sum(assign_split(text) == "eval" for text in inputs) / len(inputs)
    assert 0.085 < share < 0.115


def test_split_depends_on_input_only():
    rng = random.Random(3)
    inputs = ["".join(rng.choices(string.ascii_letters, k=20)) for _ in range(200)]
    first = {text: assign_split(text) for text in inputs}
    rng.shuffle(inputs)
    assert {text: assign_split(text) for text in inputs} == first
