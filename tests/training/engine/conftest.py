"""Fixtures for the engine tests (no Django): tiny real models built once per session."""

from __future__ import annotations

import os

import pytest

# No test may reach the Hugging Face hub; everything loads from local folders.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from .tiny_models import build_tiny_causal_lm, build_tiny_encoder


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """Folder with a tiny BERT encoder + tokenizer, loadable with from_pretrained."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory):
    """Folder with a tiny Llama causal LM + tokenizer (ChatML chat template)."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-causal-lm"))
