"""Plain data types shared by the ingest modules (no Django, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# An excerpt of the offending row is kept with each error so the UI can show it; bounded so that
# a file of huge bad lines cannot blow up the error table.
EXCERPT_CHARS = 200


class UploadRefused(Exception):
    """The whole upload is refused (not one row): gzip bomb, corrupt gzip, unusable column mapping."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Resource limits for one upload; the defaults suit a web upload of up to a few million rows."""

    # A line longer than this is rejected and skipped without being held in memory. 1 MiB holds a
    # long document for extraction; a logged request larger than that is not a training example.
    max_line_bytes: int = 1024 * 1024
    # Gzip bomb guard: cap on the bytes produced by decompression (4 GiB ~ 5 million long rows)...
    max_decompressed_bytes: int = 4 * 1024**3
    # ...and on decompressed/compressed. JSONL logs with a repeated system prompt reach 20-50x;
    # a bomb is ~1000x. Checked only after ratio_check_after_bytes so a tiny file's header does not count.
    max_compression_ratio: float = 200.0
    ratio_check_after_bytes: int = 8 * 1024 * 1024


@dataclass(slots=True)
class RawRecord:
    """One example as read from the file, before task validation. `line` is its 1-based first line."""

    line: int
    input: str
    output: str
    usage_input_tokens: int | None = None
    usage_output_tokens: int | None = None
    model: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class RowError:
    """A rejected row: where (line, field), what was wrong (message) and a bounded excerpt of it.

    `code` is a stable machine-readable kind (``invalid_json``, ``missing_field``, ``unknown_label``...)
    used to group errors; `message` is for people and does not repeat the line number.
    """

    line: int
    field: str | None
    message: str
    raw_excerpt: str = ""
    code: str = "invalid"

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class ValidRow:
    """An accepted example, ready to be written: canonical output, content hash and split assigned."""

    line: int
    input: str
    output: str
    content_hash: str
    split: str
    usage_input_tokens: int | None = None
    usage_output_tokens: int | None = None
    model: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = field(default=None)


def excerpt(text: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """Return at most `limit` characters of `text` (bytes decoded leniently), line end removed."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text[: limit * 4]).decode("utf-8", "replace")
    text = text.rstrip("\r\n")
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text
