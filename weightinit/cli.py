"""The ``weightinit`` command line: generate (locally or from a server), serve, describe, health.

    weightinit generate --scheme kaiming_normal --shape 512 256 --seed 7 --name fc1.weight -o fc1.npy
    weightinit generate --spec spec.json --server 127.0.0.1:50051 -o -
    weightinit generate --manifest model.json -o model.safetensors
    weightinit serve --port 0
    weightinit describe [--server HOST:PORT] [--json]

Exit status: 0 success, 1 failure (server unreachable, digest mismatch, I/O),
2 bad input (one line on stderr naming the field).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any, Iterable

import numpy as np

import weightinit as wi
from weightinit.engine.generate import check_chunk, check_range

PROGRESS_MIN_BYTES = 16 << 20
SAFETENSORS_DTYPE = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16"}


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


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


def _load_json(path: str, what: str) -> Any:
    try:
        with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as handle:
            return json.load(handle)
    except OSError as error:
        raise UsageError(f"cannot read {what} {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"{what} {path} is not valid JSON: {error}") from None


def spec_from_args(args: argparse.Namespace) -> dict:
    """The spec dict the generate flags describe (``--spec`` file first, flags override)."""
    spec: dict[str, Any] = {}
    if args.spec:
        loaded = _load_json(args.spec, "spec file")
        if not isinstance(loaded, dict):
            raise wi.SpecError("spec", "the spec file must hold a JSON object")
        spec.update(loaded)
    if args.scheme is not None:
        spec["scheme"] = args.scheme
    if args.shape is not None:
        spec["shape"] = [_int_arg(d, "shape") for d in args.shape]
    for key in ("dtype", "name", "layout"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    for key in ("seed", "stream", "in_axis", "out_axis"):
        if getattr(args, key) is not None:
            spec[key] = _int_arg(getattr(args, key), key)
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
            sys.stderr.write(f"\r[{bar:<30}] {fraction:6.1%} {self.done / 2**20:9.1f}/{self.total / 2**20:.1f} MiB "
                             f"{rate:7.1f} MB/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    import io

    if dtype == "bfloat16":  # bits, unless ml_dtypes gives numpy a bfloat16 (it records '<V2' then)
        from weightinit.client import user_array

        descr = np.lib.format.dtype_to_descr(user_array(np.empty(0, np.uint16), dtype).dtype)
    else:
        descr = np.lib.format.dtype_to_descr(np.dtype(dtype).newbyteorder("<"))
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def safetensors_header(entries: list[tuple[str, str, list[int], int]], metadata: dict[str, str]) -> bytes:
    """8-byte little-endian header length, then the JSON header padded with spaces to 8 bytes.

    ``entries``: (name, dtype, shape, nbytes) in file order; data follows contiguously.
    """
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": SAFETENSORS_DTYPE[dtype], "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


class _Output:
    """A destination file written to a temporary name and renamed on success; or stdout."""

    def __init__(self, path: str):
        self.path = path
        if path == "-":
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
              "retry_seconds": args.retry_seconds}
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


def cmd_generate(args) -> int:
    if args.output is None:
        raise UsageError("-o OUT is required (.npy, .safetensors, or - for raw bytes on stdout)")
    fmt = _format_of(args.output)
    client = _client(args)
    progress = sys.stderr.isatty() and not args.quiet
    chunk_elements = check_chunk(_int_arg(args.chunk_elements, "chunk_elements")) if args.chunk_elements else None
    if args.manifest:
        return _generate_manifest(args, client, fmt, chunk_elements, progress)
    spec_dict = spec_from_args(args)
    spec = wi.spec_from_dict(spec_dict, limits=None if args.server else wi.DEFAULT_LIMITS)
    start, stop = _parse_range(args.range)
    first, last = check_range(spec, start, stop)
    shape = spec.shape if args.range is None else (last - first,)
    nbytes = (last - first) * spec.itemsize
    chunks = client.iter_chunks(spec_dict, start=start, stop=stop, chunk_elements=chunk_elements)
    out = _Output(args.output)
    try:
        if fmt == "npy":
            out.write(_npy_header(tuple(shape), spec.dtype))
        elif fmt == "safetensors":
            name = spec.name or "tensor"
            out.write(safetensors_header([(name, spec.dtype, list(shape), nbytes)],
                                         _metadata({"weightinit.spec": json.dumps(spec.to_dict(), sort_keys=True)})))
        _write_stream(out, chunks, nbytes, progress)
        out.commit()
    except BaseException:
        out.abort()
        raise
    return 0


def _generate_manifest(args, client, fmt: str, chunk_elements: int | None, progress: bool) -> int:
    from weightinit.client import LocalClient

    if fmt not in ("safetensors",) and args.output != "-":
        raise UsageError("--manifest writes one .safetensors file (or - for safetensors on stdout)")
    if args.scheme or args.spec or args.shape:
        raise UsageError("--manifest cannot be combined with --scheme, --shape or --spec")
    manifest = _load_json(args.manifest, "manifest")
    specs = LocalClient(limits=None)._manifest_specs(manifest)  # validates and gives the header's shapes
    entries = [(s.name, s.dtype, list(s.shape), s.nbytes) for s in specs]
    if any(not s.name for s in specs):
        raise wi.SpecError("manifest.tensors", "every tensor needs a name in a .safetensors file")
    out = _Output(args.output)
    try:
        out.write(safetensors_header(entries, _metadata({"weightinit.seed": str(manifest.get("seed", 0))})))
        _write_stream(out, client.iter_model_chunks(manifest, chunk_elements=chunk_elements),
                      sum(e[3] for e in entries), progress)
        out.commit()
    except BaseException:
        out.abort()
        raise
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
    print("dtypes: " + ", ".join(d.replace("DATA_TYPE_", "") for d in info["dtypes"]))
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
    import grpc
    from weightinit.client import Client

    try:
        with Client(args.server, timeout=args.timeout, max_attempts=1, **_connection_kwargs(args)) as client:
            status = client.health(args.service)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="weightinit", description="Reproducible neural-network weight initialization.")
    parser.add_argument("--version", action="version", version=f"weightinit {wi.__version__} "
                                                                f"(algorithm v{wi.ALGORITHM_VERSION})")
    parser.add_argument("--log-level", default=None,
                        help="logging level (default INFO for serve, WARNING otherwise)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    gen = sub.add_parser("generate", help="generate a tensor (or a whole manifest) to a file or stdout",
                         description="Generate a tensor with the in-process engine, or fetch it from a server "
                                     "with --server (same bytes). bfloat16 goes into .npy as uint16 bits "
                                     "(as ml_dtypes' '<V2' when ml_dtypes is installed).")
    gen.add_argument("--scheme", help="scheme name, e.g. kaiming_normal (see `weightinit describe`)")
    gen.add_argument("--shape", nargs="+", metavar="D", help="dimensions, e.g. --shape 512 256")
    gen.add_argument("--dtype", help="float32 (default), float64, float16 or bfloat16")
    gen.add_argument("--seed", help="uint64 seed (default 0)")
    gen.add_argument("--name", help="tensor name; the random stream derives from it (default empty)")
    gen.add_argument("--layout", help="torch (default), keras or axes")
    gen.add_argument("--in-axis", dest="in_axis", help="input axis for --layout axes")
    gen.add_argument("--out-axis", dest="out_axis", help="output axis for --layout axes")
    gen.add_argument("--batch-axis", dest="batch_axis", nargs="+", metavar="AXIS", help="batch axes (axes layout)")
    gen.add_argument("--stream", help="explicit uint64 stream id instead of one derived from --name")
    gen.add_argument("--param", action="append", nargs="+", metavar="KEY=VALUE",
                     help="scheme parameter, e.g. --param mode=fan_out nonlinearity=relu")
    gen.add_argument("--spec", metavar="SPEC.json", help="spec as JSON (flags given as well override it)")
    gen.add_argument("--manifest", metavar="FILE.json",
                     help='model manifest {"seed": 7, "tensors": [spec, ...]} -> one .safetensors')
    gen.add_argument("--range", metavar="START:STOP", help="only the flat elements [START, STOP)")
    gen.add_argument("--chunk-elements", dest="chunk_elements", metavar="N", help="elements per chunk")
    gen.add_argument("-o", "--output", metavar="OUT", help="OUT.npy, OUT.safetensors, OUT.bin, or - (raw bytes)")
    gen.add_argument("--server", metavar="HOST:PORT", help="fetch from a weightinit server instead")
    gen.add_argument("--backend", default=None, help="local backend: auto (default), numpy, numba, cupy")
    gen.add_argument("--timeout", type=float, default=None, help="per-call deadline with --server, seconds")
    gen.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_connection_flags(gen)
    gen.set_defaults(func=cmd_generate)

    srv = sub.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT")
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

    desc = sub.add_parser("describe", help="print schemes, dtypes, backends, limits and the algorithm version")
    desc.add_argument("--server", metavar="HOST:PORT", help="ask a server instead of the local engine")
    desc.add_argument("--backend", default=None, help="local backend to report as active")
    desc.add_argument("--timeout", type=float, default=10.0)
    desc.add_argument("--json", action="store_true", help="machine-readable JSON")
    _add_connection_flags(desc)
    desc.set_defaults(func=cmd_describe)

    hlt = sub.add_parser("health", help="grpc.health.v1 check; exit 0 when SERVING")
    hlt.add_argument("--server", metavar="HOST:PORT", default="127.0.0.1:50051")
    hlt.add_argument("--service", default="", help="service name (default: the whole server)")
    hlt.add_argument("--timeout", type=float, default=5.0)
    _add_connection_flags(hlt)
    hlt.set_defaults(func=cmd_health)
    return parser


def _rpc_failure(error) -> int:
    import grpc
    from weightinit.client import field_violations

    violations = field_violations(error)
    code = error.code()
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED) and violations:
        v = violations[0]
        label = "invalid spec" if code == grpc.StatusCode.INVALID_ARGUMENT else "over a server limit"
        print(f"weightinit: {label}: {v.field}: {v.description}", file=sys.stderr)
        return 2
    print(f"weightinit: server error {code.name}: {error.details()}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or ("INFO" if args.command == "serve" else "WARNING")
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    import grpc
    from weightinit.client import IntegrityError

    try:
        return args.func(args)
    except wi.SpecError as error:
        print(f"weightinit: invalid spec: {error.field}: {error.message}", file=sys.stderr)
        return 2
    except UsageError as error:
        print(f"weightinit: error: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        return _rpc_failure(error)
    except IntegrityError as error:
        print(f"weightinit: integrity check failed: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
