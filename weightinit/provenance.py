""".safetensors files that say how every tensor was made, and a check that they still are.

Metadata written by :func:`save_safetensors` and ``weightinit generate --manifest``
(``__metadata__`` values are strings, as safetensors requires):

- ``weightinit.algorithm_version``: the engine's algorithm version;
- ``weightinit.spec.<name>``: the tensor's resolved spec as JSON (``TensorSpec.to_dict``);
- ``weightinit.sha256.<name>``: SHA-256 of the tensor's little-endian bytes in the file;
- ``weightinit.recipe`` (when a recipe was expanded): the recipe with every resolved parameter.

:func:`verify_safetensors` recomputes each tensor (whole, or ``sample`` elements chosen by a seeded
generator, by random access) with the local engine or a server, and reports each ok or different.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from .backends import storage_dtype
from .engine.validate import spec_from_dict
from .spec import DEFAULT_LIMITS, Limits, SpecError, TensorSpec

SAFETENSORS_DTYPE = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16"}
SPEC_KEY = "weightinit.spec."
SHA256_KEY = "weightinit.sha256."
VERSION_KEY = "weightinit.algorithm_version"
RECIPE_KEY = "weightinit.recipe"
#: Placeholder of a digest not known yet when the header is written (same length as the hex digest).
PENDING_SHA256 = "0" * 64


class BadFileError(ValueError):
    """Not a readable .safetensors file with weightinit provenance (CLI exit status 2)."""


def safetensors_header(entries: list[tuple[str, str, list[int], int]], metadata: Mapping[str, str]) -> bytes:
    """8-byte little-endian header length, then the JSON header padded with spaces to 8 bytes.

    ``entries``: (name, dtype, shape, nbytes) in file order; data follows contiguously.
    """
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape, nbytes in entries:
        if dtype not in SAFETENSORS_DTYPE:
            raise SpecError("dtype", f"{dtype} has no safetensors dtype; write .npy or raw bytes instead",
                            tensor=name or None)
        header[name] = {"dtype": SAFETENSORS_DTYPE[dtype], "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def provenance_metadata(specs: Iterable[TensorSpec], digests: Mapping[str, str] | None = None,
                        recipe: Mapping | None = None, with_digests: bool = True) -> dict[str, str]:
    """The ``__metadata__`` entries for these specs (digests not given are placeholders for
    :func:`patch_digests`; none at all with ``with_digests=False``, e.g. for a pipe)."""
    from .engine.generate import ALGORITHM_VERSION

    meta = {VERSION_KEY: str(ALGORITHM_VERSION)}
    for spec in specs:
        meta[SPEC_KEY + spec.name] = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
        if with_digests:
            meta[SHA256_KEY + spec.name] = (digests or {}).get(spec.name, PENDING_SHA256)
    if recipe is not None:
        meta[RECIPE_KEY] = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return meta


def patch_digests(handle, header: bytes, digests: Mapping[str, str]) -> None:
    """Overwrite the placeholder digests of a header already written at the start of ``handle``
    (a seekable binary file); the header keeps its length."""
    text = header[8:].decode("ascii")  # json.dumps escapes everything else
    for name, hexdigest in digests.items():
        marker = json.dumps(SHA256_KEY + name) + ":" + json.dumps(PENDING_SHA256)
        at = text.find(marker)
        if at < 0:
            raise ValueError(f"no digest placeholder for {name!r}")
        text = text[:at] + json.dumps(SHA256_KEY + name) + ":" + json.dumps(hexdigest) + text[at + len(marker):]
    patched = header[:8] + text.encode("ascii")
    assert len(patched) == len(header)
    position = handle.tell()
    handle.seek(0)
    handle.write(patched)
    handle.seek(position)


def manifest_specs(manifest: Any, limits: Limits | None = DEFAULT_LIMITS) -> tuple[list[TensorSpec], dict | None]:
    """Specs of a manifest ``{"seed", "tensors": [spec ...]}``, of a recipe manifest
    ``{"recipe", "seed", "tensors": [{"name", "shape"} ...]}`` (expanded), or of a list of specs;
    and the resolved recipe (or None)."""
    recipe = None
    if isinstance(manifest, Mapping) and "recipe" in manifest:
        from .api.convert import recipe_to_expand
        from .recipes import expand_manifest

        if recipe_to_expand(manifest) is not None:
            manifest = expand_manifest(manifest)
        recipe = manifest["recipe"]  # recorded in the file's metadata either way
    if isinstance(manifest, Mapping):
        seed, tensors = manifest.get("seed") or 0, manifest.get("tensors")
        if isinstance(tensors, Mapping):
            tensors = [dict(spec, name=name) for name, spec in tensors.items()]
    else:
        seed, tensors = 0, manifest
    if tensors is None or isinstance(tensors, (str, bytes)):
        raise SpecError("manifest.tensors", "must be a list of tensor specs")
    specs, seen = [], set()
    for index, item in enumerate(tensors):
        try:
            if isinstance(item, Mapping) and item.get("seed") is None:
                item = dict(item, seed=seed)
            spec = spec_from_dict(item, limits)
        except SpecError as error:
            label = item.get("name") if isinstance(item, Mapping) and item.get("name") else f"manifest.tensors[{index}]"
            raise error.in_tensor(label, index) from None
        if not spec.name:
            raise SpecError("name", "every tensor needs a name in a .safetensors file",
                            tensor=f"manifest.tensors[{index}]", tensor_index=index)
        if spec.name in seen:
            raise SpecError("name", f"duplicate tensor name {spec.name!r}", tensor=spec.name, tensor_index=index)
        seen.add(spec.name)
        specs.append(spec)
    if not specs:
        raise SpecError("manifest.tensors", "must list at least one tensor")
    return specs, recipe


def save_safetensors(path: str | os.PathLike, manifest: Any, *, backend: str | None = None,
                     limits: Limits | None = DEFAULT_LIMITS, metadata: Mapping[str, str] | None = None) -> dict:
    """Generate every tensor of ``manifest`` with the local engine into one .safetensors file carrying
    each tensor's resolved spec, the algorithm version and each tensor's SHA-256. Streams chunk by
    chunk (memory O(chunk)); the digests are patched into the header at the end. Returns the metadata."""
    from .engine.generate import iter_chunks, to_le_bytes

    specs, recipe = manifest_specs(manifest, limits)
    meta = {"format": "pt", **(metadata or {}), **provenance_metadata(specs, recipe=recipe)}
    header = safetensors_header([(s.name, s.dtype, list(s.shape), s.nbytes) for s in specs], meta)
    digests = {}
    temp = f"{os.fspath(path)}.{os.getpid()}.part"
    try:
        with open(temp, "wb") as handle:
            handle.write(header)
            for spec in specs:
                hasher = hashlib.sha256()
                for _, chunk in iter_chunks(spec, backend=backend, limits=limits):
                    data = to_le_bytes(chunk)
                    hasher.update(data)
                    handle.write(data)
                digests[spec.name] = hasher.hexdigest()
            patch_digests(handle, header, digests)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return {**meta, **{SHA256_KEY + name: digest for name, digest in digests.items()}}


# ---------------------------------------------------------------------------
# reading and verifying


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict, int]:
    """(header dict, byte offset of the data). Raises :class:`BadFileError` on a malformed file."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise BadFileError(f"{path}: too short for a .safetensors file")
            length = int.from_bytes(prefix, "little")
            if length > min(size - 8, 100 << 20):
                raise BadFileError(f"{path}: header length {length} does not fit the file ({size} bytes)")
            header = json.loads(handle.read(length))
    except OSError as error:
        raise BadFileError(f"cannot read {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadFileError(f"{path}: the header is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise BadFileError(f"{path}: the header is not a JSON object")
    data_start = 8 + length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise BadFileError(f"{path}: tensor {name!r} has no data_offsets") from None
        if not 0 <= begin <= end <= size - data_start:
            raise BadFileError(f"{path}: tensor {name!r} lies outside the file")
    return header, data_start


@dataclass(frozen=True)
class TensorCheck:
    name: str
    ok: bool
    detail: str


def _tensor_specs(path, header: dict) -> list[tuple[str, TensorSpec, dict]]:
    meta = header.get("__metadata__") or {}
    if VERSION_KEY not in meta:
        raise BadFileError(f"{path}: no weightinit provenance in its metadata")
    from .engine.generate import ALGORITHM_VERSION

    if meta[VERSION_KEY] != str(ALGORITHM_VERSION):
        raise BadFileError(f"{path}: written by algorithm version {meta[VERSION_KEY]}, this engine is "
                           f"version {ALGORITHM_VERSION}")
    out = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        text = meta.get(SPEC_KEY + name)
        if text is None:
            raise BadFileError(f"{path}: tensor {name!r} has no recorded spec")
        try:
            spec = spec_from_dict(json.loads(text), limits=None)
        except (json.JSONDecodeError, SpecError) as error:
            raise BadFileError(f"{path}: the recorded spec of {name!r} is invalid: {error}") from None
        begin, end = entry["data_offsets"]
        if (SAFETENSORS_DTYPE[spec.dtype] != entry.get("dtype") or list(spec.shape) != entry.get("shape")
                or end - begin != spec.nbytes):
            raise BadFileError(f"{path}: tensor {name!r} does not have its spec's dtype, shape or size")
        out.append((name, spec, entry))
    return out


def _first_difference(got: np.ndarray, want: np.ndarray) -> int | None:
    """Index of the first element whose bits differ, or None."""
    different = np.flatnonzero(got.view(f"<u{got.itemsize}") != want.view(f"<u{want.itemsize}"))
    return int(different[0]) if different.size else None


def verify_safetensors(path: str | os.PathLike, *, client=None, sample: int | None = None,
                       seed: int = 0) -> list[TensorCheck]:
    """Recompute every tensor of a provenance-carrying .safetensors file and compare bytes.

    ``client``: a :class:`weightinit.client.Client` (server) or None (local engine).
    ``sample``: check only this many elements per tensor (all when >= its size), chosen by
    ``random.Random(seed)`` and fetched by random access; None checks every element and the stored
    SHA-256 as well.
    """
    header, data_start = read_safetensors_header(path)
    checks = []
    meta = header.get("__metadata__") or {}
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start) if os.path.getsize(path) > data_start \
        else np.zeros(0, np.uint8)
    for name, spec, entry in _tensor_specs(path, header):
        begin, end = entry["data_offsets"]
        stored = np.frombuffer(data[begin:end].tobytes(), dtype=storage_dtype(spec.dtype).newbyteorder("<"))
        if sample is None:
            fresh = _fetch(client, spec, 0, spec.numel)
            index = _first_difference(stored, fresh)
            if index is not None:
                checks.append(TensorCheck(name, False, f"element {index} differs"))
                continue
            recorded = meta.get(SHA256_KEY + name)
            digest = hashlib.sha256(stored.tobytes()).hexdigest()
            if recorded is not None and recorded != digest:
                checks.append(TensorCheck(name, False, f"recorded sha256 {recorded} but the data hashes to {digest}"))
                continue
            checks.append(TensorCheck(name, True, f"{spec.numel} elements"))
            continue
        picks = range(spec.numel) if sample >= spec.numel else sorted(
            random.Random(f"{seed}:{name}").sample(range(spec.numel), sample))
        bad = None
        for i in picks:
            if stored[i:i + 1].tobytes() != _fetch(client, spec, i, i + 1).tobytes():
                bad = i
                break
        checks.append(TensorCheck(name, bad is None, f"{len(picks)} sampled elements" if bad is None
                                  else f"element {bad} differs"))
    return checks


def _fetch(client, spec: TensorSpec, start: int, stop: int) -> np.ndarray:
    """Elements [start, stop) in storage dtype, little-endian."""
    if client is None:
        from .engine.generate import generate_raw

        raw = generate_raw(spec, start, stop, limits=None)
    else:
        raw = np.asarray(client.generate(spec.to_dict(), start=start, stop=stop))
        raw = raw.view(storage_dtype(spec.dtype)) if raw.dtype != storage_dtype(spec.dtype) else raw
    return raw.astype(raw.dtype.newbyteorder("<"), copy=False).reshape(-1)


__all__ = ["BadFileError", "PENDING_SHA256", "TensorCheck", "manifest_specs", "patch_digests", "provenance_metadata",
           "read_safetensors_header", "safetensors_header", "save_safetensors", "verify_safetensors"]
