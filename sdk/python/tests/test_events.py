"""NDJSON reading: lines and characters split across chunks, event and pull readers."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from fakes import ndjson, split_every

from microsandbox import ExecTimeoutError, Exit, ProtocolError, Started, Stderr, Stdout, UpstreamError
from microsandbox._events import ExecEventReader, NdjsonDecoder, PullReader, TextReader

EVENTS = ndjson(
    {"type": "started", "pid": 7},
    {"type": "stdout", "data": "héllo ✓\n"},
    {"type": "stderr", "data": "oops"},
    {"type": "exit", "exit_code": 3, "success": False},
)
EXPECTED = [Started(7), Stdout("héllo ✓\n"), Stderr("oops"), Exit(3, False)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 64, 10_000])
def test_decoder_joins_lines_and_characters_split_across_chunks(size: int) -> None:
    decoder = NdjsonDecoder()
    values: List[Any] = []
    for chunk in split_every(b'\n{"a": "\xc3\xa9"}\n\n[1, 2]\n3', size):
        values += decoder.feed(chunk)
    assert values == [{"a": "é"}, [1, 2]]
    assert decoder.finish() == [3]
    assert decoder.finish() == []


def test_decoder_refuses_a_line_that_is_not_json() -> None:
    with pytest.raises(ProtocolError):
        NdjsonDecoder().feed(b"nope\n")


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_exec_reader_answers_events_in_order_and_is_done_at_exit(size: int) -> None:
    reader = ExecEventReader()
    events = []
    for chunk in split_every(EVENTS, size):
        events += reader.feed(chunk)
    assert events == EXPECTED
    assert reader.done
    assert reader.finish() == []


def test_exit_says_why_a_command_could_not_start() -> None:
    body = ndjson({"type": "exit", "exit_code": 127, "success": False, "spawn_error": "no such file"})
    assert ExecEventReader().feed(body) == [Exit(127, False, "no such file")]


def test_exec_reader_skips_unknown_types_and_ignores_lines_after_exit() -> None:
    reader = ExecEventReader()
    body = ndjson(
        {"type": "resized"},
        {"type": "exit", "exit_code": 0, "success": True},
        {"type": "stdout", "data": "late"},
    )
    assert reader.feed(body) == [Exit(0, True)]


def test_exec_reader_raises_an_error_line_as_its_kind() -> None:
    reader = ExecEventReader()
    with pytest.raises(ExecTimeoutError) as caught:
        reader.feed(ndjson({"type": "started", "pid": 1}, {"type": "error", "kind": "timeout", "message": "killed"}))
    assert (caught.value.kind, caught.value.status, caught.value.message) == ("timeout", 504, "killed")


def test_exec_reader_refuses_a_stream_cut_before_exit_and_malformed_events() -> None:
    reader = ExecEventReader()
    reader.feed(ndjson({"type": "started", "pid": 1}))
    with pytest.raises(ProtocolError):
        reader.finish()
    with pytest.raises(ProtocolError):
        ExecEventReader().feed(ndjson({"type": "exit"}))
    with pytest.raises(ProtocolError):
        ExecEventReader().feed(ndjson([1]))


def test_text_reader_keeps_characters_split_across_chunks() -> None:
    reader = TextReader()
    text = [t for chunk in split_every("ü✓".encode(), 1) for t in reader.feed(chunk)]
    assert "".join(text) == "ü✓"
    reader.feed(b"\xc3")
    assert reader.finish() == ["\ufffd"]


def test_pull_reader_reports_progress_and_answers_the_image() -> None:
    progress: List[Dict[str, Any]] = []
    reader = PullReader(progress.append)
    image = {"reference": "docker.io/library/python:latest"}
    body = ndjson({"type": "resolving"}, {"type": "layer_progress", "received": 10}, {"type": "done", "image": image})
    for chunk in split_every(body, 4):
        reader.feed(chunk)
    assert reader.finish() == image
    assert progress == [{"type": "resolving"}, {"type": "layer_progress", "received": 10}]


def test_pull_reader_raises_errors_and_refuses_an_answer_without_image() -> None:
    with pytest.raises(UpstreamError):
        PullReader(None).feed(ndjson({"type": "error", "kind": "upstream", "message": "registry down"}))
    for body in (b"", ndjson({"type": "resolving"}), ndjson({"type": "done"})):
        with pytest.raises(ProtocolError):
            reader = PullReader(None)
            reader.feed(body)
            reader.finish()
