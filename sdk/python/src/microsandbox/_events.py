"""What streaming answers carry, and the readers that turn their bytes into it.

The readers are I/O-free: they are fed the response body chunk by chunk (chunks split
anywhere, even inside a line or a UTF-8 character) and hand back whole items, so the sync
and the async clients share them.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, List, Optional, TypeVar, Union

from ._errors import ProtocolError, error_for

T = TypeVar("T")


@dataclass(frozen=True)
class Started:
    """The command is running in the guest as process ``pid``."""

    pid: int


@dataclass(frozen=True)
class Stdout:
    """Output the command wrote to its stdout (text; never a split UTF-8 character)."""

    data: str


@dataclass(frozen=True)
class Stderr:
    """Output the command wrote to its stderr."""

    data: str


@dataclass(frozen=True)
class Exit:
    """The command ended; always the last event of a stream. ``spawn_error`` says why it
    could not be started, when it could not."""

    exit_code: int
    success: bool
    spawn_error: Optional[str] = None


ExecEvent = Union[Started, Stdout, Stderr, Exit]


class NdjsonDecoder:
    """Splits a byte stream into JSON values, one per line (blank lines skipped)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> List[Any]:
        """The values of the lines that ``chunk`` completes."""
        self._buffer += chunk
        *lines, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        return [_parse_line(line) for line in lines if line.strip()]

    def finish(self) -> List[Any]:
        """The value of a last line that had no newline, once the stream has ended."""
        line, self._buffer = bytes(self._buffer), bytearray()
        return [_parse_line(line)] if line.strip() else []


def _parse_line(line: Union[bytes, bytearray]) -> Any:
    try:
        return json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"not a JSON line: {line[:200]!r}", "protocol") from e


def _raise_if_error(value: Any) -> Dict[str, Any]:
    """``value`` as an object, or the exception its error line stands for."""
    if not isinstance(value, dict):
        raise ProtocolError(f"expected a JSON object, got {value!r:.200}", "protocol")
    if value.get("type") == "error":
        raise error_for(str(value.get("kind", "internal")), str(value.get("message", "")))
    if isinstance(value.get("error"), dict):
        error = value["error"]
        raise error_for(str(error.get("kind", "internal")), str(error.get("message", "")))
    return value


def parse_exec_event(value: Any) -> Optional[ExecEvent]:
    """The event of one ``exec/stream`` line; ``None`` for types this SDK does not know.

    An ``error`` line raises the exception of its kind (``ExecTimeoutError`` …).
    """
    event = _raise_if_error(value)
    kind = event.get("type")
    try:
        if kind == "started":
            return Started(pid=int(event["pid"]))
        if kind == "stdout":
            return Stdout(data=str(event["data"]))
        if kind == "stderr":
            return Stderr(data=str(event["data"]))
        if kind == "exit":
            spawn_error = event.get("spawn_error")
            return Exit(
                int(event["exit_code"]), bool(event["success"]), None if spawn_error is None else str(spawn_error)
            )
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"malformed {kind} event: {event!r:.200}", "protocol") from e
    return None


class ChunkReader(Generic[T]):
    """Turns body chunks into items; ``done`` once the last item was seen."""

    done = False

    def feed(self, chunk: bytes) -> List[T]:
        """The items ``chunk`` completes."""
        raise NotImplementedError

    def finish(self) -> List[T]:
        """The items left when the body ended before ``done``; raises if it ended too soon."""
        raise NotImplementedError


class BytesReader(ChunkReader[bytes]):
    """Hands on the body's chunks as they are."""

    def feed(self, chunk: bytes) -> List[bytes]:
        return [chunk] if chunk else []

    def finish(self) -> List[bytes]:
        return []


class TextReader(ChunkReader[str]):
    """Decodes UTF-8 text as it comes (a character split across chunks is kept whole;
    invalid bytes are replaced)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, chunk: bytes) -> List[str]:
        text = self._decoder.decode(chunk)
        return [text] if text else []

    def finish(self) -> List[str]:
        text = self._decoder.decode(b"", final=True)
        return [text] if text else []


class ExecEventReader(ChunkReader[ExecEvent]):
    """Reads the NDJSON of ``exec/stream`` into events, up to and including ``Exit``."""

    def __init__(self) -> None:
        self._decoder = NdjsonDecoder()

    def feed(self, chunk: bytes) -> List[ExecEvent]:
        return self._events(self._decoder.feed(chunk))

    def finish(self) -> List[ExecEvent]:
        events = self._events(self._decoder.finish())
        if not self.done:
            raise ProtocolError("the stream ended before the command's exit", "protocol")
        return events

    def _events(self, values: List[Any]) -> List[ExecEvent]:
        events: List[ExecEvent] = []
        for value in values:
            if self.done:
                break
            event = parse_exec_event(value)
            if event is not None:
                events.append(event)
                self.done = isinstance(event, Exit)
        return events


class PullReader:
    """Reads the NDJSON of ``images/pull``: progress objects (``resolving``, ``resolved``,
    ``layer_started``, ``layer_progress``, ``layer_done``), then ``done`` with the image or
    ``error``."""

    def __init__(self, on_progress: Optional[Callable[[Dict[str, Any]], None]]) -> None:
        self._decoder = NdjsonDecoder()
        self._on_progress = on_progress
        self._image: Optional[Dict[str, Any]] = None

    def feed(self, chunk: bytes) -> None:
        """Reads ``chunk``, reporting the progress lines it completes."""
        self._take(self._decoder.feed(chunk))

    def finish(self) -> Dict[str, Any]:
        """The pulled image's record, once the body has ended."""
        self._take(self._decoder.finish())
        if self._image is None:
            raise ProtocolError("the pull ended without its image", "protocol")
        return self._image

    def _take(self, values: List[Any]) -> None:
        for value in values:
            line = _raise_if_error(value)
            if line.get("type") == "done":
                image = line.get("image")
                if not isinstance(image, dict):
                    raise ProtocolError(f"a pull's done without an image: {line!r:.200}", "protocol")
                self._image = image
            elif self._on_progress is not None:
                self._on_progress(line)
