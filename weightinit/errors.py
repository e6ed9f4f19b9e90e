"""The one exception family every weightinit call raises (engine, ``Client``, ``LocalClient``, CLI).

::

    WeightinitError                  base: ``except weightinit.WeightinitError`` catches them all
    ├── InvalidRequestError          (also a ValueError) the request is wrong: ``field``, ``message``,
    │   │                            ``tensor``, ``tensor_index``, ``violations``
    │   └── SpecError                a spec field is invalid (engine, conversion, or the server's
    │       │                        INVALID_ARGUMENT with its google.rpc.BadRequest field violations)
    │       └── LimitError           valid, but over a limit (engine Limits, or RESOURCE_EXHAUSTED)
    ├── ServiceError                 a call to the server failed: ``code`` (gRPC status name), ``details``
    │   ├── UnavailableError         (also a ConnectionError) UNAVAILABLE after the client's retries
    │   │                            (server down, unreachable), or a server still full after them
    │   │                            (RESOURCE_EXHAUSTED for concurrent_streams)
    │   └── DeadlineExceededError    (also a TimeoutError) the call's deadline (``timeout``) passed
    ├── IntegrityError               received bytes do not match the server's SHA-256, or a broken stream
    └── BackendUnavailable           (also a RuntimeError) the requested backend cannot run here

``field`` is the engine's path of the bad field (``shape``, ``params.std``); in a
manifest, ``tensor`` names the tensor (its name, else ``manifest.tensors[i]``) and
``str(error)`` reads ``fc1.bias: params.fan_in: must be > 0, got 0``.
``violations`` holds every (field, description) pair the server reported, with
the request's field paths (``manifest.tensors[2].normal.std``).

This module imports nothing from weightinit: every layer may raise these.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence


class Violation(NamedTuple):
    """One bad field of a request: its path and what is wrong (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


class WeightinitError(Exception):
    """Base of every error weightinit raises on purpose."""


class InvalidRequestError(WeightinitError, ValueError):
    """The request itself is wrong; retrying it unchanged gives the same error."""

    def __init__(self, field: str, message: str, *, tensor: str | None = None,
                 tensor_index: int | None = None, violations: Sequence[Violation] = ()):
        prefix = f"{tensor}: " if tensor else ""
        super().__init__(f"{prefix}{field}: {message}")
        self.field = field
        self.message = message
        self.tensor = tensor
        self.tensor_index = tensor_index
        self.violations = list(violations) or [Violation(field, message)]

    def in_tensor(self, tensor: str, index: int) -> "InvalidRequestError":
        """The same error, naming the manifest tensor it belongs to."""
        return type(self)(self.field, self.message, tensor=tensor, tensor_index=index, violations=self.violations)

    def __reduce__(self):
        return _rebuild, (type(self), self.field, self.message, self.tensor, self.tensor_index, self.violations)


def _rebuild(cls, field, message, tensor, tensor_index, violations):
    return cls(field, message, tensor=tensor, tensor_index=tensor_index, violations=violations)


class SpecError(InvalidRequestError):
    """An invalid spec field. ``field`` is its path (``shape``, ``params.std`` ...)."""


class LimitError(SpecError):
    """The spec is valid but asks for more than the configured limits allow (gRPC RESOURCE_EXHAUSTED)."""


class ServiceError(WeightinitError):
    """A call to a weightinit server failed. ``code``: the gRPC status name; ``details``: its message."""

    def __init__(self, code: str, details: str):
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class UnavailableError(ServiceError, ConnectionError):
    """The server could not be reached (gRPC UNAVAILABLE), after the client's retries."""


class DeadlineExceededError(ServiceError, TimeoutError):
    """The call's deadline passed before the server finished (gRPC DEADLINE_EXCEEDED)."""


class IntegrityError(WeightinitError):
    """The bytes received do not match the server's digest (or the stream broke its own rules)."""


class BackendUnavailable(WeightinitError, RuntimeError):
    """The requested backend cannot run here (package missing, no device ...)."""


__all__ = ["BackendUnavailable", "DeadlineExceededError", "IntegrityError", "InvalidRequestError", "LimitError",
           "ServiceError", "SpecError", "UnavailableError", "Violation", "WeightinitError"]
