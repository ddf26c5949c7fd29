"""Transparent gzip, the gzip-bomb guard and byte accounting."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zlib

import pytest

from training.ingest import IngestLimits, RawRecord, UploadRefused, iter_records

from .helpers import gz, jsonl, read_all

ROWS = jsonl(*({"input": f"question {i}", "output": "answer"} for i in range(1, 501)))


def test_gzipped_jsonl_is_read_transparently():
    records = read_all(gz(ROWS))
    assert len(records) == 500 and records[-1] == RawRecord(500, "question 500", "answer")


def test_gzipped_csv():
    records = read_all(gz(b"text,label\nhi,x\n"), column_mapping={"input": "text", "output": "label"})
    assert records == [RawRecord(2, "hi", "x")]


def test_multi_member_gzip_and_zero_padding():
    data = gz(jsonl({"input": "a", "output": "b"})) + gz(jsonl({"input": "c", "output": "d"})) + b"\x00" * 100
    assert [r.input for r in read_all(data)] == ["a", "c"]


def test_bytes_read_counts_compressed_bytes():
    data = gz(ROWS)
    stream = iter_records(io.BytesIO(data))
    list(stream)
    assert stream.bytes_read == len(data) < len(ROWS)


def test_bomb_refused_by_size():
    bomb = gz(b"\n" * (3 * 1024 * 1024))
    limits = IngestLimits(max_decompressed_bytes=1024 * 1024)
    with pytest.raises(UploadRefused, match="decompresses to more than 1,048,576 bytes"):
        read_all(bomb, limits=limits)


def test_bomb_refused_by_ratio():
    bomb = gz(b" " * (64 * 1024 * 1024))  # ~1000:1
    limits = IngestLimits(ratio_check_after_bytes=1024 * 1024)
    with pytest.raises(UploadRefused, match="decompression bomb"):
        read_all(bomb, limits=limits)


def test_bomb_memory_stays_bounded():
    """A 512 MiB bomb is refused early, holding a few buffers, never the inflated data."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = b"\x00" * (1024 * 1024)
    bomb = b"".join(compressor.compress(chunk) for _ in range(512)) + compressor.flush()
    stream = iter_records(io.BytesIO(bomb))
    tracemalloc.start()
    try:
        with pytest.raises(UploadRefused):
            list(stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_normal_compression_ratio_passes():
    limits = IngestLimits(ratio_check_after_bytes=64 * 1024)
    assert len(read_all(gz(ROWS * 20), limits=limits)) == 10_000


def test_truncated_gzip_is_refused():
    data = gz(ROWS)
    with pytest.raises(UploadRefused, match="truncated"):
        read_all(data[: len(data) // 2])


def test_corrupt_gzip_is_refused():
    data = bytearray(gz(ROWS))
    data[20:40] = b"\xff" * 20
    with pytest.raises(UploadRefused, match="corrupt"):
        read_all(bytes(data))


def test_garbage_after_gzip_is_refused():
    with pytest.raises(UploadRefused, match="after the end"):
        read_all(gz(ROWS) + b"garbage")


def test_only_the_magic_is_refused():
    with pytest.raises(UploadRefused):
        read_all(b"\x1f\x8b")


def test_short_reads_from_the_source():
    class Trickle(io.BytesIO):
        def read(self, size=-1):
            return super().read(min(size, 7) if size and size > 0 else 7)

    assert len(list(iter_records(Trickle(gzip.compress(ROWS))))) == 500
    assert len(list(iter_records(Trickle(ROWS)))) == 500
