"""`python -m training.engine` on a tiny model."""

from __future__ import annotations

import json

import pytest

from training.engine.__main__ import main
from training.engine.artifact import read_artifact_metadata
from training.engine.data import eval_bucket, read_jsonl, split_by_input_hash
from training.engine.spec import Example

from .tiny_models import tiny_encoder_base_model

pytestmark = pytest.mark.engine


def test_hash_split_is_deterministic():
    examples = [Example(f"text {n}", "a") for n in range(200)]
    train, evaluation = split_by_input_hash(examples, 0.2)
    reversed_train, reversed_evaluation = split_by_input_hash(list(reversed(examples)), 0.2)
    assert reversed_train == train[::-1] and reversed_evaluation == evaluation[::-1]  # order does not matter
    assert 20 < len(evaluation) < 60 and len(train) + len(evaluation) == 200
    assert eval_bucket("  text 1 ") == eval_bucket("text 1")


def test_read_jsonl_reports_the_bad_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"input": "a", "output": "b"}\n\n{"input": "c"}\n')
    with pytest.raises(ValueError, match=r"rows\.jsonl:3: expected an object"):
        read_jsonl(path)


def test_cli_trains_and_prints_a_summary(tiny_encoder_dir, tmp_path, capsys):
    rows = [{"input": f"my card {n} has not arrived", "output": "card_arrival"} for n in range(20)]
    rows += [{"input": f"i lost my card {n}", "output": "lost_or_stolen_card"} for n in range(20)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    spec = {
        "task_kind": "classification",
        "base_model": tiny_encoder_base_model(tiny_encoder_dir),
        "hyperparameters": {"batch_size": 8},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    artifact = tmp_path / "artifact"

    code = main(
        [
            "--spec",
            str(tmp_path / "spec.json"),
            "--train",
            str(tmp_path / "train.jsonl"),
            "--output",
            str(artifact),
            "--max-steps",
            "3",
            "--target-agreement",
            "0.5",
        ]
    )

    assert code == 0
    captured = capsys.readouterr()
    assert "step 3/3" in captured.err
    summary = json.loads(captured.out)
    assert summary["steps"] == 3 and summary["train_count"] + summary["eval_count"] == 40
    assert summary["eval_count"] > 0 and "accuracy" in summary["metrics"]
    assert summary["calibration"]["target_agreement"] == 0.5
    metadata = read_artifact_metadata(artifact)
    assert metadata["threshold"] == summary["calibration"]["threshold"]
    assert metadata["calibration"]["curve"]
