"""Conversion between the weightinit.v1 messages and the engine's spec dicts.

Plain functions, no network: the server turns a ``TensorSpec`` message into
the dict that :func:`weightinit.spec_from_dict` validates, and the clients
turn a user's dict into the message. Problems found while converting are
raised as :class:`weightinit.SpecError` with the *engine's* field path
(``dtype``, ``params.mode``); :func:`proto_field_path` maps any engine path
onto the request's field path (``spec.dtype``, ``spec.kaiming_normal.mode``)
so that every error, whoever finds it, names the field the caller sent.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor

from weightinit.spec import DTYPE_ALIASES, SpecError, TensorSpec
from weightinit.v1 import initializer_service_pb2 as service_pb2
from weightinit.v1 import spec_pb2

DTYPE_TO_PROTO = {
    "float32": spec_pb2.DATA_TYPE_FP32,
    "float64": spec_pb2.DATA_TYPE_FP64,
    "float16": spec_pb2.DATA_TYPE_FP16,
    "bfloat16": spec_pb2.DATA_TYPE_BF16,
    "complex64": spec_pb2.DATA_TYPE_COMPLEX64,
    "complex128": spec_pb2.DATA_TYPE_COMPLEX128,
}
PROTO_TO_DTYPE = {value: name for name, value in DTYPE_TO_PROTO.items()}

_SPEC_DESCRIPTOR = spec_pb2.TensorSpec.DESCRIPTOR
#: Scheme name -> the parameter message class of its oneof field.
SCHEME_PARAM_MESSAGES = {
    field.name: getattr(spec_pb2, field.message_type.name)
    for field in _SPEC_DESCRIPTOR.oneofs_by_name["scheme"].fields
}
#: Spec fields the engine knows, besides scheme and params.
#: Engine axis field -> the message field that carries it as a sequence (JAX in_axis=(0, 1)).
_AXIS_LISTS = {"in_axis": "in_axes", "out_axis": "out_axes"}
_TOP_LEVEL = ("name", "shape", "dtype", "seed", "layout", "in_axis", "out_axis", "batch_axis", "stream",
              "zero_rows", "scale")


def _is_repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return field.label == FieldDescriptor.LABEL_REPEATED  # protobuf < 6


def enum_prefix(enum: EnumDescriptor) -> str:
    """buf's ENUM_VALUE_PREFIX: ``FanMode`` -> ``FAN_MODE_``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def enum_to_str(enum: EnumDescriptor, number: int, engine_field: str) -> str | None:
    """Enum number -> the engine's lower-case string; None for ``*_UNSPECIFIED``."""
    if number == 0:
        return None
    value = enum.values_by_number.get(number)
    if value is None:
        allowed = ", ".join(v.name for v in enum.values if v.number)
        raise SpecError(engine_field, f"unknown {enum.name} value {number} (allowed: {allowed})")
    return value.name[len(enum_prefix(enum)):].lower()


def str_to_enum(enum: EnumDescriptor, text: Any, engine_field: str) -> int:
    """The engine's lower-case string (or the full enum value name) -> enum number."""
    if isinstance(text, str):
        prefix = enum_prefix(enum)
        for candidate in (prefix + text.upper(), text.upper()):
            value = enum.values_by_name.get(candidate)
            if value is not None and value.number != 0:
                return value.number
    allowed = ", ".join(v.name[len(enum_prefix(enum)):].lower() for v in enum.values if v.number)
    raise SpecError(engine_field, f"must be one of {allowed}; got {text!r}")


def dtype_to_proto(name: Any) -> int:
    if isinstance(name, str):
        canonical = DTYPE_ALIASES.get(name.lower(), name.lower())
        if canonical in DTYPE_TO_PROTO:
            return DTYPE_TO_PROTO[canonical]
        if name.upper() in spec_pb2.DataType.keys():
            return spec_pb2.DataType.Value(name.upper())
        if "DATA_TYPE_" + name.upper() in spec_pb2.DataType.keys():
            return spec_pb2.DataType.Value("DATA_TYPE_" + name.upper())
    raise SpecError("dtype", f"must be one of {', '.join(DTYPE_TO_PROTO)}; got {name!r}")


def dtype_from_proto(number: int) -> str | None:
    if number == 0:
        return None
    if number not in PROTO_TO_DTYPE:
        raise SpecError("dtype", f"unknown DataType value {number} (allowed: FP32, FP64, FP16, BF16, "
                                 "COMPLEX64, COMPLEX128)")
    return PROTO_TO_DTYPE[number]


# ---------------------------------------------------------------------------
# message -> engine dict (server side)


def params_to_dict(message) -> dict:
    """The parameters that are *set* in a scheme's parameter message."""
    params: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        path = f"params.{field.name}"
        value = getattr(message, field.name)
        if _is_repeated(field):
            if len(value):
                params[field.name] = list(value)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            text = enum_to_str(field.enum_type, value, path)
            if text is not None:
                params[field.name] = text
        elif message.HasField(field.name):
            params[field.name] = value
    return params


def spec_to_dict(message: spec_pb2.TensorSpec, default_seed: int | None = None) -> dict:
    """A ``TensorSpec`` message -> the engine's spec dict (only what is set).

    ``default_seed`` is the seed of a tensor that sets none (the manifest's).
    """
    scheme = message.WhichOneof("scheme")
    if scheme is None:
        raise SpecError("scheme", "is required: set one of " + ", ".join(SCHEME_PARAM_MESSAGES))
    data: dict[str, Any] = {"scheme": scheme, "shape": list(message.shape), "name": message.name}
    dtype = dtype_from_proto(message.dtype)
    if dtype is not None:
        data["dtype"] = dtype
    if message.HasField("seed"):
        data["seed"] = message.seed
    elif default_seed is not None:
        data["seed"] = default_seed
    layout = enum_to_str(spec_pb2.Layout.DESCRIPTOR, message.layout, "layout")
    if layout is not None:
        data["layout"] = layout
    for name in ("in_axis", "out_axis", "stream"):
        if message.HasField(name):
            data[name] = getattr(message, name)
    for name, plural in _AXIS_LISTS.items():  # a sequence of axes arrives in its own field
        if message.HasField(plural):
            if name in data:
                raise SpecError(name, f"give either {name} or {plural}, not both")
            data[name] = list(getattr(message, plural).axes)
    if len(message.batch_axis):
        data["batch_axis"] = list(message.batch_axis)
    if len(message.zero_rows):
        data["zero_rows"] = list(message.zero_rows)
    if message.HasField("scale"):
        data["scale"] = message.scale
    data["params"] = params_to_dict(getattr(message, scheme))
    return data


# ---------------------------------------------------------------------------
# engine dict -> message (client side)


def _as_int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise SpecError(path, f"must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                return int(value)
        except ImportError:  # pragma: no cover
            pass
        raise SpecError(path, f"must be an integer, got {value!r}")
    return value


def _as_float(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise SpecError(path, f"must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SpecError(path, f"must be a number, got {value!r}") from None


def params_from_dict(scheme: str, params: Mapping[str, Any] | None, message) -> None:
    """Fill a scheme's parameter message from a plain mapping (None values are skipped)."""
    if params is None:
        return
    if not isinstance(params, Mapping):
        raise SpecError("params", f"must be a mapping of parameter name to value, got {params!r}")
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in params.items():
        path = f"params.{key}"
        field = fields.get(key)
        if field is None:
            allowed = ", ".join(fields) or "none"
            raise SpecError(path, f"is not a parameter of {scheme} (allowed: {allowed})")
        if value is None:
            continue
        if _is_repeated(field):
            getattr(message, key).extend(_as_int(v, path) for v in value)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            setattr(message, key, str_to_enum(field.enum_type, value, path))
        elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            setattr(message, key, _as_float(value, path))
        elif field.type == FieldDescriptor.TYPE_STRING:
            setattr(message, key, str(value))
        else:
            setattr(message, key, _as_int(value, path))


def spec_from_any(spec: Any) -> spec_pb2.TensorSpec:
    """A ``TensorSpec`` message from a dict (engine shape), a :class:`weightinit.TensorSpec` or a message."""
    if isinstance(spec, spec_pb2.TensorSpec):
        return spec
    if isinstance(spec, TensorSpec):
        spec = spec.to_dict()
    if not isinstance(spec, Mapping):
        raise SpecError("spec", f"must be a mapping, a weightinit.TensorSpec or a TensorSpec message, got {spec!r}")
    unknown = sorted(set(spec) - set(_TOP_LEVEL) - {"scheme", "params"})
    if unknown:
        raise SpecError(unknown[0], "is not a spec field (allowed: scheme, params, " + ", ".join(_TOP_LEVEL) + ")")
    scheme = spec.get("scheme")
    if scheme not in SCHEME_PARAM_MESSAGES:
        raise SpecError("scheme", f"must be one of {', '.join(SCHEME_PARAM_MESSAGES)}; got {scheme!r}")
    message = spec_pb2.TensorSpec()
    getattr(message, scheme).SetInParent()
    params_from_dict(scheme, spec.get("params"), getattr(message, scheme))
    shape = spec.get("shape")
    if shape is None:
        raise SpecError("shape", "is required")
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise SpecError("shape", f"must be a list of non-negative integers, got {shape!r}")
    message.shape.extend(_as_int(d, "shape") for d in shape)
    if spec.get("name") is not None:
        if not isinstance(spec["name"], str):
            raise SpecError("name", f"must be a string, got {spec['name']!r}")
        message.name = spec["name"]
    if spec.get("dtype") is not None:
        message.dtype = dtype_to_proto(spec["dtype"])
    if spec.get("layout") is not None:
        message.layout = str_to_enum(spec_pb2.Layout.DESCRIPTOR, spec["layout"], "layout")
    for name in ("seed", "stream"):
        if spec.get(name) is not None:
            value = _as_int(spec[name], name)
            if not 0 <= value < 1 << 64:
                raise SpecError(name, f"must be in [0, 2**64 - 1], got {value}")
            setattr(message, name, value)
    for name in ("in_axis", "out_axis"):
        value = spec.get(name)
        if value is None:
            continue
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            setattr(message, name, _as_int(value, name))
        else:
            axis_list = getattr(message, _AXIS_LISTS[name])
            axis_list.SetInParent()
            axis_list.axes.extend(_as_int(a, name) for a in value)
    batch_axis = spec.get("batch_axis")
    if batch_axis is not None and not isinstance(batch_axis, (str, bytes)) and not hasattr(batch_axis, "__iter__"):
        batch_axis = [batch_axis]  # a bare int is one batch axis, as in JAX
    if batch_axis:
        message.batch_axis.extend(_as_int(b, "batch_axis") for b in batch_axis)
    if spec.get("zero_rows"):
        message.zero_rows.extend(_as_int(r, "zero_rows") for r in spec["zero_rows"])
    if spec.get("scale") is not None:
        message.scale = _as_float(spec["scale"], "scale")
    return message


def recipe_to_expand(manifest: Mapping) -> Any:
    """The recipe a manifest asks to expand, or None. A manifest whose tensors all name their
    scheme is already expanded (what ``init_module`` and ``recipes.expand_manifest`` return): its
    ``recipe`` is a record of how the specs were made, and the specs replay as they are."""
    recipe = manifest.get("recipe")
    tensors = manifest.get("tensors")
    if recipe is None:
        return None
    entries = tensors.values() if isinstance(tensors, Mapping) else tensors
    if isinstance(entries, (list, tuple, type({}.values()))) and entries and all(
            isinstance(t, Mapping) and t.get("scheme") is not None for t in entries):
        return None
    return recipe


def manifest_from_any(manifest: Any) -> spec_pb2.ModelManifest:
    """A ``ModelManifest`` from ``{"seed": 7, "name": ..., "tensors": [spec, ...]}`` or a message.

    ``tensors`` may also be a mapping ``name -> spec``. With ``"recipe"`` (docs/recipes.md) the
    tensors are ``{"name", "shape"[, "dtype"]}`` and the recipe travels as ``recipe_json``
    (unless the tensors are already expanded specs: see :func:`recipe_to_expand`).
    """
    if isinstance(manifest, spec_pb2.ModelManifest):
        return manifest
    if not isinstance(manifest, Mapping):
        raise SpecError("manifest", f"must be a mapping with 'tensors', got {type(manifest).__name__}")
    unknown = sorted(set(manifest) - {"seed", "name", "tensors", "recipe"})
    if unknown:
        raise SpecError(f"manifest.{unknown[0]}", "is not a manifest field (allowed: seed, name, tensors, recipe)")
    message = spec_pb2.ModelManifest(name=str(manifest.get("name") or ""))
    seed = _as_int(manifest.get("seed") or 0, "manifest.seed")
    if not 0 <= seed < 1 << 64:
        raise SpecError("manifest.seed", f"must be in [0, 2**64 - 1], got {seed}")
    message.seed = seed
    tensors = manifest.get("tensors")
    if isinstance(tensors, Mapping):
        tensors = [dict(spec, name=name) for name, spec in tensors.items()]
    if tensors is None or isinstance(tensors, (str, bytes)):
        raise SpecError("manifest.tensors", "must be a list of tensor specs")
    recipe = recipe_to_expand(manifest)
    if recipe is not None:
        message.recipe_json = json.dumps(recipe, sort_keys=True)
    for index, spec in enumerate(tensors):
        try:
            message.tensors.append(_recipe_tensor(spec) if recipe is not None else spec_from_any(spec))
        except SpecError as error:
            name = spec.get("name") if isinstance(spec, Mapping) else getattr(spec, "name", None)
            label = name if isinstance(name, str) and name else f"manifest.tensors[{index}]"
            raise error.in_tensor(label, index) from None
    return message


def _recipe_tensor(tensor: Any) -> spec_pb2.TensorSpec:
    """A recipe manifest's tensor: name, shape and optionally dtype (the recipe gives the rest)."""
    if isinstance(tensor, (list, tuple)) and len(tensor) in (2, 3):
        tensor = dict(zip(("name", "shape", "dtype"), tensor))
    if not isinstance(tensor, Mapping):
        raise SpecError("tensor", f"must be {{name, shape[, dtype]}}, got {tensor!r}")
    unknown = sorted(set(tensor) - {"name", "shape", "dtype"})
    if unknown:
        raise SpecError(unknown[0], "is not a field of a recipe manifest's tensor (name, shape, dtype)")
    message = spec_pb2.TensorSpec(name=str(tensor.get("name") or ""))
    shape = tensor.get("shape")
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise SpecError("shape", f"must be a list of non-negative integers, got {shape!r}")
    message.shape.extend(_as_int(d, "shape") for d in shape)
    if tensor.get("dtype") is not None:
        message.dtype = dtype_to_proto(tensor["dtype"])
    return message


def expand_recipe_manifest(message: spec_pb2.ModelManifest) -> list[dict]:
    """The engine spec dicts of a manifest carrying ``recipe_json`` (each with the manifest's seed).
    Errors name ``manifest.recipe_json`` or ``manifest.tensors[i]``."""
    from weightinit import recipes

    try:
        recipe = json.loads(message.recipe_json)
    except json.JSONDecodeError as error:
        raise SpecError("manifest.recipe_json", f"is not JSON: {error}") from None
    tensors = []
    for index, tensor in enumerate(message.tensors):
        if tensor.WhichOneof("scheme") is not None:
            raise SpecError(f"manifest.tensors[{index}].scheme", "must not be set: the recipe chooses it")
        tensors.append({"name": tensor.name, "shape": list(tensor.shape),
                        "dtype": dtype_from_proto(tensor.dtype) or "float32"})
    try:
        return recipes.expand(recipe, tensors, seed=message.seed)
    except SpecError as error:
        names = [t["name"] for t in tensors]
        for index, name in enumerate(names):
            if error.field == f"tensors.{name}" or error.field.startswith(f"tensors.{name}."):
                raise SpecError(f"manifest.tensors[{index}]", error.message) from None
        raise SpecError("manifest.recipe_json", str(error)) from None


# ---------------------------------------------------------------------------
# error paths


def proto_field_path(engine_field: str, scheme: str | None, prefix: str = "spec") -> str:
    """Engine field path -> request field path.

    ``params.std`` of a ``normal`` spec -> ``spec.normal.std``; ``shape`` ->
    ``spec.shape``; ``scheme`` -> ``spec.scheme`` (the oneof); ``spec`` -> ``spec``.
    """
    if engine_field == "spec":
        return prefix
    if engine_field == "params" or engine_field.startswith("params."):
        rest = engine_field[len("params"):]
        return f"{prefix}.{scheme}{rest}" if scheme else f"{prefix}.scheme"
    return f"{prefix}.{engine_field}"


def region_to_proto(region) -> list:
    """(start, stop) per dimension -> DimRange messages (empty for None)."""
    return [service_pb2.DimRange(start=start, stop=stop) for start, stop in (region or ())]


def region_from_proto(ranges) -> tuple[tuple[int, int], ...] | None:
    return tuple((r.start, r.stop) for r in ranges) or None
