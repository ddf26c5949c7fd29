"""Real LoRA training on tiny models: steps, artifact, reload, cancellation, progress."""

from __future__ import annotations

import json

import pytest
import torch

from training.engine import Example, Predictor, TrainingSpec, clear_predictor_cache, modeling, train
from training.engine.artifact import read_artifact_metadata, write_artifact_metadata

from .tiny_models import tiny_causal_lm_base_model, tiny_encoder_base_model

pytestmark = pytest.mark.engine

CLASSIFICATION_EXAMPLES = (
    [Example(f"my card {n} has not arrived yet", "card_arrival") for n in range(6)]
    + [Example(f"i lost my card {n} yesterday", "lost_or_stolen_card") for n in range(6)]
    + [Example(f"how do i top up {n}", "top_up") for n in range(6)]
)
EXTRACTION_EXAMPLES = [
    Example(f"book a table in paris for {n} people", json.dumps({"city": "paris", "people": n})) for n in range(8)
]


def classification_spec(encoder_dir, output_dir, **overrides) -> TrainingSpec:
    values = {
        "task_kind": "classification",
        "base_model": tiny_encoder_base_model(encoder_dir),
        "labels": ["card_arrival", "lost_or_stolen_card", "top_up"],
        "hyperparameters": {"batch_size": 4, "epochs": 1},
        "output_dir": str(output_dir),
        "max_steps": 2,
    }
    values.update(overrides)
    return TrainingSpec.from_dict(values)


def extraction_spec(lm_dir, output_dir, **overrides) -> TrainingSpec:
    values = {
        "task_kind": "extraction",
        "base_model": tiny_causal_lm_base_model(lm_dir),
        "output_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        "hyperparameters": {"batch_size": 2, "gradient_accumulation_steps": 2, "epochs": 1},
        "output_dir": str(output_dir),
        "max_steps": 2,
    }
    values.update(overrides)
    return TrainingSpec.from_dict(values)


def test_classification_trains_saves_and_reloads_identically(tiny_encoder_dir, tmp_path):
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    progress = []
    result = train(
        classification_spec(tiny_encoder_dir, tmp_path / "artifact"),
        CLASSIFICATION_EXAMPLES,
        CLASSIFICATION_EXAMPLES[::3],
        on_progress=progress.append,
    )
    assert not result.cancelled
    assert result.steps == 2 and [step for step, _ in result.loss_curve] == [1, 2]
    assert [p.step for p in progress] == [1, 2] and progress[-1].eta_seconds == 0
    assert all(p.total_steps == 2 and p.loss > 0 and p.examples_per_second > 0 for p in progress)
    assert progress[0].epoch == pytest.approx(0.2)  # 18 examples / batch 4 = 5 steps per epoch
    assert (result.train_count, result.eval_count) == (18, 6)
    assert len(result.predictions) == 6
    assert all(0 < p.confidence <= 1 and p.agrees is not None for p in result.predictions)
    assert set(result.metrics) >= {"accuracy", "macro_f1", "per_label", "agreement_rate"}

    artifact = tmp_path / "artifact"
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "label_map.json",
        "metadata.json",
        "README.md",
    ):
        assert (artifact / name).is_file(), name
    with safe_open(artifact / "adapter_model.safetensors", "pt") as weights:
        assert any("classifier" in key for key in weights.keys())  # noqa: SIM118 (safe_open has no __iter__)  # the trained head travels with the adapter
    metadata = read_artifact_metadata(artifact)
    assert metadata["task_kind"] == "classification" and metadata["labels"][0] == "card_arrival"
    assert metadata["hyperparameters"]["seed"] == 42 and metadata["threshold"] is None
    assert "PeftModel.from_pretrained" in (artifact / "README.md").read_text()

    # Reload through Predictor: same answers and confidences as the in-memory model gave.
    clear_predictor_cache()
    predictor = Predictor.load(artifact)
    assert Predictor.load(artifact) is predictor  # cached per process
    reloaded = predictor.predict([e.input for e in CLASSIFICATION_EXAMPLES[::3]])
    assert [p.output for p in reloaded] == [p.output for p in result.predictions]
    assert [p.confidence for p in reloaded] == pytest.approx([p.confidence for p in result.predictions], abs=1e-6)

    # And the README's recipe (plain transformers + PeftModel) gives identical logits.
    labels = json.loads((artifact / "label_map.json").read_text())
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_encoder_dir,
        num_labels=len(labels["labels"]),
        id2label={int(k): v for k, v in labels["id2label"].items()},
        label2id=labels["label2id"],
    )
    with modeling.quiet_known_deprecations():
        plain = PeftModel.from_pretrained(base, str(artifact)).eval()
    tokenizer = AutoTokenizer.from_pretrained(artifact)
    batch = tokenizer(["my card has not arrived", "top up"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(plain(**batch).logits, predictor.model(**batch).logits)

    write_artifact_metadata(artifact, threshold=0.75)
    assert read_artifact_metadata(artifact)["threshold"] == 0.75
    assert "Calibrated threshold: 0.75" in (artifact / "README.md").read_text()


def test_training_is_reproducible_with_the_seed(tiny_encoder_dir, tmp_path):
    first = train(classification_spec(tiny_encoder_dir, tmp_path / "a"), CLASSIFICATION_EXAMPLES, [])
    second = train(classification_spec(tiny_encoder_dir, tmp_path / "b"), CLASSIFICATION_EXAMPLES, [])
    assert first.loss_curve == second.loss_curve
    assert first.predictions == [] and first.metrics == {"train_examples_per_second": first.examples_per_second}


def test_unknown_training_label_is_reported(tiny_encoder_dir, tmp_path):
    with pytest.raises(ValueError, match="training example 1: label 'nope' is not in the task's label set"):
        train(
            classification_spec(tiny_encoder_dir, tmp_path),
            [CLASSIFICATION_EXAMPLES[0], Example("x", "nope")],
            [],
        )


def test_should_stop_cancels_within_the_step(tiny_encoder_dir, tmp_path):
    polls = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) >= 3  # stop when asked before the third step

    progress = []
    output = tmp_path / "cancelled"
    result = train(
        classification_spec(tiny_encoder_dir, output, max_steps=None),
        CLASSIFICATION_EXAMPLES,
        CLASSIFICATION_EXAMPLES[:3],
        on_progress=progress.append,
        should_stop=should_stop,
    )
    assert result.cancelled
    assert result.steps == 2 and len(progress) == 2 and result.total_steps == 5
    assert result.artifact_dir is None and result.metrics == {} and result.predictions == []
    assert not (output / "adapter_model.safetensors").exists()


def test_generation_trains_with_accumulation_saves_and_reloads(tiny_causal_lm_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    progress = []
    artifact = tmp_path / "artifact"
    result = train(
        extraction_spec(tiny_causal_lm_dir, artifact),
        EXTRACTION_EXAMPLES,
        EXTRACTION_EXAMPLES[:3],
        on_progress=progress.append,
    )
    assert result.steps == 2 and [p.step for p in progress] == [1, 2]
    assert progress[0].epoch == pytest.approx(0.5)  # 8 examples, 2 per batch, 2 batches per step
    assert set(result.metrics) >= {"json_valid_rate", "field_f1", "exact_match", "agreement_rate"}
    for prediction in result.predictions:
        assert 0 <= prediction.min_token_probability <= prediction.confidence <= 1
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "metadata.json",
    ):
        assert (artifact / name).is_file(), name
    metadata = read_artifact_metadata(artifact)
    assert "JSON" in metadata["instruction"] and metadata["max_new_tokens"] > 0

    clear_predictor_cache()
    predictor = Predictor.load(artifact)
    reloaded = predictor.predict([e.input for e in EXTRACTION_EXAMPLES[:3]])
    assert [p.output for p in reloaded] == [p.output for p in result.predictions]
    assert [p.confidence for p in reloaded] == pytest.approx([p.confidence for p in result.predictions], abs=1e-6)

    with modeling.quiet_known_deprecations():
        plain = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(tiny_causal_lm_dir), str(artifact)
        ).eval()
    ids = torch.tensor([predictor.tokenizer("book a table")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(plain(input_ids=ids).logits, predictor.model(input_ids=ids).logits)


def test_generation_loss_is_only_on_the_output(tiny_causal_lm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm_dir)
    row = modeling.encode_generation_example(tokenizer, "Extract.", "book a table", '{"a": 1}', max_length=64)
    answer = [token for token in row["labels"] if token != -100]
    assert tokenizer.decode(answer) == '{"a": 1}<|im_end|>'
    assert row["input_ids"][-len(answer) :] == answer
    assert tokenizer.decode(row["input_ids"][: -len(answer)]).endswith("<|im_start|>assistant\n")

    # Too long: the input text is shortened, the template's end (where the answer starts) is kept.
    long_row = modeling.encode_generation_example(
        tokenizer, "Extract.", "book a table " * 50, '{"a": 1}', max_length=40
    )
    assert len(long_row["input_ids"]) <= 40
    assert [t for t in long_row["labels"] if t != -100] == answer
    prompt = tokenizer.decode(long_row["input_ids"][: -len(answer)])
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")


def test_fallback_prompt_without_chat_template(tmp_path):
    from .tiny_models import build_tiny_causal_lm

    folder = build_tiny_causal_lm(tmp_path / "plain", chat_template=False)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = modeling.build_prompt(tokenizer, "Translate.", "hallo")
    assert prompt == "<s>### Instruction:\nTranslate.\n\n### Input:\nhallo\n\n### Response:\n"
