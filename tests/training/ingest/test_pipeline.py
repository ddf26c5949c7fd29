"""ingest_stream: batching, dedup, counts, early stop, resume and progress."""

from __future__ import annotations

import io
import random

import pytest

from training.ingest import IngestLimits, TaskRules, UploadRefused, ingest_stream

from .helpers import FakeStore, gz, jsonl

RULES = TaskRules(kind="classification", labels=("billing", "card", "other"))


def rows(count: int, *, label: str = "card", start: int = 0) -> list[dict]:
    return [{"input": f"question number {i}", "output": label} for i in range(start, start + count)]


def ingest(data: bytes, store: FakeStore, **options):
    options.setdefault("rules", RULES)
    return ingest_stream(io.BytesIO(data), **store.callbacks(), **options)


def test_counts_batches_and_checkpoints():
    data = jsonl(*rows(10), {"input": "x", "output": "nope"}, b"not json", *rows(3))
    store = FakeStore()
    summary = ingest(data, store, batch_size=4)
    assert (summary.rows_read, summary.accepted, summary.rejected, summary.duplicates) == (15, 10, 2, 3)
    assert summary.last_line == 15 and not summary.stopped_early
    assert summary.message == "15 rows read: 10 accepted, 2 rejected, 3 duplicates"
    assert summary.bytes_read == len(data)
    assert store.batches == 4 and store.checkpoint == 15
    assert [e.line for e in store.errors] == [11, 12]
    assert (store.totals.rows_read, store.totals.accepted) == (15, 10)


def test_duplicates_within_a_batch_and_after_reformatting():
    data = jsonl(
        {"input": "Where is my card?", "output": "card"},
        {"input": "Where is  my card?\n", "output": "CARD"},
        {"input": "Where is my card?", "output": "billing"},
    )
    store = FakeStore()
    summary = ingest(data, store)
    assert (summary.accepted, summary.duplicates) == (2, 1)
    assert [row.line for row in store.rows] == [1, 3]


def test_duplicates_across_batches_use_known_hashes():
    data = jsonl(*rows(5), *rows(5))
    store = FakeStore()
    summary = ingest(data, store, batch_size=3)
    assert (summary.accepted, summary.duplicates) == (5, 5)


def test_rows_already_in_the_task_are_duplicates():
    store = FakeStore()
    ingest(jsonl(*rows(5)), store)
    summary = ingest(jsonl(*rows(8)), store)
    assert (summary.accepted, summary.duplicates) == (3, 5)
    assert all(len(lookup) <= 2000 for lookup in store.lookups)


def test_same_input_never_in_both_splits_whatever_the_order():
    inputs = [f"ticket text {i}" for i in range(300)]
    records = [{"input": text, "output": label} for text in inputs for label in ("card", "billing")]
    splits = []
    for seed in (1, 2):
        random.Random(seed).shuffle(records)
        store = FakeStore()
        ingest(jsonl(*records), store, batch_size=50)
        by_input: dict[str, set[str]] = {}
        for row in store.rows:
            by_input.setdefault(row.input, set()).add(row.split)
        assert all(len(found) == 1 for found in by_input.values())
        splits.append({text: found.pop() for text, found in by_input.items()})
    assert splits[0] == splits[1]
    assert "eval" in splits[0].values() and "train" in splits[0].values()


def test_early_stop_names_the_likely_cause():
    data = jsonl(*({"input": f"q{i}"} for i in range(734)), *rows(266), *rows(5000, start=1000))
    store = FakeStore()
    summary = ingest(data, store, batch_size=300)
    assert summary.stopped_early
    assert summary.message == (
        "wrong format or column mapping: 734 of the first 1,000 rows were rejected; "
        "the most common error was 'missing field output' — check the column mapping or the file's shape"
    )
    assert (summary.rows_read, summary.rejected, summary.accepted, summary.last_line) == (1000, 734, 266, 1000)
    assert (store.totals.rows_read, store.checkpoint) == (1000, 1000)


def test_no_early_stop_below_half():
    data = jsonl(*({"input": f"q{i}", "output": "unknown"} for i in range(500)), *rows(1500))
    summary = ingest(data, FakeStore())
    assert not summary.stopped_early and summary.rows_read == 2000


def test_early_stop_can_be_disabled():
    data = jsonl(*({"input": f"q{i}"} for i in range(1200)))
    summary = ingest(data, FakeStore(), early_stop_rows=0)
    assert not summary.stopped_early and summary.rejected == 1200


def test_small_mostly_bad_file_gets_the_hint_without_stopping():
    data = b"text,label\n" + b"".join(b"q%d,x\n" % i for i in range(10))
    summary = ingest(data, FakeStore(), column_mapping={"input": "text", "output": "label"})
    assert not summary.stopped_early and summary.rejected == 10
    assert summary.message.startswith("wrong format or column mapping: 10 of the 10 rows were rejected")
    assert "'output is not one of the task's labels'" in summary.message


def test_resume_after_a_crash_gives_the_same_totals_as_one_pass():
    records = [*rows(40), *rows(10), {"input": "bad"}, b"{", *rows(30, label="billing")]
    data = jsonl(*records) + b"\n\n"
    one_pass = FakeStore()
    ingest(data, one_pass, batch_size=7)

    crashed = FakeStore(fail_on_batch=4)
    with pytest.raises(ConnectionError):
        ingest(data, crashed, batch_size=7)
    assert crashed.checkpoint == 21
    resumed = ingest(data, crashed, batch_size=7, start_line=crashed.checkpoint + 1)
    assert resumed.rows_read == one_pass.totals.rows_read - 21
    assert crashed.totals == one_pass.totals
    assert [r.content_hash for r in crashed.rows] == [r.content_hash for r in one_pass.rows]
    assert [(e.line, e.message) for e in crashed.errors] == [(e.line, e.message) for e in one_pass.errors]


def test_resume_csv_with_multi_line_records():
    data = b"text,label\n" + b"".join(b'"line one %d\nline two",card\n' % i for i in range(20))
    mapping = {"input": "text", "output": "label"}
    one_pass = FakeStore()
    ingest(data, one_pass, batch_size=3, column_mapping=mapping)
    crashed = FakeStore(fail_on_batch=3)
    with pytest.raises(ConnectionError):
        ingest(data, crashed, batch_size=3, column_mapping=mapping)
    ingest(data, crashed, batch_size=3, column_mapping=mapping, start_line=crashed.checkpoint + 1)
    assert crashed.totals == one_pass.totals and crashed.totals.accepted == 20


def test_progress_reports_running_totals():
    data = gz(jsonl(*rows(5000)))
    seen = []
    summary = ingest(data, FakeStore(), batch_size=1000, on_progress=seen.append)
    assert [p.rows_read for p in seen] == [1000, 2000, 3000, 4000, 5000]
    assert seen[-1].bytes_read == summary.bytes_read == len(data)
    assert seen[0] is not seen[1]


def test_upload_refused_propagates():
    with pytest.raises(UploadRefused):
        ingest(gz(b"\x00" * 4096), FakeStore(), limits=IngestLimits(max_decompressed_bytes=1000))


def test_empty_upload():
    summary = ingest(b"", FakeStore())
    assert (summary.rows_read, summary.last_line, summary.message) == (
        0,
        0,
        "0 rows read: 0 accepted, 0 rejected, 0 duplicates",
    )
