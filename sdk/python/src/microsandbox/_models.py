"""What the server answers, as typed values (each keeps its full JSON as ``raw``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from ._errors import ProtocolError


def _object(value: Any, what: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"expected {what} as a JSON object, got {value!r:.200}", "protocol")
    return value


@dataclass(frozen=True)
class ExecResult:
    """How a command ended and what it wrote (text; invalid UTF-8 replaced)."""

    exit_code: int
    success: bool
    stdout: str
    stderr: str
    #: Why the command could not be started (then ``exit_code`` is 126 or 127).
    spawn_error: Optional[str] = None

    @classmethod
    def from_json(cls, value: Any) -> "ExecResult":
        """Reads the answer of ``POST …/exec``."""
        data = _object(value, "an exec result")
        try:
            return cls(
                exit_code=int(data["exit_code"]),
                success=bool(data["success"]),
                stdout=str(data.get("stdout", "")),
                stderr=str(data.get("stderr", "")),
                spawn_error=data.get("spawn_error"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"malformed exec result: {data!r:.200}", "protocol") from e


@dataclass(frozen=True)
class SandboxInfo:
    """A sandbox as the server knows it.

    ``state`` is lowercase: ``created``, ``running``, ``stopped``, ``crashed``, or
    ``removed`` (an ephemeral sandbox, as a stop answers it). ``source`` is its image
    reference or rootfs path. Times are seconds since the Unix epoch.
    """

    name: str
    state: str
    spec: Dict[str, Any] = field(repr=False)
    source: str = ""
    labels: Dict[str, str] = field(default_factory=dict)
    created_at: Optional[int] = None
    started_at: Optional[int] = None
    stopped_at: Optional[int] = None
    exit_code: Optional[int] = None
    exit_reason: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def running(self) -> bool:
        """Whether it is running now."""
        return self.state == "running"

    @property
    def ephemeral(self) -> bool:
        """Whether it is removed when it stops."""
        return bool(self.spec.get("ephemeral", False))

    @classmethod
    def from_json(cls, value: Any) -> "SandboxInfo":
        """Reads one sandbox of the server's answers."""
        data = _object(value, "a sandbox")
        if not isinstance(data.get("name"), str):
            raise ProtocolError(f"a sandbox without a name: {data!r:.200}", "protocol")
        spec = data.get("spec")
        return cls(
            name=data["name"],
            state=str(data.get("state", "")).lower(),
            spec=spec if isinstance(spec, dict) else {},
            source=str(data.get("source", "")),
            labels=dict(data.get("labels") or {}),
            created_at=data.get("created_at"),
            started_at=data.get("started_at"),
            stopped_at=data.get("stopped_at"),
            exit_code=data.get("exit_code"),
            exit_reason=data.get("exit_reason"),
            raw=data,
        )


@dataclass(frozen=True)
class FsEntry:
    """One guest filesystem entry (``kind`` lowercase: ``file``, ``dir``, ``symlink`` …)."""

    name: str
    kind: str
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    modified_ns: int = 0
    nlink: int = 0
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_dir(self) -> bool:
        """A directory."""
        return self.kind in ("dir", "directory")

    @property
    def is_file(self) -> bool:
        """A regular file."""
        return self.kind == "file"

    @property
    def is_symlink(self) -> bool:
        """A symbolic link."""
        return self.kind in ("symlink", "link")

    @classmethod
    def from_json(cls, value: Any) -> "FsEntry":
        """Reads one entry of ``fs/list`` or ``fs/stat``."""
        data = _object(value, "a filesystem entry")
        try:
            return cls(
                name=str(data.get("name", "")),
                kind=str(data.get("kind", "")).lower(),
                size=int(data.get("size") or 0),
                mode=int(data.get("mode") or 0),
                uid=int(data.get("uid") or 0),
                gid=int(data.get("gid") or 0),
                modified_ns=int(data.get("modified_ns") or 0),
                nlink=int(data.get("nlink") or 0),
                raw=data,
            )
        except (TypeError, ValueError) as e:
            raise ProtocolError(f"malformed filesystem entry: {data!r:.200}", "protocol") from e
