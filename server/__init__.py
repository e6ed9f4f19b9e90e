"""The weightinit gRPC server (``weightinit serve``).

The servicer is thin: requests are validated into jobs by
:mod:`weightinit.server.jobs`, messages converted by
:mod:`weightinit.api.convert`, chunks produced lazily by
:mod:`weightinit.server.streaming` and encoded by :mod:`weightinit.api.wire`.
"""

from .app import InitializerServicer, RunningServer, SERVICE_NAME, Security, create_server, describe_start, serve
from .jobs import Settings

__all__ = ["InitializerServicer", "RunningServer", "SERVICE_NAME", "Security", "Settings", "create_server",
           "describe_start", "serve"]
