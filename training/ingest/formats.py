"""Streaming readers for uploaded example files: JSON Lines and CSV, plain or gzipped.

`iter_records` turns an upload into a stream of `RawRecord` (one example, any accepted shape
normalised to input/output text) and `RowError` (a rejected row: line, field, reason). It holds one
line (one CSV record) at a time. Problems with the whole file raise `UploadRefused`.

Accepted JSON Lines shapes, recognised per row:
- ``{"input": ..., "output": ...}`` and ``{"prompt": ..., "completion": ...}``;
- OpenAI chat ``{"messages": [...]}``: the last message must be the assistant's answer (the output);
  the messages before it are the input: the content alone when it is a single user message, else
  one ``role: content`` line per message;
- logged pairs ``{"request": {"messages"|"prompt"|"input", "system"?, "model"?},
  "response": {"choices": [{"message": {"content"}}|{"text"}]|"content": [...], "usage"?, "model"?,
  "created"?}}``.
Optional per row: ``usage`` ({prompt_tokens, completion_tokens} or {input_tokens, output_tokens}),
``model``, ``timestamp`` (ISO 8601, naive means UTC, or unix seconds) and ``metadata`` (an object).
An output (or input) given as a JSON object or array is kept as compact JSON text.
"""

from __future__ import annotations

import csv
import os
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal

import orjson

from training.ingest.records import IngestLimits, RawRecord, RowError, UploadRefused, excerpt
from training.ingest.streams import GZIP_MAGIC, UploadReader

FileFormat = Literal["jsonl", "csv", "auto"]
BOM = b"\xef\xbb\xbf"
# Fields a column mapping may name, mapped to the column (CSV) or key (JSONL) that holds them.
MAPPABLE_FIELDS = ("input", "output", "timestamp", "model", "input_tokens", "output_tokens")
# Token counts and model names end up in integer and varchar columns; reject what cannot be stored.
MAX_TOKEN_COUNT = 2**31 - 1
# Example.model is a varchar(100). The limit is checked here, while reading, so that the row is rejected where
# the pipeline counts rejections (a check after the pipeline left its early-stop bookkeeping without the error).
MAX_MODEL_CHARS = 100
# Unix seconds up to 2100-01-01; a larger number is almost always milliseconds.
MAX_UNIX_SECONDS = 4_102_444_800
_JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".jsonlines", ".json")
_SNIFF_BYTES = 64 * 1024
_CSV_FIELD_LIMIT = csv.field_size_limit()

_loads = orjson.loads
_dumps = orjson.dumps
_JSONDecodeError = orjson.JSONDecodeError


def detect_format(first_bytes: bytes, filename: str | None = None) -> Literal["jsonl", "csv"]:
    """Return "jsonl" or "csv" from the file name's extension, else from the first bytes' content."""
    name = (filename or "").lower()
    if name.endswith(".gz"):
        name = name[:-3]
    extension = os.path.splitext(name)[1]
    if extension in _JSONL_EXTENSIONS:
        return "jsonl"
    if extension == ".csv":
        return "csv"
    data = first_bytes
    if data[:2] == GZIP_MAGIC:
        try:
            data = zlib.decompressobj(wbits=31).decompress(data, _SNIFF_BYTES)
        except zlib.error:
            data = b""
    data = data.removeprefix(BOM).lstrip()
    if not data or data[:1] in (b"{", b"["):
        return "jsonl"
    return "csv"


def iter_records(
    stream: BinaryIO,
    *,
    file_format: FileFormat = "auto",
    column_mapping: dict[str, str] | None = None,
    limits: IngestLimits | None = None,
    start_line: int = 1,
    filename: str | None = None,
) -> RecordStream:
    """Return an iterator of RawRecord | RowError over `stream`, skipping records before `start_line`.

    Raises UploadRefused (possibly while iterating) for a gzip bomb, corrupt gzip or a column
    mapping that does not fit the CSV header. The returned object also exposes `last_line` (the
    last physical line consumed) and `bytes_read` (bytes consumed from `stream`).
    """
    return RecordStream(
        stream,
        file_format=file_format,
        column_mapping=column_mapping,
        limits=limits or IngestLimits(),
        start_line=start_line,
        filename=filename,
    )


class RecordStream(Iterator["RawRecord | RowError"]):
    """Iterator over the records of one upload, with its reading position for checkpoints."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        file_format: FileFormat,
        column_mapping: dict[str, str] | None,
        limits: IngestLimits,
        start_line: int,
        filename: str | None,
    ) -> None:
        if file_format not in ("jsonl", "csv", "auto"):
            raise ValueError(f"file_format must be 'jsonl', 'csv' or 'auto', got {file_format!r}")
        if start_line < 1:
            raise ValueError(f"start_line is 1-based, got {start_line}")
        self._upload = UploadReader(stream, limits)
        self._limits = limits
        self._start_line = start_line
        self.last_line = 0
        if file_format == "auto":
            file_format = detect_format(self._upload.buffer.peek(_SNIFF_BYTES)[:_SNIFF_BYTES], filename)
        self.file_format: Literal["jsonl", "csv"] = file_format
        if column_mapping is not None:
            unknown = sorted(set(column_mapping) - set(MAPPABLE_FIELDS))
            if unknown:
                raise UploadRefused(
                    f"the column mapping has unknown fields {_quoted(unknown)}; "
                    f"the fields you can map are {_quoted(MAPPABLE_FIELDS)}"
                )
            column_mapping = {key: value for key, value in column_mapping.items() if value}
            for required in ("input", "output"):
                if required not in column_mapping:
                    raise UploadRefused(f"the column mapping must name the column that holds the {required}")
        self._mapping = column_mapping
        self._mapped_keys = frozenset(column_mapping.values()) if column_mapping is not None else frozenset()
        if self.file_format == "jsonl":
            self._records = self._iter_jsonl()
        else:
            self._records = self._iter_csv()

    @property
    def bytes_read(self) -> int:
        """Bytes consumed from the caller's stream (compressed bytes for gzip), read-ahead included."""
        return self._upload.bytes_read

    def __iter__(self) -> Iterator[RawRecord | RowError]:
        # The generator itself, so that a for loop does not pay a Python-level __next__ per row.
        return self._records

    def __next__(self) -> RawRecord | RowError:
        return next(self._records)

    # ---------------------------------------------------------------- lines

    def _skip_rest_of_line(self) -> None:
        """Consume the rest of an over-long line in bounded pieces, up to and including its newline."""
        readline = self._upload.buffer.readline
        while True:
            piece = readline(64 * 1024)
            if not piece or piece[-1:] == b"\n":
                return

    def _too_long(self, raw: bytes, line: int) -> RowError:
        return RowError(
            line,
            None,
            f"the line is longer than {self._limits.max_line_bytes:,} bytes, the limit per row; skipped",
            excerpt(raw),
            "line_too_long",
        )

    # ---------------------------------------------------------------- JSON Lines

    def _iter_jsonl(self) -> Iterator[RawRecord | RowError]:
        readline = self._upload.buffer.readline
        max_bytes = self._limits.max_line_bytes
        # +2 so that a line of exactly max_bytes plus CRLF is read whole; longer means over-long.
        read_limit = max_bytes + 2
        start_line = self._start_line
        from_object = self._mapped_record if self._mapping is not None else self._record_from_object
        loads = _loads
        line = 0
        while True:
            raw = readline(read_limit)
            if not raw:
                return
            line += 1
            if line == 1 and raw.startswith(BOM):
                raw = raw[3:] or b"\n"  # a file holding only a BOM is empty, not a broken row
            if len(raw) > max_bytes and _content_length(raw) > max_bytes:
                if raw[-1:] != b"\n":
                    self._skip_rest_of_line()
                self.last_line = line
                if line >= start_line:
                    yield self._too_long(raw, line)
                continue
            self.last_line = line
            if line < start_line or raw.isspace():
                continue
            if b"\xef" in raw and BOM in raw:
                yield _bom_error(raw, line)
                continue
            try:
                value = loads(raw)
            except _JSONDecodeError as error:
                yield _json_error(raw, line, error)
                continue
            if type(value) is dict:
                yield from_object(value, line)
            else:
                yield _not_an_object(raw, line, value)

    def _record_from_object(self, obj: dict[str, Any], line: int) -> RawRecord | RowError:
        get = obj.get
        if "input" in obj or "output" in obj:
            input_value, output_value, input_field, output_field = get("input"), get("output"), "input", "output"
        elif "prompt" in obj or "completion" in obj:
            input_value, output_value = get("prompt"), get("completion")
            input_field, output_field = "prompt", "completion"
        elif "messages" in obj:
            return self._chat_record(obj, line)
        elif "request" in obj or "response" in obj:
            return self._pair_record(obj, line)
        else:
            return RowError(
                line,
                None,
                "the row has none of the accepted shapes {input, output}, {prompt, completion}, "
                f"{{messages: [...]}} or {{request, response}}; its keys are {_quoted(list(obj)[:10])}",
                _object_excerpt(obj),
                "unknown_shape",
            )
        input_text = input_value if type(input_value) is str else _as_text(input_value, input_field, line, obj)
        if type(input_text) is RowError:
            return input_text
        output_text = output_value if type(output_value) is str else _as_text(output_value, output_field, line, obj)
        if type(output_text) is RowError:
            return output_text
        usage, model, timestamp = get("usage"), get("model"), get("timestamp")
        if model is None and timestamp is None and "metadata" not in obj and type(usage) is dict:
            # Fast path for the common logged row: usage only. Anything unusual takes the full path.
            input_tokens = usage.get("prompt_tokens")
            if input_tokens is None:
                input_tokens = usage.get("input_tokens")
            output_tokens = usage.get("completion_tokens")
            if output_tokens is None:
                output_tokens = usage.get("output_tokens")
            if (type(input_tokens) is int and 0 <= input_tokens <= MAX_TOKEN_COUNT) and (
                type(output_tokens) is int and 0 <= output_tokens <= MAX_TOKEN_COUNT
            ):
                return RawRecord(line, input_text, output_text, input_tokens, output_tokens)
        return _with_optional_fields(RawRecord(line, input_text, output_text), obj, usage, model, timestamp)

    def _chat_record(self, obj: dict[str, Any], line: int) -> RawRecord | RowError:
        messages = obj["messages"]
        if type(messages) is not list or not messages:
            return _field_error(line, "messages", "'messages' must be a non-empty list of messages", obj)
        last = messages[-1]
        if type(last) is not dict or last.get("role") != "assistant":
            role = last.get("role") if type(last) is dict else None
            return RowError(
                line,
                "output",
                f"missing field 'output': the last message is from {role!r}, not the assistant's answer",
                _object_excerpt(obj),
                "missing_field",
            )
        output_text = _message_content(last, len(messages), line, obj, output=True)
        if type(output_text) is RowError:
            return output_text
        if len(messages) == 1:
            return RowError(
                line,
                "input",
                "missing field 'input': 'messages' holds only the assistant's answer",
                _object_excerpt(obj),
                "missing_field",
            )
        input_text = _render_messages(messages[:-1], line, obj)
        if type(input_text) is RowError:
            return input_text
        return _with_optional_fields(
            RawRecord(line, input_text, output_text), obj, obj.get("usage"), obj.get("model"), obj.get("timestamp")
        )

    def _pair_record(self, obj: dict[str, Any], line: int) -> RawRecord | RowError:
        request, response = obj.get("request"), obj.get("response")
        if type(request) is not dict:
            return _missing_or_wrong(line, "request", request, "an object", obj)
        if type(response) is not dict:
            return _missing_or_wrong(line, "response", response, "an object", obj)
        input_text = _request_text(request, line, obj)
        if type(input_text) is RowError:
            return input_text
        output_text = _response_text(response, line, obj)
        if type(output_text) is RowError:
            return output_text
        usage = obj.get("usage", response.get("usage"))
        model = obj.get("model") or response.get("model") or request.get("model")
        timestamp = obj.get("timestamp", response.get("created"))
        return _with_optional_fields(RawRecord(line, input_text, output_text), obj, usage, model, timestamp)

    def _mapped_record(self, obj: dict[str, Any], line: int) -> RawRecord | RowError:
        """A JSON Lines row read through an explicit mapping of field -> key."""
        mapping = self._mapping
        assert mapping is not None
        values: dict[str, Any] = {}
        for field, key in mapping.items():
            values[field] = obj.get(key)
        texts = []
        for field in ("input", "output"):
            value = values[field]
            if value is None:
                return RowError(
                    line,
                    field,
                    f"missing field '{mapping[field]}' (mapped to {field}); the row's keys are "
                    f"{_quoted(list(obj)[:10])}",
                    _object_excerpt(obj),
                    "missing_field",
                )
            text = value if type(value) is str else _as_text(value, mapping[field], line, obj)
            if type(text) is RowError:
                return text
            texts.append(text)
        record = RawRecord(line, texts[0], texts[1])
        usage = None
        if "input_tokens" in values or "output_tokens" in values:
            usage = {"input_tokens": values.get("input_tokens"), "output_tokens": values.get("output_tokens")}
        metadata = obj.get("metadata")
        if metadata is None:
            mapped_keys = self._mapped_keys
            extra = {key: value for key, value in obj.items() if key not in mapped_keys}
            metadata = extra or None
        return _with_optional_fields(
            record, {"metadata": metadata}, usage, values.get("model"), values.get("timestamp")
        )

    # ---------------------------------------------------------------- CSV

    def _csv_lines(self, problems: dict[int, RowError]) -> Iterator[str]:
        """Yield decoded physical lines for csv.reader, noting per-line problems in `problems`."""
        readline = self._upload.buffer.readline
        max_bytes = self._limits.max_line_bytes
        read_limit = max_bytes + 2
        line = 0
        while True:
            raw = readline(read_limit)
            if not raw:
                return
            line += 1
            if line == 1 and raw.startswith(BOM):
                raw = raw[3:]
            if len(raw) > max_bytes and _content_length(raw) > max_bytes:
                if raw[-1:] != b"\n":
                    self._skip_rest_of_line()
                problems.setdefault(line, self._too_long(raw, line))
                self.last_line = line
                yield "\n"
                continue
            if b"\xef" in raw and BOM in raw:
                problems.setdefault(line, _bom_error(raw, line))
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                problems.setdefault(line, _utf8_error(raw, line, error))
                text = raw.decode("utf-8", "replace")
            self.last_line = line
            yield text

    def _iter_csv(self) -> Iterator[RawRecord | RowError]:
        problems: dict[int, RowError] = {}
        reader = csv.reader(self._csv_lines(problems))
        header: list[str] | None = None
        while header is None:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise UploadRefused(f"the CSV header (line {self.last_line}) cannot be read: {error}") from None
            if problems:
                first = problems[min(problems)]
                raise UploadRefused(f"the CSV header cannot be read: line {first.line}: {first.message}")
            if any(field.strip() for field in fields):
                header = fields
        columns = _resolve_columns(header, self._mapping)
        input_index, output_index = columns["input"], columns["output"]
        optional = [(field, columns[field]) for field in MAPPABLE_FIELDS[2:] if field in columns]
        mapped = set(columns.values())
        extra_columns = [(index, name.strip()) for index, name in enumerate(header) if index not in mapped]
        width = len(header)
        start_line = self._start_line
        record_start = self.last_line + 1
        while True:
            try:
                fields = next(reader)
                failure = None
            except StopIteration:
                return
            except csv.Error as error:
                fields, failure = [], str(error)
            line, record_start = record_start, self.last_line + 1
            if problems:
                found = [problems.pop(number) for number in sorted(problems) if number < record_start]
                if found and line >= start_line:
                    first = found[0]
                    yield RowError(
                        line, first.field, _where(first, line) + first.message, first.raw_excerpt, first.code
                    )
                    continue
                if found:
                    continue
            if line < start_line:
                continue
            if failure is not None:
                yield RowError(line, None, _csv_failure_message(failure), "", "invalid_csv")
                continue
            if not any(field.strip() for field in fields):
                continue  # blank line (or only empty cells): not a row
            if len(fields) != width:
                yield RowError(
                    line,
                    None,
                    f"the row has {len(fields)} columns but the header has {width} "
                    "(an unquoted comma or quote inside a value?)",
                    excerpt(",".join(fields)),
                    "column_count",
                )
                continue
            record = RawRecord(line, fields[input_index], fields[output_index])
            usage = None
            model = timestamp = None
            for field, index in optional:
                value = fields[index].strip()
                if not value:
                    continue
                if field == "model":
                    model = value
                elif field == "timestamp":
                    timestamp = value
                else:
                    usage = usage or {}
                    usage[field] = _csv_int(value)
            metadata = {name: fields[index] for index, name in extra_columns} or None
            yield _with_optional_fields(record, {"metadata": metadata}, usage, model, timestamp, csv_row=fields)


# -------------------------------------------------------------------- helpers


def _content_length(raw: bytes) -> int:
    if raw.endswith(b"\r\n"):
        return len(raw) - 2
    if raw.endswith(b"\n"):
        return len(raw) - 1
    return len(raw)


def _quoted(names: Any) -> str:
    return ", ".join(repr(str(name)) for name in names) or "(none)"


def _where(error: RowError, record_line: int) -> str:
    return "" if error.line == record_line else f"(in line {error.line}) "


def _csv_failure_message(failure: str) -> str:
    if "field larger than field limit" in failure:
        return f"a value is longer than {_CSV_FIELD_LIMIT:,} characters, the CSV limit per value"
    return f"the row is not valid CSV: {failure}"


def _csv_int(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        return value  # reported by _usage_counts with the field name


def _bom_error(raw: bytes, line: int) -> RowError:
    position = raw.find(BOM) + 1
    return RowError(
        line,
        None,
        f"a byte order mark (U+FEFF) at byte {position}, in the middle of the file; files joined "
        "together often carry one: save the file as UTF-8 without BOM",
        excerpt(raw),
        "byte_order_mark",
    )


def _utf8_error(raw: bytes, line: int, error: UnicodeDecodeError) -> RowError:
    return RowError(
        line,
        None,
        f"not valid UTF-8 at byte {error.start + 1}; save the file as UTF-8",
        excerpt(raw),
        "invalid_utf8",
    )


def _json_error(raw: bytes, line: int, error: orjson.JSONDecodeError) -> RowError:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as decode_error:
        return _utf8_error(raw, line, decode_error)
    if raw[-1:] != b"\n":
        return RowError(
            line,
            None,
            "the last line is incomplete: it has no line end and is not valid JSON "
            f"({error.msg}); the file may be truncated",
            excerpt(raw),
            "truncated_line",
        )
    return RowError(
        line,
        None,
        f"not valid JSON: {error.msg} at character {error.pos + 1}; each line must be one JSON object",
        excerpt(raw),
        "invalid_json",
    )


def _not_an_object(raw: bytes, line: int, value: Any) -> RowError:
    kind = _json_kind(value)
    hint = " (a JSON array file is not JSON Lines: put one object per line)" if kind == "an array" else ""
    return RowError(line, None, f"expected a JSON object on each line, got {kind}{hint}", excerpt(raw), "not_an_object")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _object_excerpt(obj: Any) -> str:
    try:
        return excerpt(_dumps(obj))
    except TypeError:
        return ""


def _field_error(line: int, field: str, message: str, obj: Any, code: str = "invalid_field") -> RowError:
    return RowError(line, field, message, _object_excerpt(obj), code)


def _missing_or_wrong(line: int, field: str, value: Any, expected: str, obj: Any) -> RowError:
    if value is None:
        return _field_error(line, field, f"missing field '{field}'", obj, "missing_field")
    return _field_error(line, field, f"'{field}' must be {expected}, got {_json_kind(value)}", obj)


def _as_text(value: Any, field: str, line: int, obj: Any) -> str | RowError:
    """A non-string value of an input/output field as text: objects and arrays as compact JSON."""
    if value is None:
        return _field_error(line, field, f"missing field '{field}'", obj, "missing_field")
    if type(value) is list and value and all(type(item) is dict and "role" in item for item in value):
        return _render_messages(value, line, obj)  # e.g. a Responses-API style input list
    text = compact_json(value)
    if text is None:
        return _field_error(line, field, f"'{field}' is nested too deeply to store", obj)
    return text


def compact_json(value: Any) -> str | None:
    """Return `value` as compact JSON text, or None when it cannot be serialised (nested too deeply)."""
    try:
        return _dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: recursion limit (254 levels)
        return None


def _message_content(message: Any, number: int, line: int, obj: Any, *, output: bool = False) -> str | RowError:
    content = message.get("content")
    if type(content) is str:
        return content
    if type(content) is list:
        texts = []
        for part in content:
            if type(part) is str:
                texts.append(part)
            elif type(part) is dict and type(part.get("text")) is str:
                texts.append(part["text"])
            else:
                kind = part.get("type") if type(part) is dict else _json_kind(part)
                return _field_error(
                    line,
                    "messages",
                    f"message {number} has non-text content ({kind!s}); only text examples are accepted",
                    obj,
                )
        return "\n".join(texts)
    if content is None and not output:
        tool_calls = message.get("tool_calls")
        return (compact_json(tool_calls) or "") if tool_calls is not None else ""
    if content is None:
        return RowError(
            line,
            "output",
            "missing field 'output': the assistant's answer has no text content",
            _object_excerpt(obj),
            "missing_field",
        )
    return _field_error(line, "messages", f"message {number} has content of type {_json_kind(content)}", obj)


def _render_messages(messages: list[Any], line: int, obj: Any) -> str | RowError:
    """Messages as input text: a lone user message is its content; otherwise `role: content` lines."""
    rendered = []
    for number, message in enumerate(messages, start=1):
        if type(message) is not dict or type(message.get("role")) is not str:
            return _field_error(line, "messages", f"message {number} must be an object with a 'role'", obj)
        content = _message_content(message, number, line, obj)
        if type(content) is RowError:
            return content
        rendered.append((message["role"], content))
    if len(rendered) == 1 and rendered[0][0] == "user":
        return rendered[0][1]
    return "\n".join(f"{role}: {content}" for role, content in rendered)


def _request_text(request: dict[str, Any], line: int, obj: Any) -> str | RowError:
    messages = request.get("messages")
    if messages is not None:
        if type(messages) is not list or not messages:
            return _field_error(line, "request.messages", "'request.messages' must be a non-empty list", obj)
        system = request.get("system")  # Anthropic-style requests keep the system prompt apart
        if (type(system) is str and system) or type(system) is list:
            messages = [{"role": "system", "content": system}, *messages]
        return _render_messages(messages, line, obj)
    for key in ("prompt", "input"):
        value = request.get(key)
        if value is not None:
            return value if type(value) is str else _as_text(value, f"request.{key}", line, obj)
    return RowError(
        line,
        "input",
        "missing field 'input': 'request' has no 'messages', 'prompt' or 'input'",
        _object_excerpt(obj),
        "missing_field",
    )


def _response_text(response: dict[str, Any], line: int, obj: Any) -> str | RowError:
    choices = response.get("choices")
    if type(choices) is list and choices and type(choices[0]) is dict:
        choice = choices[0]
        message = choice.get("message")
        if type(message) is dict:
            return _message_content(message, 1, line, obj, output=True)
        if type(choice.get("text")) is str:
            return choice["text"]
    content = response.get("content")
    if type(content) is list:  # Anthropic messages API
        return _message_content(response, 1, line, obj, output=True)
    if type(response.get("output_text")) is str:
        return response["output_text"]
    return RowError(
        line,
        "output",
        "missing field 'output': 'response' has no choices[0].message.content",
        _object_excerpt(obj),
        "missing_field",
    )


def _with_optional_fields(
    record: RawRecord,
    obj: dict[str, Any],
    usage: Any,
    model: Any,
    timestamp: Any,
    *,
    csv_row: list[str] | None = None,
) -> RawRecord | RowError:
    """Fill usage, model, timestamp and metadata into `record`, or return the first field's error."""
    line = record.line
    source = csv_row if csv_row is not None else obj
    if usage is not None:
        counts = _usage_counts(usage)
        if type(counts) is str:
            return _field_error(line, "usage", counts, source)
        record.usage_input_tokens, record.usage_output_tokens = counts
    if model is not None:
        if type(model) is not str:
            return _field_error(line, "model", f"'model' must be a string, got {_json_kind(model)}", source)
        if len(model) > MAX_MODEL_CHARS or "\x00" in model:
            return _field_error(
                line, "model", f"'model' must be a name of at most {MAX_MODEL_CHARS} characters", source
            )
        record.model = model
    if timestamp is not None:
        parsed = parse_timestamp(timestamp)
        if type(parsed) is str:
            return _field_error(line, "timestamp", parsed, source)
        record.timestamp = parsed
    metadata = obj.get("metadata")
    if metadata is not None:
        if type(metadata) is not dict:
            return _field_error(line, "metadata", f"'metadata' must be an object, got {_json_kind(metadata)}", source)
        serialised = compact_json(metadata)
        if serialised is None:
            return _field_error(line, "metadata", "'metadata' is nested too deeply to store", source)
        if "\\u0000" in serialised:  # PostgreSQL jsonb cannot store NUL
            return _field_error(line, "metadata", "'metadata' contains a NUL character (\\u0000)", source)
        record.metadata = metadata
    return record


def _usage_counts(usage: Any) -> tuple[int | None, int | None] | str:
    if type(usage) is not dict:
        return f"'usage' must be an object with token counts, got {_json_kind(usage)}"
    input_tokens = usage.get("prompt_tokens")
    if input_tokens is None:
        input_tokens = usage.get("input_tokens")
    output_tokens = usage.get("completion_tokens")
    if output_tokens is None:
        output_tokens = usage.get("output_tokens")
    for name, value in (("input tokens", input_tokens), ("output tokens", output_tokens)):
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_TOKEN_COUNT):
            return f"'usage' {name} must be a whole number from 0 to {MAX_TOKEN_COUNT:,}, got {value!r:.40}"
    return input_tokens, output_tokens


def parse_timestamp(value: Any) -> datetime | str:
    """Return an aware UTC datetime from ISO 8601 text (naive = UTC) or unix seconds, else an error text."""
    if type(value) is str:
        text = value.strip()
        try:
            number: Any = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return f"'timestamp' {value!r:.40} is neither ISO 8601 nor unix seconds"
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            try:
                return parsed.astimezone(UTC)
            except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past the last representable instant
                return f"'timestamp' {value!r:.40} is out of range: in UTC it falls outside the years 1 to 9999"
        value = number
    if type(value) in (int, float):
        if not 0 <= value < MAX_UNIX_SECONDS:
            return f"'timestamp' {value!r:.40} is out of range: give unix seconds (not milliseconds) or ISO 8601"
        return datetime.fromtimestamp(value, tz=UTC)
    return f"'timestamp' must be ISO 8601 text or unix seconds, got {_json_kind(value)}"


def _resolve_columns(header: list[str], mapping: dict[str, str] | None) -> dict[str, int]:
    """Map each field to its column index in `header`, or refuse the upload naming what is there."""
    names = [name.strip() for name in header]
    exact = {}
    folded: dict[str, int] = {}
    for index, name in enumerate(names):
        exact.setdefault(name, index)
        folded.setdefault(name.casefold(), index)

    def find(column: str) -> int | None:
        column = column.strip()
        if column in exact:
            return exact[column]
        return folded.get(column.casefold())

    if mapping is None:
        mapping = {}
        for field, fallback in (("input", "prompt"), ("output", "completion")):
            for candidate in (field, fallback):
                if find(candidate) is not None:
                    mapping[field] = candidate
                    break
        for field in MAPPABLE_FIELDS[2:]:
            if find(field) is not None:
                mapping[field] = field
        if "input" not in mapping or "output" not in mapping:
            raise UploadRefused(
                "the CSV file needs a column mapping: it has no 'input' and 'output' columns; "
                f"the file's columns are {_quoted(names)}"
            )
    columns: dict[str, int] = {}
    missing = []
    for field, column in mapping.items():
        index = find(column)
        if index is None:
            missing.append(column)
        else:
            columns[field] = index
    if missing:
        raise UploadRefused(
            f"the column mapping names columns that are not in the file: {_quoted(missing)}; "
            f"the file's columns are {_quoted(names)}"
        )
    return columns
