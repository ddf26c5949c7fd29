"""Every accepted file format and every task kind, and each kind of bad input, through the upload API and
the ingest service: what is stored, and which line each rejection names."""

import gzip
import json

import pytest

from tests.factories_examples import assert_counts_add_up, jsonl, make_task, upload_and_process
from training.models import Example, UploadRowError, UploadStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def errors_by_line(upload) -> dict[int, str]:
    return dict(UploadRowError.objects.filter(upload=upload).values_list("line", "message"))


def stored(task) -> dict[str, Example]:
    """The task's examples by input (PostgreSQL assigns ids in content-hash order, not file order)."""
    return {example.input: example for example in Example.objects.filter(task=task)}


# ---------------------------------------------------------------------------------------------- formats


def test_jsonl_input_output_and_prompt_completion(tenant, admin_client):
    task = make_task(tenant, kind="generation")
    content = jsonl(
        [
            {"input": "Summarise: the card arrived late.", "output": "Late card delivery."},
            {"prompt": "Summarise: refund not received.", "completion": "Missing refund."},
        ]
    )
    upload = upload_and_process(admin_client, task, "mixed.jsonl", content)
    assert (upload.status, upload.accepted) == (UploadStatus.SUCCEEDED, 2)
    assert sorted((e.input, e.output, e.source, e.upload_id) for e in stored(task).values()) == [
        ("Summarise: refund not received.", "Missing refund.", "upload", upload.pk),
        ("Summarise: the card arrived late.", "Late card delivery.", "upload", upload.pk),
    ]


def test_openai_chat_messages_last_assistant_message_is_the_output(tenant, admin_client):
    task = make_task(tenant)
    content = jsonl(
        [
            {
                "messages": [
                    {"role": "user", "content": "I lost my card"},
                    {"role": "assistant", "content": "lost_card"},
                ]
            },
            {
                "messages": [
                    {"role": "system", "content": "Classify the ticket."},
                    {"role": "user", "content": "Charged twice"},
                    {"role": "assistant", "content": "Billing"},
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 1},
                "model": "gpt-4o-2024-08-06",
            },
            {"messages": [{"role": "user", "content": "hello"}]},
        ]
    )
    upload = upload_and_process(admin_client, task, "chat.jsonl", content)
    assert (upload.accepted, upload.rejected) == (2, 1)
    examples = stored(task)
    first, second = examples["I lost my card"], examples["system: Classify the ticket.\nuser: Charged twice"]
    assert first.output == "lost_card"
    assert second.output == "billing"  # case-folded to the canonical label
    assert (second.input_tokens, second.output_tokens, second.model) == (12, 1, "gpt-4o-2024-08-06")
    assert "line 3" not in errors_by_line(upload)[3] and "assistant" in errors_by_line(upload)[3]


def test_logged_request_response_pairs_with_usage_model_timestamp_metadata(tenant, admin_client):
    task = make_task(tenant, kind="translation")
    row = {
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Good morning"}]},
        "response": {
            "choices": [{"message": {"role": "assistant", "content": "Guten Morgen"}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4},
        },
        "timestamp": "2025-03-04T10:00:00Z",
        "metadata": {"customer": "c-17"},
    }
    upload = upload_and_process(admin_client, task, "pairs.jsonl", jsonl([row]))
    assert upload.accepted == 1, upload.errors_preview
    example = stored(task)["Good morning"]
    assert example.output == "Guten Morgen"
    assert (example.input_tokens, example.output_tokens, example.model) == (9, 4, "gpt-4o")
    assert example.logged_at.isoformat() == "2025-03-04T10:00:00+00:00"
    assert example.metadata == {"customer": "c-17"}


def test_csv_with_a_column_mapping_and_optional_columns(tenant, admin_client):
    task = make_task(tenant)
    content = (
        b"ticket,label,when,llm,tin,tout,queue\r\n"
        b"Where is my card?,card_delivery,2025-01-02T03:04:05,gpt-4o,7,2,emea\r\n"
        b'"Charged twice, please ""fix""",BILLING ,1735787045,gpt-4o,9,1,us\r\n'
    )
    mapping = json.dumps(
        {
            "input": "ticket",
            "output": "label",
            "timestamp": "when",
            "model": "llm",
            "input_tokens": "tin",
            "output_tokens": "tout",
        }
    )
    upload = upload_and_process(admin_client, task, "tickets.csv", content, column_mapping=mapping)
    assert (upload.accepted, upload.rejected) == (2, 0), upload.errors_preview
    examples = stored(task)
    first, second = examples["Where is my card?"], examples['Charged twice, please "fix"']
    assert (first.output, first.input_tokens, first.output_tokens) == ("card_delivery", 7, 2)
    assert first.metadata == {"queue": "emea"}
    assert second.output == "billing"
    assert second.logged_at.year == 2025


def test_gzip_jsonl(tenant, admin_client):
    task = make_task(tenant)
    rows = [{"input": f"ticket {i}", "output": "refund"} for i in range(100)]
    upload = upload_and_process(admin_client, task, "log.jsonl.gz", gzip.compress(jsonl(rows)))
    assert (upload.status, upload.accepted) == (UploadStatus.SUCCEEDED, 100)
    assert upload.bytes_processed == upload.size_bytes  # progress counts compressed bytes against the file size


# ---------------------------------------------------------------------------------------------- task kinds


def test_classification_unknown_label_suggests_the_closest(tenant, admin_client):
    task = make_task(tenant)
    content = jsonl([{"input": "lost it", "output": "lost card"}, {"input": "x", "output": "  Refund\t"}])
    upload = upload_and_process(admin_client, task, "a.jsonl", content)
    assert (upload.accepted, upload.rejected) == (1, 1)
    assert "did you mean 'lost_card'?" in errors_by_line(upload)[1]
    assert stored(task)["x"].output == "refund"


def test_extraction_output_must_be_json_valid_for_the_schema(tenant, admin_client):
    task = make_task(tenant, kind="extraction")
    content = jsonl(
        [
            {"input": "Invoice from ACME for 12.50", "output": {"name": "ACME", "amount": 12.5}},
            {"input": "Invoice from Initech", "output": '{"name": "Initech", "amount": 3}'},
            {"input": "Invoice from Umbrella", "output": '{"name": "Umbrella"}'},
            {"input": "Invoice from Hooli", "output": "name: Hooli"},
        ]
    )
    upload = upload_and_process(admin_client, task, "x.jsonl", content)
    assert (upload.accepted, upload.rejected) == (2, 2)
    errors = errors_by_line(upload)
    assert "schema" in errors[3] and "amount" in errors[3]
    assert "not valid JSON" in errors[4]
    assert json.loads(stored(task)["Invoice from ACME for 12.50"].output) == {"name": "ACME", "amount": 12.5}


def test_translation_and_generation_need_non_empty_outputs(tenant, admin_client):
    for kind in ("translation", "generation"):
        task = make_task(tenant, kind=kind)
        content = jsonl(
            [{"input": "Hello", "output": "Hallo"}, {"input": "Bye", "output": "   "}, {"input": "", "output": "x"}]
        )
        upload = upload_and_process(admin_client, task, "t.jsonl", content)
        assert (upload.accepted, upload.rejected) == (1, 2), kind
        errors = errors_by_line(upload)
        assert "output is empty" in errors[2] and "input is empty" in errors[3]


def test_input_over_the_configured_length_is_rejected(tenant, admin_client, settings):
    settings.INGEST_MAX_INPUT_CHARS = 50
    task = make_task(tenant)
    upload = upload_and_process(admin_client, task, "a.jsonl", jsonl([{"input": "x" * 51, "output": "refund"}]))
    assert upload.rejected == 1 and "at most 50" in errors_by_line(upload)[1]


# ---------------------------------------------------------------------------------------------- bad bytes


def test_bad_bytes_are_row_errors_with_their_line_never_a_crash(tenant, admin_client, settings):
    settings.INGEST_MAX_LINE_BYTES = 2000
    task = make_task(tenant)
    good = b'{"input": "fine", "output": "refund"}'
    content = b"\r\n".join(
        [
            b"\xef\xbb\xbf" + good,  # 1: a BOM at the start of the file is allowed
            b'{"input": "caf\xe9", "output": "refund"}',  # 2: Latin-1, not UTF-8
            b"\xef\xbb\xbf" + good.replace(b"fine", b"joined"),  # 3: BOM in the middle (files concatenated)
            b'{"input": "' + b"y" * 3000 + b'", "output": "refund"}',  # 4: over-long line
            b'{"input": "broken", "output": ',  # 5: invalid JSON
            b'["an", "array"]',  # 6: not an object
            good.replace(b"fine", b"crlf line"),  # 7: fine (CRLF line ends)
            b'{"input": "truncated", "outp',  # 8: the last line, cut off
        ]
    )
    upload = upload_and_process(admin_client, task, "bad.jsonl", content)
    assert upload.status == UploadStatus.SUCCEEDED
    assert (upload.rows_read, upload.accepted, upload.rejected) == (8, 2, 6)
    assert_counts_add_up(upload)
    errors = errors_by_line(upload)
    assert sorted(errors) == [2, 3, 4, 5, 6, 8]
    assert "UTF-8" in errors[2]
    assert "byte order mark" in errors[3]
    assert "longer than 2,000 bytes" in errors[4]
    assert "not valid JSON" in errors[5]
    assert "array" in errors[6]
    assert "incomplete" in errors[8] or "truncated" in errors[8]
    assert sorted(stored(task)) == ["crlf line", "fine"]


def test_csv_bad_rows(tenant, admin_client):
    task = make_task(tenant)
    content = b'text,category\nok one,refund\ncaf\xe9,refund\ntoo,many,columns\nok two,billing\n"unterminated,refund\n'
    upload = upload_and_process(
        admin_client, task, "bad.csv", content, column_mapping='{"input": "text", "output": "category"}'
    )
    assert upload.accepted == 2
    assert_counts_add_up(upload)
    errors = errors_by_line(upload)
    assert "UTF-8" in errors[3]
    assert "columns" in errors[4]
    assert max(errors) >= 6  # the unterminated quote is reported at its line
