"""Loading base models and tokenizers, prompt formatting, batching and batched inference.

Shared by training, evaluation and serving (Predictor), so a model answers the same prompt the same way
in all three.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from .spec import BaseModel, Prediction, TrainingSpec, resolve_model_dir

# The fallback prompt for tokenizers without a chat template (tiny test models, plain base models).
FALLBACK_TEMPLATE = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


def select_device() -> torch.device:
    """CUDA when present, else CPU with torch threads set to the cores this process may use.

    An explicit OMP_NUM_THREADS in the environment (e.g. a worker running two jobs side by side) wins.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.device("cpu")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)
    return torch.device("cpu")


def autocast_context(device: torch.device):
    """bf16 autocast on CUDA (halves activation memory, tensor cores); a no-op on CPU where fp32 is faster."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)


@contextlib.contextmanager
def quiet_known_deprecations():
    """Silence the FutureWarning peft 0.21 triggers in transformers 5 (is_gradient_checkpointing)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def load_tokenizer(base_model: BaseModel, model_dir: str | None = None):
    """The base model's tokenizer, with a pad token guaranteed (causal LMs often lack one)."""
    from transformers import AutoTokenizer

    model_dir = model_dir or resolve_model_dir(base_model)
    kwargs: dict[str, Any] = {}
    if base_model.gguf_file:
        kwargs["gguf_file"] = base_model.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(model_dir, **kwargs)
    ensure_pad_token(tokenizer)
    return tokenizer


def ensure_pad_token(tokenizer) -> None:
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an end-of-sequence token")
        tokenizer.pad_token = tokenizer.eos_token


def load_classifier_base(base_model: BaseModel, labels: Sequence[str], model_dir: str | None = None):
    """AutoModelForSequenceClassification with a fresh head of len(labels) outputs and named labels."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as transformers_logging

    model_dir = model_dir or resolve_model_dir(base_model)
    id2label = dict(enumerate(labels))
    # The load report always lists the new head as "missing"; that is expected, so keep it out of the logs.
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            model_dir,
            num_labels=len(labels),
            id2label=id2label,
            label2id={label: index for index, label in id2label.items()},
            dtype=torch.float32,
        )
    finally:
        transformers_logging.set_verbosity(verbosity)


def load_causal_lm_base(base_model: BaseModel, model_dir: str | None = None):
    """AutoModelForCausalLM in fp32; a GGUF checkpoint is dequantised and rebuilt as a plain model."""
    from transformers import AutoModelForCausalLM

    model_dir = model_dir or resolve_model_dir(base_model)
    if not base_model.gguf_file:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    loaded = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=base_model.gguf_file, dtype=torch.float32)
    # A GGUF-loaded model carries a gguf quantization_config and quantizer hooks, which block
    # save_pretrained and make PEFT treat it as quantized; rebuilding from the plain config with the
    # dequantised weights gives an ordinary fp32 model.
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=False)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    del loaded
    return model


# ---------------------------------------------------------------------------------------------------
# Prompts for the generation kinds


def task_instruction(spec_like: TrainingSpec | dict[str, Any]) -> str:
    """The instruction sent with every input; derived from the task unless the spec gives one."""
    get = spec_like.get if isinstance(spec_like, dict) else lambda key, default=None: getattr(spec_like, key, default)
    if get("instruction"):
        return str(get("instruction"))
    kind = get("task_kind")
    if kind == "extraction":
        schema = get("output_schema")
        text = "Extract the fields from the text and answer with JSON only."
        if schema:
            text += " The JSON must follow this schema: " + json.dumps(schema, sort_keys=True, separators=(",", ":"))
        return text
    if kind == "translation":
        source = get("source_language") or "the source language"
        target = get("target_language") or "the target language"
        return f"Translate the text from {source} to {target}. Answer with the translation only."
    return "Answer the request."


def build_prompt(tokenizer, instruction: str, text: str) -> str:
    """The prompt up to where the answer starts: the tokenizer's chat template when it has one."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": instruction}, {"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return (tokenizer.bos_token or "") + FALLBACK_TEMPLATE.format(instruction=instruction, input=text)


def encode_prompt(tokenizer, instruction: str, text: str, budget: int) -> list[int]:
    """Token ids of the prompt, at most `budget` long: the input text is shortened, never the template."""
    ids = tokenizer(build_prompt(tokenizer, instruction, text), add_special_tokens=False)["input_ids"]
    overflow = len(ids) - budget
    if overflow > 0:
        text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        keep = max(len(text_ids) - overflow, 0)
        shortened = tokenizer.decode(text_ids[:keep], skip_special_tokens=True)
        ids = tokenizer(build_prompt(tokenizer, instruction, shortened), add_special_tokens=False)["input_ids"]
        if len(ids) > budget:  # the template alone is too long: keep its end, where the answer starts
            ids = ids[len(ids) - budget :]
    return ids


def encode_generation_example(
    tokenizer, instruction: str, text: str, output: str, max_length: int
) -> dict[str, list[int]]:
    """input_ids and labels for SFT: loss only on the output tokens and the closing EOS (prompt is -100)."""
    target = tokenizer(output, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    # The answer gets at least half the window; the prompt's input text gives way first.
    prompt_budget = max(max_length - len(target), max_length // 2)
    prompt = encode_prompt(tokenizer, instruction, text, prompt_budget)
    target = target[: max_length - len(prompt)]
    return {"input_ids": prompt + target, "labels": [-100] * len(prompt) + target}


def encode_classification_examples(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text (with the model's special tokens), truncated to max_length."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def pad_batch(rows: Sequence[dict[str, Any]], pad_token_id: int, *, left: bool = False) -> dict[str, torch.Tensor]:
    """Dynamic padding: pad to the longest row of this batch only (not to max_length)."""
    width = max(len(row["input_ids"]) for row in rows)
    input_ids, attention_mask, labels = [], [], []
    has_sequence_labels = "labels" in rows[0] and isinstance(rows[0]["labels"], list)
    for row in rows:
        ids = list(row["input_ids"])
        pad = width - len(ids)
        if left:
            input_ids.append([pad_token_id] * pad + ids)
            attention_mask.append([0] * pad + [1] * len(ids))
        else:
            input_ids.append(ids + [pad_token_id] * pad)
            attention_mask.append([1] * len(ids) + [0] * pad)
        if has_sequence_labels:
            labels.append(row["labels"] + [-100] * pad)
    batch = {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "attention_mask": torch.tensor(attention_mask, dtype=torch.long),
    }
    if has_sequence_labels:
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
    elif "labels" in rows[0]:
        batch["labels"] = torch.tensor([row["labels"] for row in rows], dtype=torch.long)
    return batch


# ---------------------------------------------------------------------------------------------------
# Batched inference


@torch.no_grad()
def classify(
    model, tokenizer, texts: Sequence[str], labels: Sequence[str], *, max_length: int, batch_size: int = 64
) -> list[Prediction]:
    """Label and softmax-max confidence per text."""
    device = next(model.parameters()).device
    model.eval()
    predictions: list[Prediction] = []
    encoded = encode_classification_examples(tokenizer, texts, max_length) if texts else []
    for start in range(0, len(encoded), batch_size):
        rows = [{"input_ids": ids} for ids in encoded[start : start + batch_size]]
        batch = {key: value.to(device) for key, value in pad_batch(rows, tokenizer.pad_token_id).items()}
        with autocast_context(device):
            logits = model(**batch).logits
        probabilities = torch.softmax(logits.float(), dim=-1)
        confidence, index = probabilities.max(dim=-1)
        for conf, idx in zip(confidence.tolist(), index.tolist(), strict=True):
            predictions.append(Prediction(output=labels[idx], confidence=float(conf)))
    return predictions


@torch.no_grad()
def generate(
    model,
    tokenizer,
    texts: Sequence[str],
    instruction: str,
    *,
    max_length: int,
    max_new_tokens: int,
    batch_size: int = 16,
) -> list[Prediction]:
    """Greedy decoding; confidence is the mean probability of the chosen tokens (EOS included)."""
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    model.eval()
    eos_id = tokenizer.eos_token_id
    generation_config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    prompt_budget = max(max_length - max_new_tokens, 8)
    predictions: list[Prediction] = []
    for start in range(0, len(texts), batch_size):
        rows = [
            {"input_ids": encode_prompt(tokenizer, instruction, text, prompt_budget)}
            for text in texts[start : start + batch_size]
        ]
        # Decoder-only models continue from the last position, so prompts are padded on the left.
        batch = {key: value.to(device) for key, value in pad_batch(rows, tokenizer.pad_token_id, left=True).items()}
        with autocast_context(device):
            result = model.generate(**batch, generation_config=generation_config)
        new_tokens = result.sequences[:, batch["input_ids"].shape[1] :]
        step_logits = torch.stack([logits.float() for logits in result.logits], dim=1)  # batch, steps, vocab
        chosen = torch.softmax(step_logits, dim=-1).gather(-1, new_tokens[:, : step_logits.shape[1]].unsqueeze(-1))
        chosen = chosen.squeeze(-1)
        for row_tokens, row_probabilities in zip(new_tokens.tolist(), chosen.tolist(), strict=True):
            length = len(row_tokens)
            if eos_id in row_tokens:
                length = row_tokens.index(eos_id) + 1  # count the stop decision itself
            probabilities = row_probabilities[:length] or [0.0]
            text = tokenizer.decode([t for t in row_tokens[:length] if t != eos_id], skip_special_tokens=True)
            predictions.append(
                Prediction(
                    output=text.strip(),
                    confidence=float(sum(probabilities) / len(probabilities)),
                    min_token_probability=float(min(probabilities)),
                )
            )
    return predictions
