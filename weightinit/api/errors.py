"""Request errors and their gRPC status: canonical code + google.rpc details.

Every rejected request carries a ``google.rpc.BadRequest`` with one
``FieldViolation`` per bad field (the field path is that of the request,
e.g. ``spec.kaiming_normal.mode``); limits add a ``google.rpc.QuotaFailure``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from weightinit.errors import (DeadlineExceededError, LimitError, ServiceError, SpecError, UnavailableError, Violation,
                               WeightinitError)


@dataclass
class RequestError(Exception):
    """A request the server refuses; ``code`` is a ``grpc.StatusCode``."""

    code: grpc.StatusCode
    message: str
    violations: list[Violation] = field(default_factory=list)
    quota: bool = False

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def invalid(violations: list[Violation]) -> RequestError:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{first.field}: {first.description}{more}", violations)


def exhausted(violations: list[Violation]) -> RequestError:
    first = violations[0]
    return RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{first.field}: {first.description}", violations,
                        quota=True)


#: Budget for the serialized details (sent base64 in ``grpc-status-details-bin``, 4/3 larger) and
#: the message, so that both fit gRPC's default 8 KiB client metadata limit with room to spare.
MAX_DETAILS_BYTES = 4096
MAX_MESSAGE_CHARS = 512
MAX_TEXT_CHARS = 300  # one field path or description


def _clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def capped_violations(violations: list[Violation], budget: int = MAX_DETAILS_BYTES,
                      quota: bool = False) -> tuple[list[Violation], int]:
    """The violations (each clipped to MAX_TEXT_CHARS) that fit ``budget`` bytes of details, and
    how many were left out. With ``quota`` each is sent twice (BadRequest and QuotaFailure)."""
    kept: list[Violation] = []
    used = 0
    for v in violations:
        clipped = Violation(_clip(v.field), _clip(v.description))
        size = (len(clipped.field.encode()) + len(clipped.description.encode()) + 12) * (2 if quota else 1)
        if used + size > budget:
            break
        kept.append(clipped)
        used += size
    return kept, len(violations) - len(kept)


def to_status_proto(error: RequestError) -> status_pb2.Status:
    details = []
    violations, left_out = capped_violations(error.violations, quota=error.quota)
    summary = _clip(error.message, MAX_MESSAGE_CHARS)
    if left_out:
        summary = f"{summary} [{left_out} of {len(error.violations)} violations left out of the details]"
        violations.append(Violation("violations_left_out", f"{left_out} more violations are not listed"))
    if violations:
        bad = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations])
        details.append(bad)
    if error.quota:
        details.append(error_details_pb2.QuotaFailure(violations=[
            error_details_pb2.QuotaFailure.Violation(subject=v.field, description=v.description)
            for v in violations]))
    packed = []
    for detail in details:
        message = any_pb2.Any()
        message.Pack(detail)
        packed.append(message)
    return status_pb2.Status(code=getattr(code_pb2, error.code.name), message=summary, details=packed)


def to_grpc_status(error: RequestError) -> grpc.Status:
    return rpc_status.to_status(to_status_proto(error))


def field_violations(rpc_error: grpc.RpcError) -> list[Violation]:
    """The BadRequest field violations of a failed call (client side helper)."""
    try:
        status = rpc_status.from_call(rpc_error)
    except ValueError:  # details that disagree with the call's code or message: report none
        return []
    if status is None:
        return []
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend(Violation(v.field, v.description) for v in bad.field_violations)
    return found


def engine_field(path: str) -> tuple[int | None, str]:
    """A request field path -> (manifest tensor index or None, the engine's field path).

    ``spec.normal.std`` -> (None, ``params.std``); ``manifest.tensors[2].shape`` -> (2, ``shape``);
    paths outside a spec (``start``, ``manifest.tensors``) come back unchanged.
    """
    from .convert import SCHEME_PARAM_MESSAGES

    index = None
    match = re.fullmatch(r"manifest\.tensors\[(\d+)\]\.?(.*)", path)
    if match:
        index, rest = int(match[1]), match[2]
    elif path == "spec" or path.startswith("spec."):
        rest = path[len("spec."):]
    else:
        return None, path
    head, dot, tail = rest.partition(".")
    if head in SCHEME_PARAM_MESSAGES:
        rest = "params" + dot + tail
    return index, rest or "spec"


#: Longest tensor name an error message repeats whole; longer ones keep their head and tail.
MAX_LABEL = 120


def tensor_label(manifest, index: int) -> str:
    """How errors name tensor ``index`` of a ``ModelManifest``: its name (shortened past
    MAX_LABEL characters), else its position."""
    if manifest is not None and 0 <= index < len(manifest.tensors) and manifest.tensors[index].name:
        name = manifest.tensors[index].name
        return name if len(name) <= MAX_LABEL else f"{name[:60]}…{name[-40:]}"
    return f"manifest.tensors[{index}]"


def from_rpc_error(error: grpc.RpcError, manifest=None, first_index: int = 0) -> WeightinitError:
    """A failed call -> the :mod:`weightinit.errors` exception for it.

    INVALID_ARGUMENT -> :class:`SpecError`, RESOURCE_EXHAUSTED -> :class:`LimitError` (both with the
    server's field violations; a manifest tensor is named by its name from ``manifest``, whose tensor 0
    the request sent as ``first_index``), UNAVAILABLE and a full server (RESOURCE_EXHAUSTED for
    ``concurrent_streams``, after the client's retries) -> :class:`UnavailableError`, DEADLINE_EXCEEDED ->
    :class:`DeadlineExceededError`, anything else -> :class:`ServiceError`.
    """
    code = error.code() if callable(getattr(error, "code", None)) else None
    name = code.name if code is not None else "UNKNOWN"
    details = (error.details() if callable(getattr(error, "details", None)) else None) or str(error)
    violations = field_violations(error) if code == grpc.StatusCode.RESOURCE_EXHAUSTED else []
    if violations and all(v.field == "concurrent_streams" for v in violations):  # busy, not a bad request
        return UnavailableError(name, details)
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED):
        kind = SpecError if code == grpc.StatusCode.INVALID_ARGUMENT else LimitError
        violations = field_violations(error) or [Violation("request", details)]
        index, path = engine_field(violations[0].field)
        tensor = None
        if index is not None:
            index += first_index
            tensor = tensor_label(manifest, index)
        return kind(path, violations[0].description, tensor=tensor, tensor_index=index, violations=violations)
    if code == grpc.StatusCode.UNAVAILABLE:
        return UnavailableError(name, details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(name, details)
    return ServiceError(name, details)
