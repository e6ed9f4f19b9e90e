"""``init_module``: every parameter of a torch module, reproducibly, by its qualified name.

A recipe maps each module type onto the specs its own initialization draws
from (``recipe="torch"``: each ``torch.nn`` module's ``reset_parameters``;
``recipe="hf"``: Hugging Face ``PreTrainedModel._init_weights``). Rules,
``(selector, spec)`` pairs, come first: the first whose selector (a glob over
qualified names, or an ``nn.Module`` subclass owning the parameter directly)
matches decides. Every parameter's stream is its qualified name and its seed
is ``init_module``'s, so its bytes do not depend on the rest of the model.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..engine.fans import torch_fans
from ..engine.validate import spec_from_dict
from ..spec import SpecError
from ._fill import ParameterError, dtype_name, fill_tensor_, storage_view

#: A recipe: (module, root module) -> {parameter path relative to module: partial spec}. Paths may reach
#: into children ("out_proj.bias"); a parent's entry wins over the child's own (it runs later in torch).
Recipe = Callable[[nn.Module, nn.Module], Mapping[str, Mapping[str, Any]]]

ZEROS = {"scheme": "zeros"}
ONES = {"scheme": "ones"}
XAVIER_UNIFORM = {"scheme": "xavier_uniform"}
XAVIER_NORMAL = {"scheme": "xavier_normal"}
#: Fields a rule may not set: every parameter's seed and stream are init_module's.
_FIXED_FIELDS = ("seed", "name", "stream")


# --- recipe="torch": each module's reset_parameters ---------------------------------------------

def _bound(fan_in: int) -> dict:
    """U(-b, b), b = 1 / sqrt(fan_in) (0 when fan_in = 0)."""
    return {"scheme": "torch_default", "params": {"fan_in": int(fan_in)}}


def _linear_or_conv(module, root):
    """Linear, Conv*d, ConvTranspose*d: weight kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)),
    bias U(+-1/sqrt(fan_in)), fan_in of the weight ([out, in, *k]; ConvTranspose [in, out/groups, *k])."""
    return {"weight": {"scheme": "torch_default"}, "bias": _bound(torch_fans(tuple(module.weight.shape))[0])}


def _bilinear(module, root):
    """nn.Bilinear: weight and bias U(+-1/sqrt(in1_features))."""
    return {"weight": _bound(module.weight.shape[1]), "bias": _bound(module.weight.shape[1])}


def _embedding(module, root):
    """nn.Embedding / EmbeddingBag: N(0, 1), the padding_idx row 0."""
    return {"weight": _with_padding_row({"scheme": "normal"}, module)}


def _with_padding_row(spec: dict, module) -> dict:
    padding_idx = getattr(module, "padding_idx", None)
    return spec if padding_idx is None else {**spec, "zero_rows": [int(padding_idx)]}


def _norm(module, root):
    """BatchNorm*, SyncBatchNorm, InstanceNorm* (affine), LayerNorm, GroupNorm, RMSNorm: weight 1, bias 0."""
    return {"weight": ONES, "bias": ZEROS}


def _prelu(module, root):
    """nn.PReLU: every weight its ``init`` (0.25 by default)."""
    return {"weight": {"scheme": "constant", "params": {"value": float(module.init)}}}


def _recurrent(module, root):
    """RNN/LSTM/GRU and their cells: every weight and bias U(+-1/sqrt(hidden_size))."""
    return {name: _bound(module.hidden_size) for name, _ in module.named_parameters(recurse=False)}


def _multihead_attention(module, root):
    """nn.MultiheadAttention._reset_parameters: xavier_uniform in-projections (fused [3E, E] or q/k/v),
    in_proj_bias and out_proj.bias 0, bias_k/bias_v xavier_normal; out_proj.weight keeps Linear's."""
    return {"in_proj_weight": XAVIER_UNIFORM, "q_proj_weight": XAVIER_UNIFORM, "k_proj_weight": XAVIER_UNIFORM,
            "v_proj_weight": XAVIER_UNIFORM, "in_proj_bias": ZEROS, "out_proj.bias": ZEROS,
            "bias_k": XAVIER_NORMAL, "bias_v": XAVIER_NORMAL}


def _transformer(module, root):
    """nn.Transformer._reset_parameters: xavier_uniform on every parameter of more than 1 dim."""
    return {name: XAVIER_UNIFORM for name, parameter in module.named_parameters() if parameter.dim() > 1}


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
          nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
_LINEAR_AND_CONV = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                    nn.ConvTranspose3d)

#: (module types, recipe): the first whose types match a module gives its parameters' defaults.
TORCH_DEFAULTS: tuple[tuple[tuple[type, ...], Recipe], ...] = (
    (_LINEAR_AND_CONV, _linear_or_conv),
    ((nn.Bilinear,), _bilinear),
    ((nn.Embedding, nn.EmbeddingBag), _embedding),
    (_NORMS, _norm),
    ((nn.PReLU,), _prelu),
    ((nn.RNNBase, nn.RNNCellBase), _recurrent),
    ((nn.MultiheadAttention,), _multihead_attention),
    ((nn.Transformer,), _transformer),
)


def torch_recipe(module: nn.Module, root: nn.Module) -> Mapping[str, Mapping[str, Any]]:
    for types, recipe in TORCH_DEFAULTS:
        if isinstance(module, types):
            return recipe(module, root)
    return {}


def _recipe(recipe: Any) -> Recipe | None:
    """A per-module recipe callable, or None. Recipes given as data (a built-in name of
    :mod:`weightinit.recipes` or a dict) are expanded over the whole model in ``_plan`` instead."""
    if recipe is None or callable(recipe):
        return recipe
    if recipe == "torch":
        return torch_recipe
    if recipe == "hf":
        from .hf import hf_recipe

        return hf_recipe
    raise SpecError("recipe", f"must be 'torch', 'hf', a weightinit.recipes name or dict, None or a callable; "
                              f"got {recipe!r}")


def _is_data_recipe(recipe: Any) -> bool:
    from ..recipes import BUILTINS

    return isinstance(recipe, Mapping) or (isinstance(recipe, str) and recipe in BUILTINS)


def _data_recipe_defaults(recipe: Any, entries: list, seed: int) -> tuple[dict[str, Mapping[str, Any]], dict]:
    """weightinit.recipes over the parameters no rule took: name -> spec, and the resolved recipe
    (every parameter, derived ones included) for the manifest."""
    from .. import recipes

    tensors = [{"name": name, "shape": [int(d) for d in parameter.shape], "dtype": dtype_name(parameter),
                "module": type(owner).__name__} for name, parameter, owner in entries]
    try:
        specs = recipes.expand(recipe, tensors, seed=seed)
        resolved = recipes.resolve(recipe, tensors)
    except SpecError as error:
        if error.field.startswith("tensors."):
            raise ParameterError(error.field[len("tensors."):], "recipe", error.message) from None
        raise
    return {spec["name"]: spec for spec in specs}, resolved


# --- rules -------------------------------------------------------------------------------------

def _rules(rules) -> list[tuple[Any, dict]]:
    """Ordered (selector, spec) pairs from a sequence of pairs or a mapping; a spec may be a scheme name."""
    pairs = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    checked = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"rules[{index}] must be a (selector, spec) pair, got {pair!r}")
        selector, spec = pair
        if not isinstance(selector, str) and not (isinstance(selector, type) and issubclass(selector, nn.Module)):
            raise ValueError(f"rules[{index}] selector must be a glob string or an nn.Module subclass, "
                             f"got {selector!r}")
        spec = {"scheme": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, Mapping):
            raise ValueError(f"rules[{index}] ({_selector_name(selector)}) spec must be a mapping, got {spec!r}")
        fixed = [key for key in _FIXED_FIELDS if spec.get(key) is not None]
        if fixed:
            raise ValueError(f"rules[{index}] ({_selector_name(selector)}) sets {fixed[0]}: every parameter's seed "
                             f"is init_module's and its stream is its qualified name")
        checked.append((selector, dict(spec)))
    return checked


def _selector_name(selector) -> str:
    return repr(selector) if isinstance(selector, str) else selector.__name__


def _matches(selector, name: str, owner: nn.Module) -> bool:
    if isinstance(selector, str):
        return fnmatch.fnmatchcase(name, selector)
    return isinstance(owner, selector)


# --- the manifest --------------------------------------------------------------------------------

def _parameters(module: nn.Module) -> list[tuple[str, nn.Parameter, nn.Module, str]]:
    """(qualified name, parameter, owning module, local name), each shared parameter once (first name)."""
    found, seen = [], set()
    for prefix, owner in module.named_modules():
        for local, parameter in owner.named_parameters(recurse=False):
            if id(parameter) in seen:
                continue
            seen.add(id(parameter))
            found.append((f"{prefix}.{local}" if prefix else local, parameter, owner, local))
    return found


def _defaults(module: nn.Module, recipe: Recipe | None) -> dict[str, Mapping[str, Any]]:
    """Qualified name -> partial spec from the recipe; parents (visited first) win over their children."""
    decided: dict[str, Mapping[str, Any]] = {}
    if recipe is None:
        return decided
    for prefix, owner in module.named_modules():
        for path, spec in recipe(owner, module).items():
            decided.setdefault(f"{prefix}.{path}" if prefix else path, spec)
    return decided


def _resolve(name: str, parameter, partial: Mapping[str, Any], seed: int) -> dict:
    """The resolved spec dict of one parameter: the partial spec with the parameter's shape, dtype,
    the manifest's seed and the qualified name as its stream."""
    try:
        dtype = dtype_name(parameter)
    except TypeError as error:
        raise ParameterError(name, "dtype", str(error)) from None
    shape = [int(d) for d in parameter.shape]
    for key, have in (("shape", shape), ("dtype", dtype)):
        given = partial.get(key)
        if given is not None and given != have and not (key == "shape" and list(given) == have):
            raise ParameterError(name, key, f"the rule gives {given!r}, the parameter has {have!r}")
    spec = {**partial, "shape": shape, "dtype": dtype, "seed": seed, "name": name}
    try:
        return spec_from_dict(spec, limits=None).to_dict()
    except SpecError as error:
        raise ParameterError(name, error.field, error.message) from None


def _plan(module: nn.Module, seed: int, rules, recipe) -> tuple[dict, list]:
    data_recipe = recipe if _is_data_recipe(recipe) else None
    recipe = None if data_recipe is not None else _recipe(recipe)
    rules = _rules(rules)
    defaults = _defaults(module, recipe)
    used = [False] * len(rules)
    chosen, untaken = [], []
    for name, parameter, owner, local in _parameters(module):
        partial = None
        for index, (selector, spec) in enumerate(rules):
            if _matches(selector, name, owner):
                used[index] = True
                partial = spec if partial is None else partial
        chosen.append((name, parameter, owner, local, partial))
        if partial is None:
            untaken.append((name, parameter, owner))
    for index, (selector, _) in enumerate(rules):
        if not used[index]:
            raise SpecError(f"rules[{index}]", f"{_selector_name(selector)} matches no parameter of the module")
    resolved_recipe = None
    if data_recipe is not None and untaken:
        defaults, resolved_recipe = _data_recipe_defaults(data_recipe, untaken, seed)
    tensors, parameters = [], []
    for name, parameter, owner, local, partial in chosen:
        if partial is None:
            partial = defaults.get(name)
        if partial is None:
            why = ("no recipe was given" if recipe is None else
                   f"the {type(owner).__name__} module has no known default for its parameter {local!r}")
            raise ParameterError(name, "module", f"{why} ({type(owner).__module__}.{type(owner).__qualname__}); "
                                                 f"give a rule for it")
        tensors.append(_resolve(name, parameter, partial, seed))
        parameters.append(parameter)
    manifest = {"seed": seed, "tensors": tensors}
    if resolved_recipe is not None:
        manifest["recipe"] = resolved_recipe
    return manifest, parameters


def module_manifest(module: nn.Module, seed: int = 0, rules: Sequence | Mapping = (), *,
                    recipe: Any = "torch") -> dict:
    """The manifest ``init_module`` would use, without filling anything."""
    return _plan(module, seed, rules, recipe)[0]


# --- filling -------------------------------------------------------------------------------------

def _is_dtensor(parameter) -> bool:
    if not torch.distributed.is_available():
        return False
    from torch.distributed.tensor import DTensor

    return isinstance(parameter, DTensor)


def init_module(module: nn.Module, seed: int = 0, rules: Sequence | Mapping = (), *, recipe: Any = "torch",
                client=None) -> dict:
    """Fill every parameter of ``module`` in place; returns the manifest used ({"seed", "tensors": [resolved specs]}),
    replayable with ``weightinit generate --manifest`` or ``Client.generate_model``.

    ``rules``: ordered ``(selector, spec)`` pairs (or a mapping); a spec may leave out shape, dtype and name.
    ``recipe``: "torch" (each module's ``reset_parameters``), "hf" (transformers' ``_init_weights``), a
    :mod:`weightinit.recipes` recipe (a built-in name such as "gpt2", or a dict; expanded over the parameters
    no rule takes, its resolved form recorded in the manifest), a callable, or None (rules only).
    ``client``: a ``weightinit.client.Client`` (or ``LocalClient``): the bytes come in one ``GenerateModel`` call,
    identical to the in-process engine's. DTensor parameters are filled shard by shard on each rank from their
    global spec (``weightinit.torch.distributed.fill_local_``). Parameters on the meta device are left as they are.
    """
    manifest, parameters = _plan(module, seed, rules, recipe)
    local = [(spec, p) for spec, p in zip(manifest["tensors"], parameters) if not _is_dtensor(p)]
    for spec, parameter in zip(manifest["tensors"], parameters):
        if _is_dtensor(parameter):
            from .distributed import fill_local_

            _named(spec["name"], fill_local_, parameter, spec)
    if client is None:
        for spec, parameter in local:
            _named(spec["name"], fill_tensor_, parameter, spec)
    elif local:
        _fill_from_client(client, seed, local)
    return manifest


def _named(name: str, function, *args):
    try:
        return function(*args)
    except ParameterError:
        raise
    except SpecError as error:
        raise ParameterError(name, error.field, error.message) from None


class _Target:
    """Where one parameter's chunks go: its own memory, or a host staging tensor copied in at the end."""

    def __init__(self, parameter):
        self.parameter = parameter
        self.flat = storage_view(parameter)
        self.staging = None
        if self.flat is None and parameter.device.type != "meta":
            self.staging = torch.empty(parameter.shape, dtype=parameter.dtype)
            self.flat = storage_view(self.staging)

    def write(self, offset: int, data: np.ndarray) -> None:
        if self.flat is not None:
            self.flat[offset:offset + data.size] = data.reshape(-1).view(self.flat.dtype)

    def finish(self) -> None:
        if self.staging is not None:
            with torch.no_grad():
                self.parameter.copy_(self.staging)


def _fill_from_client(client, seed: int, local: list) -> None:
    manifest = {"seed": seed, "tensors": [spec for spec, _ in local]}
    names = [spec["name"] for spec, _ in local]
    target, current = None, -1
    try:
        for chunk in client.iter_model_chunks(manifest):
            if chunk.index != current:
                if target is not None:
                    target.finish()
                current, target = chunk.index, _Target(local[chunk.index][1])
            target.write(chunk.offset, chunk.data)
        if target is not None:
            target.finish()
    except SpecError as error:  # the client names the tensor by its index in the manifest
        index = error.tensor_index
        if index is not None and 0 <= index < len(names):
            raise ParameterError(names[index], error.field, error.message) from None
        raise _named_error(error.field, error.message, names) from None


_TENSOR_FIELD = re.compile(r"manifest\.tensors\[(\d+)\]\.?(.*)")


def _named_error(field: str, message: str, names: list[str]) -> SpecError:
    """``manifest.tensors[i].shape`` -> a ParameterError naming tensor i's parameter."""
    found = _TENSOR_FIELD.fullmatch(field)
    if found and int(found[1]) < len(names):
        return ParameterError(names[int(found[1])], found[2] or "spec", message)
    return SpecError(field, message)


__all__ = ["Recipe", "TORCH_DEFAULTS", "init_module", "module_manifest", "torch_recipe"]
