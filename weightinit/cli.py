"""The ``weightinit`` command line: generate (locally or from a server), serve, describe, health.

    weightinit generate --scheme kaiming_normal --shape 512 256 --seed 7 --name fc1.weight -o fc1.npy
    weightinit generate --spec spec.json --server 127.0.0.1:50051 -o -
    weightinit generate --manifest model.json -o model.safetensors
    weightinit serve --port 0
    weightinit describe [--server HOST:PORT] [--json]
    weightinit verify model.safetensors [--server HOST:PORT] [--sample K]
    weightinit report arch.json -o report.png

Exit status: 0 success, 1 failure (server unreachable, digest mismatch, I/O),
2 bad input (one line on stderr naming the field), 130 interrupted (Ctrl-C),
128 + N killed by signal N (SIGTERM 143, SIGHUP 129; the partial output file is removed).

``--server HOST`` without a port uses the service's port 50051. Startup stays light: numpy, grpc
and the JIT backend load only when the command needs them (a local tensor under a million elements
never loads the JIT backend).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import signal
import sys
import time
from typing import Any, Iterable

import weightinit as wi

PROGRESS_MIN_BYTES = 16 << 20
#: The service's port (``weightinit serve``, the Docker image): ``--server HOST`` means HOST:50051.
DEFAULT_PORT = 50051



class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class _Terminated(BaseException):
    """SIGTERM/SIGHUP arrived: unwind (removing partial output) and exit 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def server_address(text: str) -> str:
    """``HOST[:PORT]`` -> ``HOST:PORT`` for gRPC; the port must be 1..65535 (default 50051).

    IPv6 literals go in brackets (``[::1]:50051``); gRPC target URIs (``dns:///h:p``, ``unix:/path``)
    pass unchanged."""
    text = text.strip()
    if "://" in text or text.startswith("unix:"):
        return text
    if text.startswith("["):
        host, bracket, rest = text.partition("]")
        if not bracket or host == "[" or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (IPv6: [ADDR]:PORT)")
        host, port = host + "]", rest[1:] if rest else None
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = text, None
        elif ":" in host:
            raise argparse.ArgumentTypeError(f"{text!r}: put an IPv6 address in brackets, e.g. [::1]:{DEFAULT_PORT}")
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r} has no host (HOST:PORT, e.g. 127.0.0.1:{DEFAULT_PORT})")
    if port is None:
        return f"{host}:{DEFAULT_PORT}"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be a number in 1..65535, got {port!r}")
    return f"{host}:{int(port)}"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2 (argparse prints usage on several)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ---------------------------------------------------------------------------
# building specs from flags


def _coerce_param(scheme: str, key: str, text: str) -> Any:
    info = wi.SCHEMES.get(scheme)
    param = info.params.get(key) if info is not None else None
    if param is None:
        return text  # the engine names the unknown parameter
    try:
        if param.type == "float":
            return float(text)
        if param.type == "int":
            return int(text)
        if param.type == "int_list":
            return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        kind = {"float": "a number", "int": "an integer", "int_list": "comma-separated integers"}[param.type]
        raise wi.SpecError(f"params.{key}", f"must be {kind}, got {text!r}") from None
    return text


def _int_arg(text: str, field: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise wi.SpecError(field, f"must be an integer, got {text!r}") from None


def _parse_range(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    start, sep, stop = text.partition(":")
    if not sep:
        raise wi.SpecError("range", f"must be START:STOP, got {text!r}")
    return (_int_arg(start, "range") if start else 0), (_int_arg(stop, "range") if stop else None)


def _parse_index(text: str | None, shape) -> list[tuple[int, int]] | None:
    """'0:512,256:512' -> one (start, stop) per leading dimension; empty ends are the dimension's
    ends, negative values count from the end; out of range is an error (no NumPy clamping)."""
    if text is None:
        return None
    index = []
    for d, part in enumerate(text.split(",")):
        start, sep, stop = part.strip().partition(":")
        if not sep:
            raise wi.SpecError(f"index[{d}]", f"must be START:STOP, got {part!r}")
        size = shape[d] if d < len(shape) else 0
        index.append((_int_arg(start, f"index[{d}]") if start.strip() else 0,
                      _int_arg(stop, f"index[{d}]") if stop.strip() else size))
    return index


def _load_json(path: str, what: str) -> Any:
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
        return json.loads(data.decode("utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read {what} {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"{what} {path} is not UTF-8 text (byte {error.start}: {error.reason})") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"{what} {path} is not valid JSON: {error}") from None


def engine_spec_dict(loaded: Any, what: str = "spec") -> dict:
    """A spec object from JSON -> the engine's spec dict. Two forms are accepted:

    - the engine's: ``{"scheme": "kaiming_normal", "shape": [512, 256], "params": {"mode": "fan_out"}}``;
    - the proto JSON mapping of ``weightinit.v1.TensorSpec`` (what grpcurl sends):
      ``{"kaiming_normal": {"mode": "FAN_MODE_FAN_OUT"}, "shape": [512, 256], "dtype": "DATA_TYPE_FP32"}``.
    """
    if not isinstance(loaded, dict):
        raise wi.SpecError(what, f"must be a JSON object, got {type(loaded).__name__}")
    if "scheme" in loaded:
        return loaded
    from weightinit.api.convert import SCHEME_PARAM_MESSAGES

    schemes = [key for key in loaded if key in SCHEME_PARAM_MESSAGES]
    if not schemes:
        raise wi.SpecError(what, 'is neither the engine form ({"scheme": NAME, ...}) nor the proto JSON form '
                                 '({"NAME": {params}, ...}); name the scheme one of these two ways')
    from google.protobuf import json_format

    from weightinit.api import convert
    from weightinit.v1 import spec_pb2

    try:
        message = json_format.ParseDict(loaded, spec_pb2.TensorSpec())
    except json_format.ParseError as error:
        detail = " ".join(str(error).split())
        raise wi.SpecError(what, f"read as the proto JSON form (it names scheme {schemes[0]!r} as a key): "
                                 f"{detail}") from None
    data = convert.spec_to_dict(message)
    return {key: value for key, value in data.items() if key not in ("name",) or value}


def spec_from_args(args: argparse.Namespace) -> dict:
    """The spec dict the generate flags describe (``--spec`` file first, flags override)."""
    spec: dict[str, Any] = {}
    if args.spec:
        spec.update(engine_spec_dict(_load_json(args.spec, "spec file")))
    if args.scheme is not None:
        spec["scheme"] = args.scheme
    if args.shape is not None:
        spec["shape"] = [_int_arg(d, "shape") for d in args.shape]
    for key in ("dtype", "name", "layout"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    for key in ("seed", "stream"):
        if getattr(args, key) is not None:
            spec[key] = _int_arg(getattr(args, key), key)
    for key in ("in_axis", "out_axis"):  # one value: that axis; none or several: a sequence (JAX)
        values = getattr(args, key)
        if values is not None:
            axes = [_int_arg(a, key) for a in values]
            spec[key] = axes[0] if len(axes) == 1 else axes
    if args.batch_axis is not None:
        spec["batch_axis"] = [_int_arg(a, "batch_axis") for a in args.batch_axis]
    if args.param:
        params = dict(spec.get("params") or {})
        scheme = spec.get("scheme")
        for group in args.param:
            for item in group:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise wi.SpecError("params", f"--param takes KEY=VALUE, got {item!r}")
                params[key] = _coerce_param(scheme, key, value)
        spec["params"] = params
    if "scheme" not in spec:
        raise wi.SpecError("scheme", "is required: give --scheme, --spec or --manifest")
    if "shape" not in spec:
        raise wi.SpecError("shape", "is required: give --shape D0 [D1 ...]")
    return spec


# ---------------------------------------------------------------------------
# output formats


class _Progress:
    #: True while a progress line is on the terminal without its newline (main() ends it on Ctrl-C).
    line_open = False

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled and total >= PROGRESS_MIN_BYTES
        self.began = time.perf_counter()
        self.last = 0.0

    def add(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.1 or self.done >= self.total):
            self.last = now
            fraction = self.done / self.total if self.total else 1.0
            rate = self.done / max(now - self.began, 1e-9) / 1e6
            bar = "#" * int(fraction * 30)
            _Progress.line_open = True  # before writing: a Ctrl-C may land right after the write
            sys.stderr.write(f"\r[{bar:<30}] {fraction:6.1%} {self.done / 2**20:9.1f}/{self.total / 2**20:.1f} MiB "
                             f"{rate:7.1f} MB/s")
            sys.stderr.flush()

    def close(self) -> None:
        end_progress_line()


def end_progress_line() -> None:
    if _Progress.line_open:
        _Progress.line_open = False
        sys.stderr.write("\n")
        sys.stderr.flush()


#: .npy type of each dtype. bfloat16 has no numpy type of its own, so a bfloat16 .npy holds its bits
#: as little-endian uint16, with or without ml_dtypes: numpy, torch.from_numpy and every other reader
#: load it the same way (view it as bfloat16: ``a.view(ml_dtypes.bfloat16)``, ``t.view(torch.bfloat16)``).
NPY_DESCR = {"float32": "<f4", "float64": "<f8", "float16": "<f2", "bfloat16": "<u2", "complex64": "<c8",
             "complex128": "<c16"}


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    import io

    import numpy as np

    descr = NPY_DESCR[dtype]
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


class _Output:
    """A destination file written to a temporary name and renamed on success; or stdout."""

    def __init__(self, path: str):
        self.path = path
        if path == "-":
            if sys.stdout.isatty():
                raise UsageError("-o - writes binary data to stdout, which is a terminal: redirect it "
                                 "(> FILE or | COMMAND) or give -o FILE.npy")
            self.handle = sys.stdout.buffer
            self.temp = None
        else:
            directory = os.path.dirname(os.path.abspath(path))
            self.temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.part")
            try:
                self.handle = open(self.temp, "wb")
            except OSError as error:
                raise UsageError(f"cannot write {path}: {error.strerror}") from None

    def write(self, data) -> None:
        self.handle.write(data)

    def commit(self) -> None:
        self.handle.flush()
        if self.temp is not None:
            self.handle.close()
            os.replace(self.temp, self.path)

    def abort(self) -> None:
        if self.temp is not None:
            self.handle.close()
            try:
                os.unlink(self.temp)
            except OSError:
                pass


def _format_of(path: str) -> str:
    if path == "-":
        return "raw"
    lowered = path.lower()
    if lowered.endswith(".npy"):
        return "npy"
    if lowered.endswith(".safetensors"):
        return "safetensors"
    if lowered.endswith((".bin", ".raw")):
        return "raw"
    raise UsageError(f"-o {path}: use a .npy or .safetensors file, a .bin/.raw file for raw bytes, or - for stdout")


def _write_stream(out: _Output, chunks: Iterable, total: int, progress: bool) -> None:
    import numpy as np

    bar = _Progress(total, progress)
    try:
        for chunk in chunks:
            view = memoryview(np.ascontiguousarray(chunk.data)).cast("B")
            out.write(view)
            bar.add(view.nbytes)
    finally:
        bar.close()


# ---------------------------------------------------------------------------
# commands


def _connection_kwargs(args) -> dict:
    """Client TLS / token options of a ``--server`` command (--tls-ca, --tls-cert, --tls-key, --token-file)."""
    kwargs = {"tls_ca": args.tls_ca, "tls_cert": args.tls_cert, "tls_key": args.tls_key,
              "retry_seconds": args.retry_seconds, "digest": args.digest}
    if args.token_file:
        try:
            with open(args.token_file) as handle:
                kwargs["token"] = handle.read().strip()
        except OSError as error:
            raise UsageError(f"--token-file: {error}") from None
    return kwargs


def _client(args):
    from weightinit.client import Client, LocalClient

    if args.server:
        return Client(args.server, timeout=args.timeout, **_connection_kwargs(args))
    return LocalClient(args.backend)


def _metadata(extra: dict[str, str] | None = None) -> dict[str, str]:
    meta = {"format": "pt", "generator": f"weightinit {wi.__version__}",
            "weightinit.algorithm_version": str(wi.ALGORITHM_VERSION)}
    meta.update(extra or {})
    return meta


class _LocalChunk:
    def __init__(self, data):
        self.data = data


def _local_chunks(spec, start, stop, chunk_elements, backend) -> Iterable:
    """The engine's chunks directly: no client (and no grpc) for local generation."""
    step = chunk_elements or max(1, (1 << 20) // spec.itemsize)
    for _, data in wi.iter_chunks(spec, start, stop, step, backend=backend, limits=wi.DEFAULT_LIMITS):
        yield _LocalChunk(data)


def _local_region_chunks(spec, bounds, chunk_elements, backend) -> Iterable:
    """The region's elements in row-major order, a chunk at a time (memory O(chunk))."""
    import numpy as np

    from weightinit.engine.generate import FILL_ELEMENTS
    from weightinit.engine.regions import fill_region_positions, region_shape

    compiled = wi.compile_spec(spec, backend, limits=wi.DEFAULT_LIMITS)
    total = math.prod(region_shape(bounds))
    step = chunk_elements or max(1, (1 << 20) // spec.itemsize)
    for offset in range(0, total, step):
        out = np.empty(min(step, total - offset), dtype=wi.storage_dtype(spec.dtype))
        yield _LocalChunk(fill_region_positions(compiled, bounds, offset, out, FILL_ELEMENTS))


def cmd_generate(args) -> int:
    from weightinit.engine.generate import check_chunk, check_range

    if args.output is None:
        raise UsageError("-o OUT is required (.npy, .safetensors, or - for raw bytes on stdout)")
    fmt = _format_of(args.output)
    progress = sys.stderr.isatty() and not args.quiet
    chunk_elements = check_chunk(_int_arg(args.chunk_elements, "chunk_elements")) if args.chunk_elements else None
    if args.manifest:
        return _generate_manifest(args, _client(args), fmt, chunk_elements, progress)
    spec_dict = spec_from_args(args)
    spec = wi.spec_from_dict(spec_dict, limits=None if args.server else wi.DEFAULT_LIMITS)
    start, stop = _parse_range(args.range)
    index = _parse_index(args.index, spec.shape)
    if index is not None:
        from weightinit.engine.regions import region_shape, resolve_region

        if args.range is not None:
            raise UsageError("--index and --range are exclusive: give an N-d region or a flat range")
        bounds = resolve_region(index, spec.shape)
        shape = region_shape(bounds)
        nbytes = math.prod(shape) * spec.itemsize
        if args.server:
            chunks = _client(args).iter_chunks(spec_dict, chunk_elements=chunk_elements, index=index)
        else:
            chunks = _local_region_chunks(spec, bounds, chunk_elements, args.backend)
    else:
        first, last = check_range(spec, start, stop)
        shape = spec.shape if args.range is None else (last - first,)
        nbytes = (last - first) * spec.itemsize
        if args.server:
            chunks = _client(args).iter_chunks(spec_dict, start=start, stop=stop, chunk_elements=chunk_elements)
        else:
            chunks = _local_chunks(spec, first, last, chunk_elements, args.backend)
    out = _Output(args.output)
    try:
        if fmt == "npy":
            out.write(_npy_header(tuple(shape), spec.dtype))
        elif fmt == "safetensors":
            from weightinit.provenance import patch_digests, provenance_metadata, safetensors_header

            name = spec.name or "tensor"
            extra = {"weightinit.spec": json.dumps(spec.to_dict(), sort_keys=True)}
            # provenance only for the spec's whole tensor (a range or a region is not it), in a seekable file
            whole = args.range is None and index is None and args.output != "-"
            if whole:
                from dataclasses import replace

                extra.update(provenance_metadata([replace(spec, name=name)]))
                extra[f"weightinit.spec.{name}"] = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
            header = safetensors_header([(name, spec.dtype, list(shape), nbytes)], _metadata(extra))
            out.write(header)
            if whole:
                hasher = hashlib.sha256()
                chunks = _hashing(chunks, hasher)
        _write_stream(out, chunks, nbytes, progress)
        if fmt == "safetensors" and whole:
            patch_digests(out.handle, header, {name: hasher.hexdigest()})
        out.commit()
    except BaseException:
        out.abort()
        raise
    return 0


def _hashing(chunks, hasher):
    import numpy as np

    for chunk in chunks:
        hasher.update(memoryview(np.ascontiguousarray(chunk.data)).cast("B"))
        yield chunk


def _generate_manifest(args, client, fmt: str, chunk_elements: int | None, progress: bool) -> int:
    from weightinit.provenance import manifest_specs, patch_digests, provenance_metadata, safetensors_header

    if fmt not in ("safetensors",) and args.output != "-":
        raise UsageError("--manifest writes one .safetensors file (or - for safetensors on stdout)")
    if args.scheme or args.spec or args.shape:
        raise UsageError("--manifest cannot be combined with --scheme, --shape or --spec")
    manifest = _load_json(args.manifest, "manifest")
    if isinstance(manifest, dict) and "recipe" not in manifest and isinstance(manifest.get("tensors"), list):
        manifest = {**manifest, "tensors": [engine_spec_dict(t, f"manifest.tensors[{i}]") if isinstance(t, dict)
                                            else t for i, t in enumerate(manifest["tensors"])]}
    specs, recipe = manifest_specs(manifest, limits=None)  # expands a recipe; validates; gives the shapes
    plain = {"seed": manifest.get("seed", 0) if isinstance(manifest, dict) else 0,
             "tensors": [spec.to_dict() for spec in specs]}
    entries = [(s.name, s.dtype, list(s.shape), s.nbytes) for s in specs]
    seekable = args.output != "-"
    meta = _metadata({"weightinit.seed": str(plain["seed"] or 0),
                      **provenance_metadata(specs, recipe=recipe, with_digests=seekable)})
    header = safetensors_header(entries, meta)
    hashers = {spec.name: hashlib.sha256() for spec in specs}

    def hashed(chunks):
        for chunk in chunks:
            yield from _hashing([chunk], hashers[chunk.name])

    out = _Output(args.output)
    try:
        out.write(header)
        _write_stream(out, hashed(client.iter_model_chunks(plain, chunk_elements=chunk_elements)),
                      sum(e[3] for e in entries), progress)
        if seekable:
            patch_digests(out.handle, header, {name: h.hexdigest() for name, h in hashers.items()})
        out.commit()
    except BaseException:
        out.abort()
        raise
    return 0


def cmd_verify(args) -> int:
    from weightinit.client import Client
    from weightinit.provenance import BadFileError, verify_safetensors

    sample = _int_arg(args.sample, "sample") if args.sample is not None else None
    if sample is not None and sample < 1:
        raise UsageError("--sample must be a positive number of elements")
    client = Client(args.server, timeout=args.timeout, **_connection_kwargs(args)) if args.server else None
    try:
        checks = verify_safetensors(args.file, client=client, sample=sample, seed=args.seed)
    except BadFileError as error:
        print(f"weightinit verify: {error}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    for check in checks:
        print(f"{'ok' if check.ok else 'DIFFERENT':<9} {check.name}: {check.detail}")
    different = sum(not c.ok for c in checks)
    print(f"{len(checks) - different} ok, {different} different", file=sys.stderr)
    return 1 if different else 0


def cmd_report(args) -> int:
    arch = _load_json(args.arch, "architecture")
    try:
        from weightinit.torch.report import plot_reports, report_architecture
    except ImportError as error:
        raise UsageError(f"weightinit report needs torch (pip install weightinit[torch]): {error}") from None
    import torch

    torch.set_flush_denormal(True)  # a vanishing signal would otherwise crawl through subnormal arithmetic
    reports = report_architecture(arch)
    for report in reports:
        print(report, end="\n\n")
    if args.output:
        try:
            plot_reports(reports, args.output, title=arch.get("title", "") if isinstance(arch, dict) else "")
        except ImportError:
            raise UsageError("-o needs matplotlib (pip install matplotlib)") from None
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_serve(args) -> int:
    from weightinit.server import Settings, serve

    from weightinit.server import Security

    defaults = Settings()

    def given(value, default):
        return default if value is None else value

    settings = Settings(
        stream_idle_timeout=given(args.stream_idle_timeout, defaults.stream_idle_timeout),
        max_deadline=given(args.max_deadline, defaults.max_deadline),
        max_streams_per_identity=given(args.max_streams_per_identity, defaults.max_streams_per_identity),
        max_hashed_elements=given(args.max_hashed_elements, defaults.max_hashed_elements),
        max_chunks_per_stream=given(args.max_chunks, defaults.max_chunks_per_stream),
        max_dense_work=given(args.max_dense_work, defaults.max_dense_work),
        max_dense_work_per_model=given(args.max_model_dense_work, defaults.max_dense_work_per_model),
        max_elements_per_request=args.max_elements or defaults.max_elements_per_request,
        max_elements_per_model=args.max_model_elements or defaults.max_elements_per_model,
        max_tensors_per_model=args.max_tensors or defaults.max_tensors_per_model,
        max_concurrent_streams=args.max_streams or defaults.max_concurrent_streams,
        max_dense_elements=args.max_dense_elements or defaults.max_dense_elements,
        default_chunk_bytes=args.chunk_bytes or defaults.default_chunk_bytes,
        prefetch_chunks=args.prefetch if args.prefetch is not None else defaults.prefetch_chunks)
    if settings.default_chunk_bytes > settings.max_chunk_bytes:
        raise UsageError(f"--chunk-bytes must be at most {settings.max_chunk_bytes}")

    def ready(running) -> None:
        print(f"listening on {running.address}", flush=True)

    try:
        security = Security(tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
                            auth_tokens=args.auth_tokens, insecure_bind_all=args.insecure_bind_all)
        return serve(args.host, args.port, args.backend, settings, grace=args.grace, on_ready=ready,
                     security=security, metrics_port=args.metrics_port, health_port=args.health_port)
    except ValueError as error:  # unsafe or inconsistent security flags, unreadable token file
        print(f"weightinit serve: {error}", file=sys.stderr)
        return 2
    except wi.BackendUnavailable as error:
        print(f"weightinit serve: backend unavailable: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"weightinit serve: {error}", file=sys.stderr)
        return 1


def _print_capabilities(info: dict) -> None:
    print(f"weightinit {info.get('server_version', '')}  algorithm version {info['algorithm_version']}")
    print(f"active backend: {info['active_backend']} ({info.get('active_device', '')})")
    for backend in info.get("backends", []):
        mark = "ok " if backend.get("available") else "-- "
        print(f"  {mark}{backend['name']}: {backend.get('detail', '')}")
    from weightinit.api.convert import PROTO_TO_DTYPE
    from weightinit.v1 import spec_pb2

    print("dtypes (--dtype): " + ", ".join(PROTO_TO_DTYPE.get(spec_pb2.DataType.Value(d), d) for d in info["dtypes"]))
    print("layouts: " + ", ".join(layout.replace("LAYOUT_", "").lower() for layout in info["layouts"]))
    print("limits: " + ", ".join(f"{k}={v}" for k, v in info["limits"].items()))
    print("schemes:")
    for scheme in info["schemes"]:
        params = []
        for p in scheme.get("params", []):
            text = p["name"]
            if p.get("required"):
                text += " (required)"
            elif p.get("default_json"):
                text += "=" + p["default_json"]
            if p.get("choices"):
                text += " {" + "|".join(p["choices"]) + "}"
            params.append(text)
        print(f"  {scheme['name']:<18} {', '.join(params) or '-'}")
        print(f"  {'':<18} {scheme.get('doc', '')}")


def cmd_describe(args) -> int:
    info = _client(args).describe()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_capabilities(info)
    return 0


def cmd_health(args) -> int:
    from weightinit.client import Client

    try:
        with Client(args.server, timeout=args.timeout, max_attempts=1, **_connection_kwargs(args)) as client:
            status = client.health(args.service)
    except wi.ServiceError as error:
        print(f"{error.code}: {error.details}", file=sys.stderr)
        return 1
    print(status)
    return 0 if status == "SERVING" else 1


# ---------------------------------------------------------------------------


def _defaults_from_environment(parser: argparse.ArgumentParser) -> None:
    """Each long option --some-flag also reads WEIGHTINIT_SOME_FLAG (the command line wins)."""
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or action.dest in ("help", "log_level"):
            continue
        variable = "WEIGHTINIT_" + longs[0][2:].upper().replace("-", "_")
        text = os.environ.get(variable)
        if text is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            value = text.strip().lower() in ("1", "true", "yes", "on")
        else:
            try:
                value = action.type(text) if action.type else text
            except ValueError:
                parser.error(f"{variable}={text!r} is not a valid {longs[0]}")
        parser.set_defaults(**{action.dest: value})
        action.help = (action.help or "") + f" [from {variable}]"


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-ca", dest="tls_ca", metavar="FILE", help="CA bundle to verify the server (TLS)")
    parser.add_argument("--tls-cert", dest="tls_cert", metavar="FILE", help="client certificate (mutual TLS)")
    parser.add_argument("--tls-key", dest="tls_key", metavar="FILE", help="client private key (mutual TLS)")
    parser.add_argument("--token-file", dest="token_file", metavar="FILE", help="file holding a bearer token")
    parser.add_argument("--retry-seconds", dest="retry_seconds", type=float, default=30.0,
                        help="keep retrying an unavailable server (resuming a broken stream) this long (30)")
    parser.add_argument("--digest", choices=("blake3", "sha256"), default="blake3",
                        help="wire digest checked on every tensor (blake3: several times cheaper; sha256 for "
                             "servers and relays that only have it)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="weightinit", description="Reproducible neural-network weight initialization.")
    parser.add_argument("--version", action="version", version=f"weightinit {wi.__version__} "
                                                                f"(algorithm v{wi.ALGORITHM_VERSION})")
    parser.add_argument("--log-level", default=None,
                        help="logging level (default INFO for serve, WARNING otherwise)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    gen = sub.add_parser("generate", help="generate a tensor (or a whole manifest) to a file or stdout",
                         description="Generate a tensor with the in-process engine, or fetch it from a server "
                                     "with --server (same bytes). bfloat16 goes into .npy as its bits, "
                                     "little-endian uint16 ('<u2'), whether or not ml_dtypes is installed; "
                                     ".safetensors stores it as BF16. --spec takes the engine's JSON "
                                     '({"scheme": "normal", ...}) or the proto JSON mapping grpcurl uses '
                                     '({"normal": {"std": 0.02}, ...}).')
    gen.add_argument("--scheme", help="scheme name, e.g. kaiming_normal (see `weightinit describe`)")
    gen.add_argument("--shape", nargs="+", metavar="D", help="dimensions, e.g. --shape 512 256")
    gen.add_argument("--dtype", help="float32 (default), float64, float16, bfloat16, complex64 or complex128")
    gen.add_argument("--seed", help="uint64 seed (default 0)")
    gen.add_argument("--name", help="tensor name; the random stream derives from it (default empty)")
    gen.add_argument("--layout", help="torch (default), keras or axes")
    gen.add_argument("--in-axis", dest="in_axis", nargs="*", metavar="AXIS",
                     help="input axis for --layout axes; several (or none) multiply, as JAX's in_axis sequences")
    gen.add_argument("--out-axis", dest="out_axis", nargs="*", metavar="AXIS",
                     help="output axis for --layout axes; several (or none) multiply")
    gen.add_argument("--batch-axis", dest="batch_axis", nargs="+", metavar="AXIS", help="batch axes (axes layout)")
    gen.add_argument("--stream", help="explicit uint64 stream id instead of one derived from --name")
    gen.add_argument("--param", action="append", nargs="+", metavar="KEY=VALUE",
                     help="scheme parameter, e.g. --param mode=fan_out nonlinearity=relu")
    gen.add_argument("--spec", metavar="SPEC.json", help="spec as JSON (flags given as well override it)")
    gen.add_argument("--manifest", metavar="FILE.json",
                     help='model manifest {"seed": 7, "tensors": [spec, ...]} -> one .safetensors')
    gen.add_argument("--range", metavar="START:STOP", help="only the flat elements [START, STOP)")
    gen.add_argument("--index", metavar="A:B,C:D", help="only the N-d region [A:B, C:D, ...] (trailing dims whole), "
                                                        "e.g. --index 0:512,256:512")
    gen.add_argument("--chunk-elements", dest="chunk_elements", metavar="N", help="elements per chunk")
    gen.add_argument("-o", "--output", metavar="OUT", required=True,
                     help="OUT.npy, OUT.safetensors, OUT.bin, or - (raw bytes to a pipe; refused on a terminal)")
    gen.add_argument("--server", metavar="HOST[:PORT]", type=server_address,
                     help=f"fetch from a weightinit server instead (port {DEFAULT_PORT} when omitted)")
    gen.add_argument("--backend", default=None, help="local backend: auto (default), numpy, numba, cupy")
    gen.add_argument("--timeout", type=float, default=None,
                     help="deadline of each call to --server, in seconds (default: none)")
    gen.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_connection_flags(gen)
    gen.set_defaults(func=cmd_generate)

    srv = sub.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT",
                         description="Serve weightinit.v1.InitializerService (plus grpc.health.v1 and reflection) "
                                     "until SIGTERM or SIGINT, then drain in-flight streams for --grace seconds. "
                                     "Prints 'listening on HOST:PORT' once bound. On the first start the JIT "
                                     "backend compiles its kernels in the background (tens of seconds, logged); "
                                     "later starts load them from the disk cache.")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    srv.add_argument("--port", type=int, default=50051, help="port (default 50051; 0 picks a free one and prints it)")
    srv.add_argument("--backend", default="auto", help="auto (default), numpy, numba or cupy")
    srv.add_argument("--max-elements", dest="max_elements", type=int, help="elements per tensor")
    srv.add_argument("--max-model-elements", dest="max_model_elements", type=int, help="elements per manifest")
    srv.add_argument("--max-tensors", dest="max_tensors", type=int, help="tensors per manifest")
    srv.add_argument("--max-streams", dest="max_streams", type=int, help="concurrent streams")
    srv.add_argument("--max-dense-elements", dest="max_dense_elements", type=int,
                     help="elements of whole-tensor schemes (orthogonal ...)")
    srv.add_argument("--chunk-bytes", dest="chunk_bytes", type=int, help="default chunk size in bytes (1 MiB)")
    srv.add_argument("--prefetch", type=int, help="chunks generated ahead per stream (default 2)")
    srv.add_argument("--grace", type=float, default=10.0, help="seconds in-flight streams get on shutdown")
    srv.add_argument("--log-level", dest="log_level", default=argparse.SUPPRESS, help="logging level (INFO)")
    srv.add_argument("--stream-idle-timeout", dest="stream_idle_timeout", type=float,
                     help="cancel a stream whose client took no message for this many seconds (30; 0: never)")
    srv.add_argument("--max-deadline", dest="max_deadline", type=float,
                     help="longest a stream may run, whatever the client's deadline (3600 s; 0: no cap)")
    srv.add_argument("--max-streams-per-identity", dest="max_streams_per_identity", type=int,
                     help="concurrent streams per caller: token, client certificate or peer address (0: no limit)")
    srv.add_argument("--max-hashed-elements", dest="max_hashed_elements", type=int,
                     help="elements generated without being sent: [hash_from, start) or digest_only (2^27)")
    srv.add_argument("--max-chunks", dest="max_chunks", type=int,
                     help="messages per stream in chunks smaller than --chunk-bytes (2^14)")
    srv.add_argument("--max-dense-work", dest="max_dense_work", type=int,
                     help="QR work rows*cols^2 of one orthogonal tensor (2^32)")
    srv.add_argument("--max-model-dense-work", dest="max_model_dense_work", type=int,
                     help="QR work summed over a manifest (2^33)")
    srv.add_argument("--tls-cert", dest="tls_cert", metavar="FILE", help="server certificate chain (PEM): TLS")
    srv.add_argument("--tls-key", dest="tls_key", metavar="FILE", help="private key of --tls-cert (PEM)")
    srv.add_argument("--tls-client-ca", dest="tls_client_ca", metavar="FILE",
                     help="require client certificates signed by this CA (mutual TLS)")
    srv.add_argument("--auth-tokens", dest="auth_tokens", metavar="FILE",
                     help="bearer tokens, one a line: calls need 'authorization: Bearer <token>' (health stays open)")
    srv.add_argument("--insecure-bind-all", dest="insecure_bind_all", action="store_true",
                     help="allow plaintext, unauthenticated serving on a non-loopback --host")
    srv.add_argument("--metrics-port", dest="metrics_port", type=int, metavar="PORT",
                     help="serve Prometheus metrics on http://HOST:PORT/metrics")
    srv.add_argument("--health-port", dest="health_port", type=int, metavar="PORT",
                     help="also serve grpc.health.v1 alone, plaintext, on this port (probes that speak no TLS)")
    _defaults_from_environment(srv)
    srv.set_defaults(func=cmd_serve)

    ver = sub.add_parser("verify", help="recompute the tensors of a .safetensors file from its recorded specs",
                         description="Exit 0 when every tensor matches, 1 when any differs, 2 for a bad file.")
    ver.add_argument("file", metavar="FILE.safetensors")
    ver.add_argument("--server", metavar="HOST:PORT", help="recompute on a weightinit server instead")
    ver.add_argument("--sample", metavar="K", help="check K elements per tensor by random access, not all")
    ver.add_argument("--seed", type=int, default=0, help="seed choosing the sampled elements (default 0)")
    ver.add_argument("--timeout", type=float, default=None, help="per-call deadline with --server, seconds")
    _add_connection_flags(ver)
    ver.set_defaults(func=cmd_verify)

    rep = sub.add_parser("report", help="signal propagation (forward/backward std per layer) of a JSON MLP/conv stack",
                         description="Builds the stack of ARCH.json, initializes it with each of its inits and prints "
                                     "per-layer forward activation std and backward gradient std (needs torch; "
                                     "-o needs matplotlib). See weightinit.torch.report for the format.")
    rep.add_argument("arch", metavar="ARCH.json")
    rep.add_argument("-o", "--output", metavar="REPORT.png", help="also plot to this PNG")
    rep.set_defaults(func=cmd_report)

    desc = sub.add_parser("describe", help="print schemes, dtypes, backends, limits and the algorithm version")
    desc.add_argument("--server", metavar="HOST[:PORT]", type=server_address,
                      help=f"ask a server instead of the local engine (port {DEFAULT_PORT} when omitted)")
    desc.add_argument("--backend", default=None, help="local backend to report as active")
    desc.add_argument("--timeout", type=float, default=10.0, help="deadline of the call to --server, seconds (10)")
    desc.add_argument("--json", action="store_true", help="machine-readable JSON")
    _add_connection_flags(desc)
    desc.set_defaults(func=cmd_describe)

    hlt = sub.add_parser("health", help="grpc.health.v1 check; exit 0 when SERVING")
    hlt.add_argument("--server", metavar="HOST[:PORT]", type=server_address, default=f"127.0.0.1:{DEFAULT_PORT}",
                     help=f"server to check (default 127.0.0.1:{DEFAULT_PORT})")
    hlt.add_argument("--service", default="", help="service name (default: the whole server)")
    hlt.add_argument("--timeout", type=float, default=5.0, help="deadline of the check, seconds (5)")
    _add_connection_flags(hlt)
    hlt.set_defaults(func=cmd_health)
    return parser


def _run(args) -> int:
    """The command, with every error of the :mod:`weightinit.errors` family as one line on stderr."""
    try:
        return args.func(args)
    except wi.LimitError as error:
        print(f"weightinit: over a limit: {error}", file=sys.stderr)
        return 2
    except wi.SpecError as error:
        print(f"weightinit: invalid spec: {error}", file=sys.stderr)
        return 2
    except UsageError as error:
        print(f"weightinit: error: {error}", file=sys.stderr)
        return 2
    except wi.ServiceError as error:
        where = f" ({args.server})" if getattr(args, "server", None) else ""
        print(f"weightinit: server error{where}: {error.code}: {error.details}", file=sys.stderr)
        return 1
    except wi.IntegrityError as error:
        print(f"weightinit: integrity check failed: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


def _raise_terminated(signum, frame):
    raise _Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    """Exit status: see the module docstring. Ctrl-C, SIGTERM and SIGHUP end with one line, no traceback."""
    previous = {}
    try:
        for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if signum is not None:
                try:
                    previous[signum] = signal.signal(signum, _raise_terminated)
                except ValueError:  # not the main thread (main() called from a test's thread)
                    pass
        parser = build_parser()
        args = parser.parse_args(argv)
        level = args.log_level or ("INFO" if args.command == "serve" else "WARNING")
        logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        if args.command == "serve":  # serve handles SIGTERM itself (graceful drain)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            previous.clear()
        return _run(args)
    except KeyboardInterrupt:
        end_progress_line()
        print("weightinit: interrupted", file=sys.stderr)
        return 130
    except _Terminated as stop:
        end_progress_line()
        print(f"weightinit: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
