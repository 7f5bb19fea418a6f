"""microsandbox: run code in hardware-isolated microVMs through ``msb serve``.

    from microsandbox import Sandbox

    with Sandbox.create(image="python") as sb:
        print(sb.exec("python3", "-c", "print(1)").stdout)

Without ``MSB_SERVER_URL`` the first call starts a local ``msb serve`` for the process.
"""

from ._async import AsyncExecStream, AsyncLogStream, AsyncSandbox, AsyncSandboxCreation
from ._client import AsyncClient, Client
from ._errors import (
    BadRequestError,
    ConflictError,
    ExecTimeoutError,
    ForbiddenError,
    InvalidError,
    MicrosandboxError,
    NoSpaceError,
    NotFoundError,
    PayloadTooLargeError,
    ProtocolError,
    ServerStartError,
    TransportError,
    UnauthorizedError,
    UpstreamError,
)
from ._events import ExecEvent, Exit, Started, Stderr, Stdout
from ._fs import AsyncSandboxFs, SandboxFs
from ._models import ExecResult, FsEntry, SandboxInfo
from ._resources import AsyncImages, AsyncVolumes, Images, Volumes
from ._sandbox import ExecStream, LogStream, Sandbox
from ._spec import Mount, Patch, Secret
from ._streams import AsyncResponseStream, ResponseStream
from ._version import __version__

__all__ = [
    "AsyncClient",
    "AsyncExecStream",
    "AsyncImages",
    "AsyncLogStream",
    "AsyncResponseStream",
    "AsyncSandbox",
    "AsyncSandboxCreation",
    "AsyncSandboxFs",
    "AsyncVolumes",
    "BadRequestError",
    "Client",
    "ConflictError",
    "ExecEvent",
    "ExecResult",
    "ExecStream",
    "ExecTimeoutError",
    "Exit",
    "ForbiddenError",
    "FsEntry",
    "Images",
    "InvalidError",
    "LogStream",
    "MicrosandboxError",
    "Mount",
    "NoSpaceError",
    "NotFoundError",
    "Patch",
    "PayloadTooLargeError",
    "ProtocolError",
    "ResponseStream",
    "Sandbox",
    "SandboxFs",
    "SandboxInfo",
    "Secret",
    "ServerStartError",
    "Started",
    "Stderr",
    "Stdout",
    "TransportError",
    "UnauthorizedError",
    "UpstreamError",
    "Volumes",
    "__version__",
]
