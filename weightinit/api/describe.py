"""Spec -> response messages both sides build: stream headers and the capabilities answer.

The server sends them; :class:`weightinit.client.LocalClient` builds the same ones in-process.
"""

from __future__ import annotations

import json
import math

import weightinit as wi
from weightinit.v1 import initializer_service_pb2 as pb
from weightinit.v1 import spec_pb2

from . import convert, wire


def tensor_header(spec: wi.TensorSpec, start: int, stop: int, hash_from: int, backend_name: str,
                  region=None, digest: str = "sha256") -> pb.TensorHeader:
    """The header that opens a tensor's stream: what it is, which elements follow (positions
    within ``region``, one (start, stop) per dimension, when given) and the digest's algorithm."""
    return pb.TensorHeader(
        digest_algorithm=wire.DIGEST_ALGORITHMS[digest],
        region=convert.region_to_proto(region),
        name=spec.name, shape=spec.shape, dtype=convert.DTYPE_TO_PROTO[spec.dtype], element_count=spec.numel,
        start=start, stop=stop, byte_count=(stop - start) * spec.itemsize, item_size=spec.itemsize,
        algorithm_version=wi.ALGORITHM_VERSION, seed=spec.seed, stream=spec.stream, hash_from=hash_from,
        backend=backend_name, resolved_spec_json=json.dumps(spec.to_dict(), sort_keys=True))


_PARAM_TYPES = {"float": pb.PARAM_TYPE_FLOAT, "int": pb.PARAM_TYPE_INT, "str": pb.PARAM_TYPE_STR,
                "int_list": pb.PARAM_TYPE_INT_LIST}


def _default_json(info) -> str:
    if info.required or info.default is None:
        return ""
    value = info.default
    if isinstance(value, float) and not math.isfinite(value):  # pragma: no cover - no such default today
        return json.dumps(str(value))
    return json.dumps(value)


def capabilities(limits: pb.ServerLimits, default_chunk_bytes: int, backend_name: str, backend_device: str,
                 backends: dict[str, str]) -> pb.GetCapabilitiesResponse:
    """What a server enforcing ``limits`` can do; the schemes come from the engine's catalogue."""
    schemes = []
    for name, info in wi.SCHEMES.items():
        params = [pb.ParamInfo(name=p.name, type=_PARAM_TYPES.get(p.type, pb.PARAM_TYPE_UNSPECIFIED),
                               required=p.required, default_json=_default_json(p),
                               choices=list(p.choices or ()), doc=p.doc)
                  for p in info.params.values()]
        schemes.append(pb.SchemeInfo(name=name, doc=info.doc, params=params))
    backend_infos = [pb.BackendInfo(name=name, available=status.startswith("ok"),
                                    detail=status[len("ok: "):] if status.startswith("ok") else status)
                     for name, status in backends.items()]
    return pb.GetCapabilitiesResponse(
        algorithm_version=wi.ALGORITHM_VERSION, server_version=wi.__version__, schemes=schemes,
        dtypes=[convert.DTYPE_TO_PROTO[d] for d in wi.DTYPES],
        layouts=[spec_pb2.Layout.Value("LAYOUT_" + layout.upper()) for layout in wi.LAYOUTS],
        backends=backend_infos, active_backend=backend_name, active_device=backend_device,
        limits=limits, default_chunk_bytes=default_chunk_bytes,
        digest_algorithms=list(wire.DIGEST_ALGORITHMS.values()))
