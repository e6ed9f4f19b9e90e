from weightinit.v1 import spec_pb2 as _spec_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DigestAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIGEST_ALGORITHM_UNSPECIFIED: _ClassVar[DigestAlgorithm]
    DIGEST_ALGORITHM_SHA256: _ClassVar[DigestAlgorithm]
    DIGEST_ALGORITHM_BLAKE3: _ClassVar[DigestAlgorithm]

class ParamType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARAM_TYPE_UNSPECIFIED: _ClassVar[ParamType]
    PARAM_TYPE_FLOAT: _ClassVar[ParamType]
    PARAM_TYPE_INT: _ClassVar[ParamType]
    PARAM_TYPE_STR: _ClassVar[ParamType]
    PARAM_TYPE_INT_LIST: _ClassVar[ParamType]
DIGEST_ALGORITHM_UNSPECIFIED: DigestAlgorithm
DIGEST_ALGORITHM_SHA256: DigestAlgorithm
DIGEST_ALGORITHM_BLAKE3: DigestAlgorithm
PARAM_TYPE_UNSPECIFIED: ParamType
PARAM_TYPE_FLOAT: ParamType
PARAM_TYPE_INT: ParamType
PARAM_TYPE_STR: ParamType
PARAM_TYPE_INT_LIST: ParamType

class GenerateRequest(_message.Message):
    __slots__ = ("spec", "start", "stop", "chunk_elements", "hash_from", "digest_only", "region", "digest_algorithm")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    HASH_FROM_FIELD_NUMBER: _ClassVar[int]
    DIGEST_ONLY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    spec: _spec_pb2.TensorSpec
    start: int
    stop: int
    chunk_elements: int
    hash_from: int
    digest_only: bool
    region: _containers.RepeatedCompositeFieldContainer[DimRange]
    digest_algorithm: DigestAlgorithm
    def __init__(self, spec: _Optional[_Union[_spec_pb2.TensorSpec, _Mapping]] = ..., start: _Optional[int] = ..., stop: _Optional[int] = ..., chunk_elements: _Optional[int] = ..., hash_from: _Optional[int] = ..., digest_only: _Optional[bool] = ..., region: _Optional[_Iterable[_Union[DimRange, _Mapping]]] = ..., digest_algorithm: _Optional[_Union[DigestAlgorithm, str]] = ...) -> None: ...

class DimRange(_message.Message):
    __slots__ = ("start", "stop")
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    start: int
    stop: int
    def __init__(self, start: _Optional[int] = ..., stop: _Optional[int] = ...) -> None: ...

class TensorHeader(_message.Message):
    __slots__ = ("name", "shape", "dtype", "element_count", "start", "stop", "byte_count", "item_size", "algorithm_version", "seed", "stream", "hash_from", "backend", "resolved_spec_json", "region", "digest_algorithm")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    BYTE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ITEM_SIZE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    HASH_FROM_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: _spec_pb2.DataType
    element_count: int
    start: int
    stop: int
    byte_count: int
    item_size: int
    algorithm_version: int
    seed: int
    stream: int
    hash_from: int
    backend: str
    resolved_spec_json: str
    region: _containers.RepeatedCompositeFieldContainer[DimRange]
    digest_algorithm: DigestAlgorithm
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[_spec_pb2.DataType, str]] = ..., element_count: _Optional[int] = ..., start: _Optional[int] = ..., stop: _Optional[int] = ..., byte_count: _Optional[int] = ..., item_size: _Optional[int] = ..., algorithm_version: _Optional[int] = ..., seed: _Optional[int] = ..., stream: _Optional[int] = ..., hash_from: _Optional[int] = ..., backend: _Optional[str] = ..., resolved_spec_json: _Optional[str] = ..., region: _Optional[_Iterable[_Union[DimRange, _Mapping]]] = ..., digest_algorithm: _Optional[_Union[DigestAlgorithm, str]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("header", "offset", "data", "sha256", "digest")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    header: TensorHeader
    offset: int
    data: bytes
    sha256: bytes
    digest: bytes
    def __init__(self, header: _Optional[_Union[TensorHeader, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., sha256: _Optional[bytes] = ..., digest: _Optional[bytes] = ...) -> None: ...

class GenerateModelRequest(_message.Message):
    __slots__ = ("manifest", "chunk_elements", "digest_algorithm")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    manifest: _spec_pb2.ModelManifest
    chunk_elements: int
    digest_algorithm: DigestAlgorithm
    def __init__(self, manifest: _Optional[_Union[_spec_pb2.ModelManifest, _Mapping]] = ..., chunk_elements: _Optional[int] = ..., digest_algorithm: _Optional[_Union[DigestAlgorithm, str]] = ...) -> None: ...

class GenerateModelResponse(_message.Message):
    __slots__ = ("tensor_index", "header", "offset", "data", "sha256", "digest")
    TENSOR_INDEX_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    tensor_index: int
    header: TensorHeader
    offset: int
    data: bytes
    sha256: bytes
    digest: bytes
    def __init__(self, tensor_index: _Optional[int] = ..., header: _Optional[_Union[TensorHeader, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., sha256: _Optional[bytes] = ..., digest: _Optional[bytes] = ...) -> None: ...

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ParamInfo(_message.Message):
    __slots__ = ("name", "type", "required", "default_json", "choices", "doc")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_JSON_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    DOC_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ParamType
    required: bool
    default_json: str
    choices: _containers.RepeatedScalarFieldContainer[str]
    doc: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ParamType, str]] = ..., required: _Optional[bool] = ..., default_json: _Optional[str] = ..., choices: _Optional[_Iterable[str]] = ..., doc: _Optional[str] = ...) -> None: ...

class SchemeInfo(_message.Message):
    __slots__ = ("name", "doc", "params")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOC_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    doc: str
    params: _containers.RepeatedCompositeFieldContainer[ParamInfo]
    def __init__(self, name: _Optional[str] = ..., doc: _Optional[str] = ..., params: _Optional[_Iterable[_Union[ParamInfo, _Mapping]]] = ...) -> None: ...

class BackendInfo(_message.Message):
    __slots__ = ("name", "available", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., available: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ("max_elements_per_request", "max_elements_per_model", "max_tensors_per_model", "max_concurrent_streams", "max_dense_elements", "max_chunk_bytes", "max_hashed_elements", "max_chunks_per_stream", "max_dense_work", "max_dense_work_per_model", "stream_idle_timeout_seconds", "max_deadline_seconds", "max_streams_per_identity")
    MAX_ELEMENTS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_ELEMENTS_PER_MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_TENSORS_PER_MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_DENSE_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_HASHED_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNKS_PER_STREAM_FIELD_NUMBER: _ClassVar[int]
    MAX_DENSE_WORK_FIELD_NUMBER: _ClassVar[int]
    MAX_DENSE_WORK_PER_MODEL_FIELD_NUMBER: _ClassVar[int]
    STREAM_IDLE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_PER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    max_elements_per_request: int
    max_elements_per_model: int
    max_tensors_per_model: int
    max_concurrent_streams: int
    max_dense_elements: int
    max_chunk_bytes: int
    max_hashed_elements: int
    max_chunks_per_stream: int
    max_dense_work: int
    max_dense_work_per_model: int
    stream_idle_timeout_seconds: float
    max_deadline_seconds: float
    max_streams_per_identity: int
    def __init__(self, max_elements_per_request: _Optional[int] = ..., max_elements_per_model: _Optional[int] = ..., max_tensors_per_model: _Optional[int] = ..., max_concurrent_streams: _Optional[int] = ..., max_dense_elements: _Optional[int] = ..., max_chunk_bytes: _Optional[int] = ..., max_hashed_elements: _Optional[int] = ..., max_chunks_per_stream: _Optional[int] = ..., max_dense_work: _Optional[int] = ..., max_dense_work_per_model: _Optional[int] = ..., stream_idle_timeout_seconds: _Optional[float] = ..., max_deadline_seconds: _Optional[float] = ..., max_streams_per_identity: _Optional[int] = ...) -> None: ...

class GetCapabilitiesResponse(_message.Message):
    __slots__ = ("algorithm_version", "server_version", "schemes", "dtypes", "layouts", "backends", "active_backend", "active_device", "limits", "default_chunk_bytes", "digest_algorithms")
    ALGORITHM_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMES_FIELD_NUMBER: _ClassVar[int]
    DTYPES_FIELD_NUMBER: _ClassVar[int]
    LAYOUTS_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_DEVICE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_ALGORITHMS_FIELD_NUMBER: _ClassVar[int]
    algorithm_version: int
    server_version: str
    schemes: _containers.RepeatedCompositeFieldContainer[SchemeInfo]
    dtypes: _containers.RepeatedScalarFieldContainer[_spec_pb2.DataType]
    layouts: _containers.RepeatedScalarFieldContainer[_spec_pb2.Layout]
    backends: _containers.RepeatedCompositeFieldContainer[BackendInfo]
    active_backend: str
    active_device: str
    limits: ServerLimits
    default_chunk_bytes: int
    digest_algorithms: _containers.RepeatedScalarFieldContainer[DigestAlgorithm]
    def __init__(self, algorithm_version: _Optional[int] = ..., server_version: _Optional[str] = ..., schemes: _Optional[_Iterable[_Union[SchemeInfo, _Mapping]]] = ..., dtypes: _Optional[_Iterable[_Union[_spec_pb2.DataType, str]]] = ..., layouts: _Optional[_Iterable[_Union[_spec_pb2.Layout, str]]] = ..., backends: _Optional[_Iterable[_Union[BackendInfo, _Mapping]]] = ..., active_backend: _Optional[str] = ..., active_device: _Optional[str] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., default_chunk_bytes: _Optional[int] = ..., digest_algorithms: _Optional[_Iterable[_Union[DigestAlgorithm, str]]] = ...) -> None: ...
