"""Hand-rolled protobuf encoding of the two chunk messages, for speed.

A chunk is ~1 MiB of raw bytes plus a few small fields. Building a protobuf
message object, serializing it, parsing it and reading ``.data`` back costs
three extra 1 MiB copies and upb arena allocations per chunk, which halves
loopback throughput. These helpers produce and split the *standard* wire
encoding of ``GenerateResponse`` and ``GenerateModelResponse`` (any protobuf
runtime, grpcurl or the Node client parses them unchanged) with a single
copy on each side. ``tests/test_service_units.py`` checks them against the
protobuf runtime.

Also here: the stream digests both sides compute (``DIGEST_ALGORITHMS``: SHA-256, or BLAKE3
at several times its speed), negotiated by ``digest_algorithm`` in the request and header.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import NamedTuple

import blake3

from weightinit.errors import InvalidRequestError
from weightinit.v1 import initializer_service_pb2 as pb

_WIRE_VARINT = 0
_WIRE_I64 = 1
_WIRE_LEN = 2
_WIRE_I32 = 5


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative int64 values take ten bytes as in protobuf."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _tag(field_number: int, wire_type: int) -> bytes:
    return varint(field_number << 3 | wire_type)


def _len_field(field_number: int, payload_len: int) -> bytes:
    return _tag(field_number, _WIRE_LEN) + varint(payload_len)


class _Layout(NamedTuple):
    index: int | None  # tensor_index field number (model stream only)
    header: int
    offset: int
    data: int
    sha256: int
    digest: int


GENERATE = _Layout(None, 1, 2, 3, 4, 5)
MODEL = _Layout(1, 2, 3, 4, 5, 6)

assert [pb.GenerateResponse.DESCRIPTOR.fields_by_name[n].number
        for n in ("header", "offset", "data", "sha256", "digest")] == list(GENERATE[1:])
assert [pb.GenerateModelResponse.DESCRIPTOR.fields_by_name[n].number
        for n in ("tensor_index", "header", "offset", "data", "sha256", "digest")] == list(MODEL)

# -- digests ------------------------------------------------------------------

#: Digest algorithms by name, as ``Client(digest=...)`` and the CLI spell them.
DIGEST_ALGORITHMS = {"sha256": pb.DIGEST_ALGORITHM_SHA256, "blake3": pb.DIGEST_ALGORITHM_BLAKE3}
#: How messages spell them.
DIGEST_TITLES = {"sha256": "SHA-256", "blake3": "BLAKE3"}
#: What a client asks for unless told otherwise: BLAKE3 checks at several GB/s per core.
DEFAULT_DIGEST = "blake3"


def digest_name(value: int) -> str:
    """Wire enum -> name; UNSPECIFIED is SHA-256 (requests and servers from before the field)."""
    if value == pb.DIGEST_ALGORITHM_UNSPECIFIED:
        return "sha256"
    for name, number in DIGEST_ALGORITHMS.items():
        if number == value:
            return name
    raise InvalidRequestError("digest_algorithm", f"unknown digest algorithm {value}; this side knows "
                              f"{', '.join(DIGEST_ALGORITHMS)}")


def digest_value(name: str, argument: str = "digest") -> int:
    """Name -> wire enum; an unknown name raises naming ``argument``."""
    try:
        return DIGEST_ALGORITHMS[name]
    except (KeyError, TypeError):
        raise InvalidRequestError(argument, f"unknown digest algorithm {name!r}; choose one of "
                                            f"{', '.join(DIGEST_ALGORITHMS)}") from None


def new_hash(name: str):
    """A fresh hash object with ``update`` / ``digest``: ``hashlib.sha256`` or ``blake3.blake3``
    (one thread; BLAKE3's default 32-byte output)."""
    if name == "blake3":
        return blake3.blake3()
    if name == "sha256":
        return hashlib.sha256()
    raise InvalidRequestError("digest_algorithm", f"unknown digest algorithm {name!r}")


def encode_chunk(layout: _Layout, *, data=b"", offset: int = 0, header: bytes | None = None,
                 digest: bytes | None = None, algorithm: str = "sha256", index: int = 0) -> bytes:
    """Serialized response message; ``data`` is any contiguous buffer (a NumPy array works);
    ``digest`` (in ``algorithm``) goes in the digest field, and in ``sha256`` too for SHA-256.

    Fields are written in field-number order and zero/empty values omitted,
    exactly as the protobuf runtime would.
    """
    parts: list = []
    if layout.index is not None and index:
        parts.append(_tag(layout.index, _WIRE_VARINT) + varint(index))
    if header is not None:
        parts.append(_len_field(layout.header, len(header)))
        parts.append(header)
    if offset:
        parts.append(_tag(layout.offset, _WIRE_VARINT) + varint(offset))
    view = memoryview(data).cast("B")
    if view.nbytes:
        parts.append(_len_field(layout.data, view.nbytes))
        parts.append(view)
    if digest:
        parts.append(digest_field(layout, digest, algorithm))
    return b"".join(parts)


class ThreadedHasher:
    """Digest (``algorithm``: ``sha256`` or ``blake3``) of a byte stream whose large pieces are
    hashed on a helper thread.

    hashlib and blake3 release the GIL, so the hash of one chunk overlaps with generating,
    sending or copying the next. Pieces must stay unchanged until ``digest()``: pass immutable bytes
    (or views of them), never a buffer that is reused.

    The helper thread exists from the first large piece until ``digest()`` or ``close()``;
    whoever creates a hasher must call one of them on every exit path (``with`` does it).
    The thread holds only the queue and the hash, never the hasher, so a hasher that is
    dropped unclosed is still collected and its thread ended.
    """

    THREAD_MIN_BYTES = 256 * 1024
    #: Algorithms hashed in the caller's thread whatever the piece size: BLAKE3 is cheap enough
    #: that handing pieces to a thread costs more than it saves (benchmarks/receive_path.py:
    #: 1 MiB messages, 2 cores: 5 % more throughput and 5 % less CPU inline; SHA-256 8 % faster on the helper).
    INLINE_ALGORITHMS = frozenset({"blake3"})

    def __init__(self, algorithm: str = "sha256"):
        self.algorithm = algorithm
        self._hash = new_hash(algorithm)
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _work(pieces: queue.Queue, sha) -> None:
        while True:
            piece = pieces.get()
            if piece is None:
                return
            sha.update(piece)

    def update(self, piece) -> None:
        if self._queue is None and len(piece) >= self.THREAD_MIN_BYTES and self.algorithm not in self.INLINE_ALGORITHMS:
            self._queue = queue.Queue(maxsize=2)  # bounds the bytes kept alive for hashing
            self._thread = threading.Thread(target=self._work, args=(self._queue, self._hash),
                                            name="weightinit-digest", daemon=True)
            self._thread.start()
        if self._queue is not None:
            self._queue.put(piece)
        else:
            self._hash.update(piece)

    def close(self) -> None:
        """End the helper thread and drop the queued pieces; idempotent."""
        pieces, thread = self._queue, self._thread
        self._queue = self._thread = None
        if pieces is None:
            return
        try:
            while True:  # the pieces still queued will never be needed
                pieces.get_nowait()
        except queue.Empty:
            pass
        pieces.put(None)  # the worker takes at most one more piece, so there is room
        if thread is not threading.current_thread():
            thread.join()

    def digest(self) -> bytes:
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = self._thread = None
        return self._hash.digest()

    def __enter__(self) -> "ThreadedHasher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


def digest_field(layout: _Layout, digest: bytes, algorithm: str) -> bytes:
    """The encoded digest fields, to append to a message built without them (they are the last
    fields): ``sha256`` when the algorithm is SHA-256 (what clients from before ``digest`` read),
    then ``digest``."""
    tail = _len_field(layout.digest, len(digest)) + digest
    if algorithm == "sha256":
        tail = _len_field(layout.sha256, len(digest)) + digest + tail
    return tail


def _read_varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def split_data(buf: bytes, data_field: int) -> tuple[bytes, memoryview]:
    """Split a serialized message into (the other fields, re-serialized; the data field, zero-copy).

    The first part parses with the message class as usual; the second is a
    view into ``buf``. Handles any field order, repeats (last wins, as in
    protobuf) and unknown fields.
    """
    view = memoryview(buf)
    rest = []
    data = view[0:0]
    pos, end = 0, len(buf)
    while pos < end:
        begin = pos
        key, pos = _read_varint(buf, pos)
        field_number, wire_type = key >> 3, key & 7
        if wire_type == _WIRE_VARINT:
            _, pos = _read_varint(buf, pos)
        elif wire_type == _WIRE_LEN:
            length, pos = _read_varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated length-delimited field")
            if field_number == data_field:
                data = view[pos:pos + length]
                pos += length
                continue
            pos += length
        elif wire_type == _WIRE_I64:
            pos += 8
        elif wire_type == _WIRE_I32:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        rest.append(view[begin:pos])
    if pos != end:
        raise ValueError("truncated message")
    return b"".join(rest), data


def decode_generate(buf: bytes) -> tuple[pb.GenerateResponse, memoryview]:
    rest, data = split_data(buf, GENERATE.data)
    return pb.GenerateResponse.FromString(rest), data


def decode_model(buf: bytes) -> tuple[pb.GenerateModelResponse, memoryview]:
    rest, data = split_data(buf, MODEL.data)
    return pb.GenerateModelResponse.FromString(rest), data
