"""Tiny real models for tests: a 2-layer BERT encoder and a 2-layer Llama causal LM (hidden size 32).

Built from a config with random weights and a byte-level BPE tokenizer trained on TINY_CORPUS, saved to a
folder that `from_pretrained` loads like any downloaded model. No network, about a second to build.
Reused by the Django-side training job tests: import build_tiny_encoder / build_tiny_causal_lm, or the
`tiny_encoder_dir` / `tiny_causal_lm_dir` fixtures from this folder's conftest.
"""

from __future__ import annotations

from pathlib import Path

TINY_CORPUS = [
    "my card has not arrived yet",
    "i lost my card yesterday",
    "how do i top up my account",
    "the exchange rate was wrong",
    "please translate this sentence",
    "book a table in paris for two people",
    "play some jazz music tonight",
    '{"city": "paris", "people": 2}',
    '{"genre": "jazz", "time": "tonight"}',
    "card_arrival lost_or_stolen_card top_up exchange_rate",
    "das ist ein kleiner test satz",
]

# ChatML, the template of SmolLM2 and many instruct models, so tests exercise the chat-template path.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

HIDDEN_SIZE = 32


def _train_bpe(special_tokens: list[str], vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TINY_CORPUS * 4, trainer=trainer)
    return tokenizer


def build_tiny_encoder(path: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny BertModel + tokenizer ([CLS] text [SEP]) to `path`; returns the folder."""
    import torch
    from tokenizers import processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = _train_bpe(specials)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    tokenizer.save_pretrained(path)
    config = BertConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=backend.token_to_id("[PAD]"),
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    return path


def build_tiny_causal_lm(path: str | Path, *, seed: int = 0, chat_template: bool = True) -> Path:
    """Save a tiny LlamaForCausalLM + tokenizer (ChatML template unless chat_template=False) to `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<s>", "<|im_end|>", "<unk>", "<|im_start|>"]
    backend = _train_bpe(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=256,
    )
    if chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def tiny_encoder_base_model(path: str | Path) -> dict:
    """A `base_model` dict for TrainingSpec pointing at a built tiny encoder."""
    return {
        "name": "tiny-encoder",
        "source_kind": "path",
        "source": str(path),
        "architecture": "encoder",
        "target_modules": ["query", "value"],
        "max_length": 32,
    }


def tiny_causal_lm_base_model(path: str | Path) -> dict:
    """A `base_model` dict for TrainingSpec pointing at a built tiny causal LM."""
    return {
        "name": "tiny-causal-lm",
        "source_kind": "path",
        "source": str(path),
        "architecture": "causal-lm",
        "target_modules": ["q_proj", "v_proj"],
        "max_length": 64,
    }
