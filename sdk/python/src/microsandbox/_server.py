"""Where the server is: ``MSB_SERVER_URL``, else a local ``msb serve`` started on demand.

The local server listens on a free loopback port, is shared by every client of the Python
process, and is terminated when the process exits.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ._errors import ServerStartError

LISTENING_PREFIX = "listening on "
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def msb_home(environ: Mapping[str, str] = os.environ) -> Path:
    """``$MSB_HOME``, default ``~/.microsandbox``."""
    home = environ.get("MSB_HOME")
    return Path(home) if home else Path.home() / ".microsandbox"


def read_token(home: Path) -> Optional[str]:
    """The server's token kept at ``HOME/server/token``, if it is there."""
    try:
        token = (home / "server" / "token").read_text().strip()
    except OSError:
        return None
    return token or None


def find_msb(environ: Mapping[str, str] = os.environ) -> str:
    """The ``msb`` binary: ``$MSB_BIN``, else ``msb`` on ``PATH``, else ``~/.microsandbox/bin/msb``."""
    if environ.get("MSB_BIN"):
        return environ["MSB_BIN"]
    on_path = shutil.which("msb")
    if on_path:
        return on_path
    installed = Path.home() / ".microsandbox" / "bin" / "msb"
    if installed.is_file():
        return str(installed)
    raise ServerStartError(
        "no msb binary: set MSB_SERVER_URL to use a running server, or MSB_BIN, or put msb on PATH",
        "server_start",
    )


def parse_listening_line(line: str) -> str:
    """The URL in ``msb serve``'s line ``listening on http://ADDR`` (its first on stdout)."""
    text = line.strip()
    if not text.startswith(LISTENING_PREFIX):
        raise ServerStartError(f"msb serve did not say where it listens: {text[:200]!r}", "server_start")
    words = text[len(LISTENING_PREFIX) :].split()
    url = words[0] if words else ""
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ServerStartError(f"msb serve said an odd address: {text[:200]!r}", "server_start")
    return url


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (so the local token file may be sent to it)."""
    return (urlsplit(url).hostname or "") in _LOOPBACK_HOSTS


def _terminate(process: "subprocess.Popen[bytes]", owner_pid: int) -> None:
    if os.getpid() != owner_pid or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Tail:
    """Reads a stream to its end in a thread, keeping only its last bytes, so the server
    never blocks on a full pipe and a failed start can say what the server said."""

    def __init__(self, stream: IO[bytes], keep: int = 4000) -> None:
        self._stream = stream
        self._keep = keep
        self._data = b""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        read = getattr(self._stream, "read1", self._stream.read)
        for chunk in iter(lambda: read(65536), b""):
            data = self._data + chunk
            self._data = data[max(0, len(data) - self._keep) :]

    def text(self, wait: float) -> str:
        """What was read, after waiting up to ``wait`` seconds for the stream's end."""
        self._thread.join(wait)
        return self._data.decode("utf-8", "replace").strip()


def _await_listening(lines: "queue.Queue[bytes]", process: "subprocess.Popen[bytes]", deadline: float) -> str:
    """The URL of the first ``listening on`` line (lines before it are skipped)."""
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise ServerStartError("msb serve did not say where it listens in time", "server_start") from None
        if not line:
            raise ServerStartError(f"msb serve exited ({process.wait()}) before listening", "server_start")
        text = line.decode("utf-8", "replace")
        if text.startswith(LISTENING_PREFIX):
            return parse_listening_line(text)


@dataclass
class LocalServer:
    """A ``msb serve`` this process started."""

    url: str
    token: Optional[str]
    process: "subprocess.Popen[bytes]"

    @classmethod
    def start(cls, binary: str, home: Path, startup_timeout: float = 60.0) -> "LocalServer":
        """Runs ``binary serve --listen 127.0.0.1:0`` and waits for its ``listening on`` line."""
        try:
            process = subprocess.Popen(
                [binary, "serve", "--listen", "127.0.0.1:0"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise ServerStartError(f"cannot run {binary}: {e}", "server_start") from e
        assert process.stdout is not None and process.stderr is not None
        stderr = _Tail(process.stderr)
        lines: "queue.Queue[bytes]" = queue.Queue()
        stdout = process.stdout

        def read_lines() -> None:
            listening = False
            for line in iter(stdout.readline, b""):
                if not listening:
                    lines.put(line)
                listening = listening or line.startswith(LISTENING_PREFIX.encode())
            lines.put(b"")

        threading.Thread(target=read_lines, daemon=True).start()
        try:
            url = _await_listening(lines, process, time.monotonic() + startup_timeout)
        except ServerStartError as e:
            _terminate(process, os.getpid())
            said = stderr.text(wait=2.0) or "(nothing)"
            raise ServerStartError(f"{e.message}; its stderr: {said}", "server_start") from None
        server = cls(url=url, token=read_token(home), process=process)
        weakref.finalize(server, _terminate, process, os.getpid())
        return server

    def stop(self) -> None:
        """Terminates the server (it is also terminated when the Python process exits)."""
        _terminate(self.process, os.getpid())


_lock = threading.Lock()
_local: Optional[LocalServer] = None


def local_server() -> LocalServer:
    """The process's local server, started on first use (and again if it died)."""
    global _local
    with _lock:
        if _local is None or _local.process.poll() is not None:
            _local = LocalServer.start(find_msb(), msb_home())
        return _local


def resolve(url: Optional[str], token: Optional[str]) -> Tuple[str, Optional[str]]:
    """The server's URL and token: the arguments, else ``MSB_SERVER_URL`` and
    ``MSB_API_TOKEN``; a loopback URL without a token uses ``$MSB_HOME/server/token``; no URL
    at all starts the local server."""
    url = url or os.environ.get("MSB_SERVER_URL")
    token = token or os.environ.get("MSB_API_TOKEN")
    if not url:
        server = local_server()
        return server.url, token or server.token
    if token is None and is_loopback(url):
        token = read_token(msb_home())
    return url, token
