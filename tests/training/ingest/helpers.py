"""Shared helpers for the ingest tests: building uploads and an in-memory stand-in for the database."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field

import orjson

from training.ingest import IngestCounter, RawRecord, RowError, ValidRow, iter_records


def jsonl(*rows: object) -> bytes:
    """Rows (dicts, or raw bytes/str lines) as JSON Lines bytes, each line ending in LF."""
    lines = []
    for row in rows:
        if isinstance(row, bytes):
            lines.append(row)
        elif isinstance(row, str):
            lines.append(row.encode())
        else:
            lines.append(orjson.dumps(row))
    return b"".join(line + b"\n" for line in lines)


def read_all(data: bytes, **options) -> list[RawRecord | RowError]:
    return list(iter_records(io.BytesIO(data), **options))


def one(data: bytes, **options) -> RawRecord | RowError:
    records = read_all(data, **options)
    assert len(records) == 1, records
    return records[0]


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@dataclass
class FakeStore:
    """The caller's side of ingest_stream: rows by content hash, errors, counters and checkpoint.

    Each write_batch is one "transaction"; `fail_on_batch` makes the n-th (1-based) write raise
    before storing anything, like a crash before commit.
    """

    hashes: set[str] = field(default_factory=set)
    rows: list[ValidRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    totals: IngestCounter = field(default_factory=IngestCounter)
    checkpoint: int = 0
    batches: int = 0
    fail_on_batch: int | None = None
    lookups: list[list[str]] = field(default_factory=list)

    def known_hashes(self, hashes: list[str]) -> set[str]:
        self.lookups.append(hashes)
        return {value for value in hashes if value in self.hashes}

    def write_batch(self, rows: list[ValidRow], errors: list[RowError], last_line: int, counts: IngestCounter) -> None:
        if self.fail_on_batch is not None and self.batches + 1 == self.fail_on_batch:
            self.fail_on_batch = None
            raise ConnectionError("database went away")
        assert counts.accepted == len(rows)
        assert counts.rejected == len(errors)
        assert counts.accepted + counts.rejected + counts.duplicates == counts.rows_read
        assert counts.last_line == last_line >= self.checkpoint
        assert not {row.content_hash for row in rows} & self.hashes
        assert len({row.content_hash for row in rows}) == len(rows)
        self.batches += 1
        self.rows.extend(rows)
        self.hashes.update(row.content_hash for row in rows)
        self.errors.extend(errors)
        self.totals.add(counts)
        self.checkpoint = last_line

    def callbacks(self) -> dict:
        return {"known_hashes": self.known_hashes, "write_batch": self.write_batch}
