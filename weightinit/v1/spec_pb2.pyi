from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DATA_TYPE_FP32: _ClassVar[DataType]
    DATA_TYPE_FP64: _ClassVar[DataType]
    DATA_TYPE_FP16: _ClassVar[DataType]
    DATA_TYPE_BF16: _ClassVar[DataType]
    DATA_TYPE_COMPLEX64: _ClassVar[DataType]
    DATA_TYPE_COMPLEX128: _ClassVar[DataType]

class Layout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LAYOUT_UNSPECIFIED: _ClassVar[Layout]
    LAYOUT_TORCH: _ClassVar[Layout]
    LAYOUT_KERAS: _ClassVar[Layout]
    LAYOUT_AXES: _ClassVar[Layout]

class FanMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAN_MODE_UNSPECIFIED: _ClassVar[FanMode]
    FAN_MODE_FAN_IN: _ClassVar[FanMode]
    FAN_MODE_FAN_OUT: _ClassVar[FanMode]
    FAN_MODE_FAN_AVG: _ClassVar[FanMode]
    FAN_MODE_FAN_GEO_AVG: _ClassVar[FanMode]

class Nonlinearity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NONLINEARITY_UNSPECIFIED: _ClassVar[Nonlinearity]
    NONLINEARITY_LINEAR: _ClassVar[Nonlinearity]
    NONLINEARITY_CONV1D: _ClassVar[Nonlinearity]
    NONLINEARITY_CONV2D: _ClassVar[Nonlinearity]
    NONLINEARITY_CONV3D: _ClassVar[Nonlinearity]
    NONLINEARITY_CONV_TRANSPOSE1D: _ClassVar[Nonlinearity]
    NONLINEARITY_CONV_TRANSPOSE2D: _ClassVar[Nonlinearity]
    NONLINEARITY_CONV_TRANSPOSE3D: _ClassVar[Nonlinearity]
    NONLINEARITY_SIGMOID: _ClassVar[Nonlinearity]
    NONLINEARITY_TANH: _ClassVar[Nonlinearity]
    NONLINEARITY_RELU: _ClassVar[Nonlinearity]
    NONLINEARITY_LEAKY_RELU: _ClassVar[Nonlinearity]
    NONLINEARITY_SELU: _ClassVar[Nonlinearity]

class Distribution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISTRIBUTION_UNSPECIFIED: _ClassVar[Distribution]
    DISTRIBUTION_TRUNCATED_NORMAL: _ClassVar[Distribution]
    DISTRIBUTION_NORMAL: _ClassVar[Distribution]
    DISTRIBUTION_UNTRUNCATED_NORMAL: _ClassVar[Distribution]
    DISTRIBUTION_UNIFORM: _ClassVar[Distribution]

class TruncationBounds(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUNCATION_BOUNDS_UNSPECIFIED: _ClassVar[TruncationBounds]
    TRUNCATION_BOUNDS_ABSOLUTE: _ClassVar[TruncationBounds]
    TRUNCATION_BOUNDS_STD: _ClassVar[TruncationBounds]
DATA_TYPE_UNSPECIFIED: DataType
DATA_TYPE_FP32: DataType
DATA_TYPE_FP64: DataType
DATA_TYPE_FP16: DataType
DATA_TYPE_BF16: DataType
DATA_TYPE_COMPLEX64: DataType
DATA_TYPE_COMPLEX128: DataType
LAYOUT_UNSPECIFIED: Layout
LAYOUT_TORCH: Layout
LAYOUT_KERAS: Layout
LAYOUT_AXES: Layout
FAN_MODE_UNSPECIFIED: FanMode
FAN_MODE_FAN_IN: FanMode
FAN_MODE_FAN_OUT: FanMode
FAN_MODE_FAN_AVG: FanMode
FAN_MODE_FAN_GEO_AVG: FanMode
NONLINEARITY_UNSPECIFIED: Nonlinearity
NONLINEARITY_LINEAR: Nonlinearity
NONLINEARITY_CONV1D: Nonlinearity
NONLINEARITY_CONV2D: Nonlinearity
NONLINEARITY_CONV3D: Nonlinearity
NONLINEARITY_CONV_TRANSPOSE1D: Nonlinearity
NONLINEARITY_CONV_TRANSPOSE2D: Nonlinearity
NONLINEARITY_CONV_TRANSPOSE3D: Nonlinearity
NONLINEARITY_SIGMOID: Nonlinearity
NONLINEARITY_TANH: Nonlinearity
NONLINEARITY_RELU: Nonlinearity
NONLINEARITY_LEAKY_RELU: Nonlinearity
NONLINEARITY_SELU: Nonlinearity
DISTRIBUTION_UNSPECIFIED: Distribution
DISTRIBUTION_TRUNCATED_NORMAL: Distribution
DISTRIBUTION_NORMAL: Distribution
DISTRIBUTION_UNTRUNCATED_NORMAL: Distribution
DISTRIBUTION_UNIFORM: Distribution
TRUNCATION_BOUNDS_UNSPECIFIED: TruncationBounds
TRUNCATION_BOUNDS_ABSOLUTE: TruncationBounds
TRUNCATION_BOUNDS_STD: TruncationBounds

class AxisList(_message.Message):
    __slots__ = ("axes",)
    AXES_FIELD_NUMBER: _ClassVar[int]
    axes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, axes: _Optional[_Iterable[int]] = ...) -> None: ...

class TensorSpec(_message.Message):
    __slots__ = ("name", "shape", "dtype", "seed", "layout", "in_axis", "out_axis", "batch_axis", "stream", "zero_rows", "scale", "in_axes", "out_axes", "zeros", "ones", "constant", "uniform", "normal", "truncated_normal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "lecun_uniform", "lecun_normal", "variance_scaling", "orthogonal", "sparse", "eye", "dirac", "delta_orthogonal", "torch_default", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    IN_AXIS_FIELD_NUMBER: _ClassVar[int]
    OUT_AXIS_FIELD_NUMBER: _ClassVar[int]
    BATCH_AXIS_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ZERO_ROWS_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    IN_AXES_FIELD_NUMBER: _ClassVar[int]
    OUT_AXES_FIELD_NUMBER: _ClassVar[int]
    ZEROS_FIELD_NUMBER: _ClassVar[int]
    ONES_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_FIELD_NUMBER: _ClassVar[int]
    UNIFORM_FIELD_NUMBER: _ClassVar[int]
    NORMAL_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_NORMAL_FIELD_NUMBER: _ClassVar[int]
    XAVIER_UNIFORM_FIELD_NUMBER: _ClassVar[int]
    XAVIER_NORMAL_FIELD_NUMBER: _ClassVar[int]
    KAIMING_UNIFORM_FIELD_NUMBER: _ClassVar[int]
    KAIMING_NORMAL_FIELD_NUMBER: _ClassVar[int]
    LECUN_UNIFORM_FIELD_NUMBER: _ClassVar[int]
    LECUN_NORMAL_FIELD_NUMBER: _ClassVar[int]
    VARIANCE_SCALING_FIELD_NUMBER: _ClassVar[int]
    ORTHOGONAL_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    EYE_FIELD_NUMBER: _ClassVar[int]
    DIRAC_FIELD_NUMBER: _ClassVar[int]
    DELTA_ORTHOGONAL_FIELD_NUMBER: _ClassVar[int]
    TORCH_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    GLOROT_UNIFORM_FIELD_NUMBER: _ClassVar[int]
    GLOROT_NORMAL_FIELD_NUMBER: _ClassVar[int]
    HE_UNIFORM_FIELD_NUMBER: _ClassVar[int]
    HE_NORMAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DataType
    seed: int
    layout: Layout
    in_axis: int
    out_axis: int
    batch_axis: _containers.RepeatedScalarFieldContainer[int]
    stream: int
    zero_rows: _containers.RepeatedScalarFieldContainer[int]
    scale: float
    in_axes: AxisList
    out_axes: AxisList
    zeros: ZerosParams
    ones: OnesParams
    constant: ConstantParams
    uniform: UniformParams
    normal: NormalParams
    truncated_normal: TruncatedNormalParams
    xavier_uniform: XavierUniformParams
    xavier_normal: XavierNormalParams
    kaiming_uniform: KaimingUniformParams
    kaiming_normal: KaimingNormalParams
    lecun_uniform: LecunUniformParams
    lecun_normal: LecunNormalParams
    variance_scaling: VarianceScalingParams
    orthogonal: OrthogonalParams
    sparse: SparseParams
    eye: EyeParams
    dirac: DiracParams
    delta_orthogonal: DeltaOrthogonalParams
    torch_default: TorchDefaultParams
    glorot_uniform: GlorotUniformParams
    glorot_normal: GlorotNormalParams
    he_uniform: HeUniformParams
    he_normal: HeNormalParams
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DataType, str]] = ..., seed: _Optional[int] = ..., layout: _Optional[_Union[Layout, str]] = ..., in_axis: _Optional[int] = ..., out_axis: _Optional[int] = ..., batch_axis: _Optional[_Iterable[int]] = ..., stream: _Optional[int] = ..., zero_rows: _Optional[_Iterable[int]] = ..., scale: _Optional[float] = ..., in_axes: _Optional[_Union[AxisList, _Mapping]] = ..., out_axes: _Optional[_Union[AxisList, _Mapping]] = ..., zeros: _Optional[_Union[ZerosParams, _Mapping]] = ..., ones: _Optional[_Union[OnesParams, _Mapping]] = ..., constant: _Optional[_Union[ConstantParams, _Mapping]] = ..., uniform: _Optional[_Union[UniformParams, _Mapping]] = ..., normal: _Optional[_Union[NormalParams, _Mapping]] = ..., truncated_normal: _Optional[_Union[TruncatedNormalParams, _Mapping]] = ..., xavier_uniform: _Optional[_Union[XavierUniformParams, _Mapping]] = ..., xavier_normal: _Optional[_Union[XavierNormalParams, _Mapping]] = ..., kaiming_uniform: _Optional[_Union[KaimingUniformParams, _Mapping]] = ..., kaiming_normal: _Optional[_Union[KaimingNormalParams, _Mapping]] = ..., lecun_uniform: _Optional[_Union[LecunUniformParams, _Mapping]] = ..., lecun_normal: _Optional[_Union[LecunNormalParams, _Mapping]] = ..., variance_scaling: _Optional[_Union[VarianceScalingParams, _Mapping]] = ..., orthogonal: _Optional[_Union[OrthogonalParams, _Mapping]] = ..., sparse: _Optional[_Union[SparseParams, _Mapping]] = ..., eye: _Optional[_Union[EyeParams, _Mapping]] = ..., dirac: _Optional[_Union[DiracParams, _Mapping]] = ..., delta_orthogonal: _Optional[_Union[DeltaOrthogonalParams, _Mapping]] = ..., torch_default: _Optional[_Union[TorchDefaultParams, _Mapping]] = ..., glorot_uniform: _Optional[_Union[GlorotUniformParams, _Mapping]] = ..., glorot_normal: _Optional[_Union[GlorotNormalParams, _Mapping]] = ..., he_uniform: _Optional[_Union[HeUniformParams, _Mapping]] = ..., he_normal: _Optional[_Union[HeNormalParams, _Mapping]] = ...) -> None: ...

class ZerosParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OnesParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConstantParams(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: float
    def __init__(self, value: _Optional[float] = ...) -> None: ...

class UniformParams(_message.Message):
    __slots__ = ("low", "high")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class NormalParams(_message.Message):
    __slots__ = ("mean", "std")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    mean: float
    std: float
    def __init__(self, mean: _Optional[float] = ..., std: _Optional[float] = ...) -> None: ...

class TruncatedNormalParams(_message.Message):
    __slots__ = ("mean", "std", "lower", "upper", "bounds")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    mean: float
    std: float
    lower: float
    upper: float
    bounds: TruncationBounds
    def __init__(self, mean: _Optional[float] = ..., std: _Optional[float] = ..., lower: _Optional[float] = ..., upper: _Optional[float] = ..., bounds: _Optional[_Union[TruncationBounds, str]] = ...) -> None: ...

class XavierUniformParams(_message.Message):
    __slots__ = ("gain", "nonlinearity", "a")
    GAIN_FIELD_NUMBER: _ClassVar[int]
    NONLINEARITY_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    gain: float
    nonlinearity: Nonlinearity
    a: float
    def __init__(self, gain: _Optional[float] = ..., nonlinearity: _Optional[_Union[Nonlinearity, str]] = ..., a: _Optional[float] = ...) -> None: ...

class XavierNormalParams(_message.Message):
    __slots__ = ("gain", "nonlinearity", "a")
    GAIN_FIELD_NUMBER: _ClassVar[int]
    NONLINEARITY_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    gain: float
    nonlinearity: Nonlinearity
    a: float
    def __init__(self, gain: _Optional[float] = ..., nonlinearity: _Optional[_Union[Nonlinearity, str]] = ..., a: _Optional[float] = ...) -> None: ...

class KaimingUniformParams(_message.Message):
    __slots__ = ("a", "mode", "nonlinearity")
    A_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    NONLINEARITY_FIELD_NUMBER: _ClassVar[int]
    a: float
    mode: FanMode
    nonlinearity: Nonlinearity
    def __init__(self, a: _Optional[float] = ..., mode: _Optional[_Union[FanMode, str]] = ..., nonlinearity: _Optional[_Union[Nonlinearity, str]] = ...) -> None: ...

class KaimingNormalParams(_message.Message):
    __slots__ = ("a", "mode", "nonlinearity")
    A_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    NONLINEARITY_FIELD_NUMBER: _ClassVar[int]
    a: float
    mode: FanMode
    nonlinearity: Nonlinearity
    def __init__(self, a: _Optional[float] = ..., mode: _Optional[_Union[FanMode, str]] = ..., nonlinearity: _Optional[_Union[Nonlinearity, str]] = ...) -> None: ...

class LecunUniformParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LecunNormalParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VarianceScalingParams(_message.Message):
    __slots__ = ("scale", "mode", "distribution")
    SCALE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    scale: float
    mode: FanMode
    distribution: Distribution
    def __init__(self, scale: _Optional[float] = ..., mode: _Optional[_Union[FanMode, str]] = ..., distribution: _Optional[_Union[Distribution, str]] = ...) -> None: ...

class OrthogonalParams(_message.Message):
    __slots__ = ("gain", "nonlinearity", "a", "column_axis")
    GAIN_FIELD_NUMBER: _ClassVar[int]
    NONLINEARITY_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    COLUMN_AXIS_FIELD_NUMBER: _ClassVar[int]
    gain: float
    nonlinearity: Nonlinearity
    a: float
    column_axis: int
    def __init__(self, gain: _Optional[float] = ..., nonlinearity: _Optional[_Union[Nonlinearity, str]] = ..., a: _Optional[float] = ..., column_axis: _Optional[int] = ...) -> None: ...

class SparseParams(_message.Message):
    __slots__ = ("sparsity", "std")
    SPARSITY_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    sparsity: float
    std: float
    def __init__(self, sparsity: _Optional[float] = ..., std: _Optional[float] = ...) -> None: ...

class EyeParams(_message.Message):
    __slots__ = ("gain", "nonlinearity", "a")
    GAIN_FIELD_NUMBER: _ClassVar[int]
    NONLINEARITY_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    gain: float
    nonlinearity: Nonlinearity
    a: float
    def __init__(self, gain: _Optional[float] = ..., nonlinearity: _Optional[_Union[Nonlinearity, str]] = ..., a: _Optional[float] = ...) -> None: ...

class DiracParams(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: int
    def __init__(self, groups: _Optional[int] = ...) -> None: ...

class DeltaOrthogonalParams(_message.Message):
    __slots__ = ("gain", "nonlinearity", "a")
    GAIN_FIELD_NUMBER: _ClassVar[int]
    NONLINEARITY_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    gain: float
    nonlinearity: Nonlinearity
    a: float
    def __init__(self, gain: _Optional[float] = ..., nonlinearity: _Optional[_Union[Nonlinearity, str]] = ..., a: _Optional[float] = ...) -> None: ...

class TorchDefaultParams(_message.Message):
    __slots__ = ("fan_in",)
    FAN_IN_FIELD_NUMBER: _ClassVar[int]
    fan_in: int
    def __init__(self, fan_in: _Optional[int] = ...) -> None: ...

class GlorotUniformParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GlorotNormalParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeUniformParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeNormalParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelManifest(_message.Message):
    __slots__ = ("name", "seed", "tensors", "recipe_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    RECIPE_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    seed: int
    tensors: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    recipe_json: str
    def __init__(self, name: _Optional[str] = ..., seed: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., recipe_json: _Optional[str] = ...) -> None: ...
