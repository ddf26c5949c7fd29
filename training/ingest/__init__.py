"""Streaming ingest of uploaded examples: parse, validate, deduplicate, split. Free of Django."""

from training.ingest.dedup import assign_split, content_hash, normalise
from training.ingest.formats import FileFormat, RecordStream, detect_format, iter_records
from training.ingest.pipeline import IngestCounter, IngestSummary, ingest_stream
from training.ingest.records import IngestLimits, RawRecord, RowError, UploadRefused, ValidRow
from training.ingest.validation import TaskRules, validate_record

__all__ = [
    "FileFormat",
    "IngestCounter",
    "IngestLimits",
    "IngestSummary",
    "RawRecord",
    "RecordStream",
    "RowError",
    "TaskRules",
    "UploadRefused",
    "ValidRow",
    "assign_split",
    "content_hash",
    "detect_format",
    "ingest_stream",
    "iter_records",
    "normalise",
    "validate_record",
]
