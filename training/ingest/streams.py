"""Byte-level reading of an upload: counting, transparent gzip and the gzip-bomb guard."""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO

from training.ingest.records import IngestLimits, UploadRefused

GZIP_MAGIC = b"\x1f\x8b"
# Size of each read from the caller's stream and of the line buffer. 256 KiB keeps the Python-level
# read calls rare (a few per thousand rows) while the read-ahead stays small.
READ_CHUNK_BYTES = 256 * 1024


class _CountingSource(io.RawIOBase):
    """Raw adapter over the caller's stream that counts the bytes consumed from it."""

    def __init__(self, source: BinaryIO, prefix: bytes) -> None:
        super().__init__()
        self._source = source
        self._prefix = prefix
        self.consumed = len(prefix)

    def readable(self) -> bool:
        return True

    def read_chunk(self, size: int) -> bytes:
        prefix = b""
        if self._prefix:
            prefix, self._prefix = self._prefix[:size], self._prefix[size:]
            size -= len(prefix)
            if not size:
                return prefix
        data = self._source.read(size)
        if data is None:  # a non-blocking stream with nothing available; treat as empty read
            return prefix
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("the upload stream must be opened in binary mode")
        self.consumed += len(data)
        return prefix + data if prefix else bytes(data)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.read_chunk(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _GzipSource(io.RawIOBase):
    """Raw stream of the decompressed bytes of a (possibly multi-member) gzip file.

    Decompression is bounded by the caller's buffer (`max_length`), so a bomb never materialises
    more than one buffer in memory; the totals are checked against the limits on every read.
    """

    def __init__(self, compressed: _CountingSource, limits: IngestLimits) -> None:
        super().__init__()
        self._compressed = compressed
        self._limits = limits
        self._decompressor: zlib._Decompress | None = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._finished = False
        self.decompressed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        wanted = len(buffer)
        produced = 0
        view = memoryview(buffer)
        while produced < wanted and not self._finished:
            chunk = self._decompress_some(wanted - produced)
            if chunk:
                view[produced : produced + len(chunk)] = chunk
                produced += len(chunk)
        if produced:
            self._check_limits()
        return produced

    def _decompress_some(self, max_length: int) -> bytes:
        if self._decompressor is None:
            self._start_next_member()
            if self._finished:
                return b""
        if not self._pending:
            self._pending = self._compressed.read_chunk(READ_CHUNK_BYTES)
            if not self._pending:
                raise UploadRefused(
                    "the gzip file is truncated: it ends before the end of its compressed data "
                    f"(after {self.decompressed:,} decompressed bytes); upload the complete file"
                )
        decompressor = self._decompressor
        assert decompressor is not None
        try:
            out = decompressor.decompress(self._pending, max_length)
        except zlib.error as error:
            raise UploadRefused(
                f"the gzip data is corrupt near compressed byte {self._compressed.consumed:,} ({error}); "
                "upload the file again or upload it uncompressed"
            ) from None
        if decompressor.eof:
            self._pending = decompressor.unused_data
            self._decompressor = None
        else:
            self._pending = decompressor.unconsumed_tail
        self.decompressed += len(out)
        return out

    def _start_next_member(self) -> None:
        """After one gzip member: start the next member, or finish (tolerating zero padding)."""
        while True:
            # Some tools pad gzip output with zero bytes; they carry no data.
            self._pending = self._pending.lstrip(b"\x00")
            if len(self._pending) >= 2:
                break
            more = self._compressed.read_chunk(READ_CHUNK_BYTES)
            if not more:
                if self._pending:
                    break
                self._finished = True
                return
            self._pending += more
        if self._pending[:2] != GZIP_MAGIC:
            raise UploadRefused(
                "the gzip file has unexpected data after the end of its compressed stream; upload the original .gz file"
            )
        self._decompressor = zlib.decompressobj(wbits=31)

    def _check_limits(self) -> None:
        limits = self._limits
        if self.decompressed > limits.max_decompressed_bytes:
            raise UploadRefused(
                f"the gzip file decompresses to more than {limits.max_decompressed_bytes:,} bytes, "
                "the limit for one upload; split it into smaller files"
            )
        if self.decompressed >= limits.ratio_check_after_bytes:
            # Compressed bytes actually inflated so far: read minus what still waits in `_pending`.
            compressed = max(self._compressed.consumed - len(self._pending), 1)
            if self.decompressed / compressed > limits.max_compression_ratio:
                raise UploadRefused(
                    f"the gzip file expands more than {limits.max_compression_ratio:g} times "
                    f"({self.decompressed:,} bytes from {compressed:,} compressed bytes), which looks "
                    "like a decompression bomb; upload the data uncompressed or in smaller files"
                )


class UploadReader:
    """A buffered, line-readable view of an upload, gunzipped when it starts with the gzip magic.

    `bytes_read` is the number of bytes consumed from the caller's stream (compressed bytes for gzip),
    read-ahead included, for progress reporting against the upload's size.
    """

    def __init__(self, stream: BinaryIO, limits: IngestLimits) -> None:
        prefix = b""
        while len(prefix) < 2:
            more = stream.read(2 - len(prefix))
            if not more:
                break
            if not isinstance(more, (bytes, bytearray)):
                raise TypeError("the upload stream must be opened in binary mode")
            prefix += more
        self._source = _CountingSource(stream, bytes(prefix))
        self.compressed = prefix == GZIP_MAGIC
        raw: io.RawIOBase = _GzipSource(self._source, limits) if self.compressed else self._source
        self.buffer = io.BufferedReader(raw, buffer_size=READ_CHUNK_BYTES)

    @property
    def bytes_read(self) -> int:
        return self._source.consumed
