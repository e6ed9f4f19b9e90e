"""Whole-model initialization recipes as plain data: tensor names -> specs.

A recipe is a JSON-able dict::

    {"recipe": "gpt2",                  # optional: start from a built-in
     "params": {"std": 0.02},           # named values; strings are expressions
     "derive": {"n_layers": {"layers": true}},        # read off the tensor list when not given
     "captures": {"layer_id": "(?:^|\\.)(?:h|layers|blocks)\\.(\\d+)\\."},  # per-tensor integers
     "rules": [{"match": "*.c_proj.weight", "scheme": "normal",
                "params": {"std": "std / sqrt(2 * n_layers)"}}, ...]}

or just a built-in's name, or ``{"recipe": NAME, PARAM: VALUE, ...}`` to override parameters.
:func:`expand` turns it and a list of tensors ``(name, shape, dtype, module_type)`` into spec
dicts; :func:`resolve` gives the recipe with every parameter (given, default or derived) filled
in, as recorded in an expanded manifest. See ``docs/recipes.md`` for the built-ins and sources.

Rules are tried in order; the first whose ``match`` globs (fnmatch, ``*`` crosses dots),
``module`` type names and ``where`` condition all hold gives the tensor's scheme. A tensor no rule
matches, and a rule no tensor uses (unless ``"optional": true``), is a :class:`SpecError`
naming it. Expressions use numbers, parameters, per-tensor variables (``fan_in``, ``fan_out``,
``dim0``, ``dim1``, ``rank``, ``numel``, ``first_matrix``, ``last_matrix`` and the captures),
``+ - * /``, comparisons, ``and``/``or``/``not``, ``x if c else y``, ``sqrt``, ``min``, ``max``
and ``pow``. Everything is binary64 with correctly rounded operations; ``pow(x, y)`` uses
``sqrt`` for y a multiple of 1/4 and the engine's own exp/log otherwise, so an expansion gives
the same specs on every machine.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import math
import re
from typing import Any, Iterable, Mapping, Sequence

from .engine.validate import spec_from_dict
from .spec import SCHEMES, SpecError

DEFAULT_LAYER_ID = r"(?:^|\.)(?:h|layers|layer|blocks|block)\.(\d+)\."

_NORMS = ["*ln_*.weight", "*norm*.weight", "*layernorm*.weight"]
_NORM_BIASES = ["*ln_*.bias", "*norm*.bias", "*layernorm*.bias"]


def _zeros(match, optional=True, **extra):
    return {"match": match, "scheme": "zeros", "optional": optional, **extra}


def _ones(match, optional=True, **extra):
    return {"match": match, "scheme": "ones", "optional": optional, **extra}


def _trunc3(std_expr: str) -> dict:
    """N(0, std) truncated at +-3 std."""
    return {"std": std_expr, "lower": -3.0, "upper": 3.0, "bounds": "std"}


#: Built-in recipes, each in the same data form users write. Sources in docs/recipes.md.
BUILTINS: dict[str, dict] = {
    # nanoGPT model.py _init_weights / HF GPT2PreTrainedModel._init_weights: every Linear, Conv1D and
    # Embedding N(0, 0.02), biases 0, LayerNorm 1/0; then c_proj.weight N(0, 0.02 / sqrt(2 * n_layer)).
    "gpt2": {
        "params": {"std": 0.02},
        "derive": {"n_layers": {"layers": True}},
        "rules": [
            {"match": "*.c_proj.weight", "scheme": "normal", "params": {"std": "std / sqrt(2 * n_layers)"}},
            _ones(_NORMS, optional=False), _zeros("*.bias"),
            {"match": "*.weight", "scheme": "normal", "params": {"std": "std"}},
        ],
    },
    # Megatron-LM: init_method_normal(sigma) everywhere, scaled_init_method_normal(sigma, num_layers)
    # = N(0, sigma / sqrt(2 * num_layers)) on each layer's attention output and MLP second projection.
    "megatron": {
        "params": {"std": 0.02},
        "derive": {"n_layers": {"layers": True}},
        "rules": [
            {"match": ["*.linear_proj.weight", "*.linear_fc2.weight", "*.self_attention.dense.weight",
                       "*.dense_4h_to_h.weight"],
             "scheme": "normal", "params": {"std": "std / sqrt(2 * n_layers)"}},
            _ones(_NORMS, optional=False), _zeros("*.bias"),
            {"match": "*.weight", "scheme": "normal", "params": {"std": "std"}},
        ],
    },
    # torchtitan models/llama3 model.py init_weights: tok_embeddings N(0, 1); wq, wk, wv, w1
    # trunc_normal_(std=0.02) (absolute bounds +-2); wo, w2, w3 trunc_normal_(std=weight_init_std),
    # 0.02 / sqrt(2 (layer_id + 1)) with depth_init (the default) else 0.02 / sqrt(2 n_layers);
    # norms 1; output trunc_normal_(std=dim**-0.5, a=-3 std, b=3 std).
    "torchtitan_llama3": {
        "params": {"std": 0.02, "depth_init": 1},
        "derive": {"n_layers": {"layers": True}, "dim": {"dim_of": ["*tok_embeddings.weight"], "axis": 1}},
        "rules": [
            {"match": "*tok_embeddings.weight", "scheme": "normal", "params": {"mean": 0.0, "std": 1.0}},
            {"match": ["*.attention.wq.weight", "*.attention.wk.weight", "*.attention.wv.weight",
                       "*.feed_forward.w1.weight"],
             "scheme": "truncated_normal", "params": {"std": "std", "lower": -2.0, "upper": 2.0}},
            {"match": ["*.attention.wo.weight", "*.feed_forward.w2.weight", "*.feed_forward.w3.weight"],
             "scheme": "truncated_normal",
             "params": {"std": "std / sqrt(2 * (layer_id + 1)) if depth_init else std / sqrt(2 * n_layers)",
                        "lower": -2.0, "upper": 2.0}},
            _ones(_NORMS, optional=False),
            {"match": "output.weight", "scheme": "truncated_normal", "params": _trunc3("pow(dim, -0.5)"),
             "optional": True},
        ],
    },
    # OLMo (v0.x olmo/initialization.py init_weights, InitFnType.mitchell; olmo/model.py blocks):
    # std = 1/sqrt(d), divided by sqrt(2 (layer_id + 1)) where a layer id is passed, trunc_normal_ at
    # +-3 std. att_proj / ff_proj: d = d_model, no layer id; attn_out: d = d_model, layer id;
    # ff_out: d = ff_out.in_features, layer id; embeddings and the final ff_out: d = d_model.
    "olmo_mitchell": {
        "params": {},
        "derive": {"d_model": {"dim_of": ["*wte.weight", "*.att_proj.weight"], "axis": 1}},
        "rules": [
            {"match": "*.attn_out.weight", "scheme": "truncated_normal",
             "params": _trunc3("1 / sqrt(d_model) / sqrt(2 * (layer_id + 1))")},
            {"match": "*.blocks.*.ff_out.weight", "scheme": "truncated_normal",
             "params": _trunc3("1 / sqrt(fan_in) / sqrt(2 * (layer_id + 1))")},
            {"match": ["*.att_proj.weight", "*.ff_proj.weight", "*.q_proj.weight", "*.k_proj.weight",
                       "*.v_proj.weight", "*wte.weight", "*wpe.weight", "*ff_out.weight"],
             "scheme": "truncated_normal", "params": _trunc3("1 / sqrt(d_model)")},
            _ones(_NORMS), _zeros("*.bias"),
        ],
    },
    # DeepNet (Wang et al. 2022, arXiv 2203.00555, Fig. 2), decoder-only: beta = (8N)^(-1/4);
    # xavier_normal_(gain=beta) on fc1, fc2, v_proj, out_proj; xavier_normal_(gain=1) on q_proj, k_proj.
    # Embeddings and the output projection as fairseq: N(0, d_model^-1/2). (Encoder-decoder decoders
    # use beta = (12 M)^(-1/4): pass "beta".)
    "deepnet": {
        "params": {"beta": "pow(8 * n_layers, -0.25)"},
        "derive": {"n_layers": {"layers": True}, "d_model": {"dim_of": ["*embed_tokens.weight"], "axis": 1}},
        "rules": [
            {"match": ["*.fc1.weight", "*.fc2.weight", "*.v_proj.weight", "*.out_proj.weight"],
             "scheme": "xavier_normal", "params": {"gain": "beta"}},
            {"match": ["*.q_proj.weight", "*.k_proj.weight"], "scheme": "xavier_normal", "params": {"gain": 1.0}},
            {"match": ["*embed_tokens.weight", "*embed_positions.weight", "*output_projection.weight"],
             "scheme": "normal", "params": {"std": "pow(d_model, -0.5)"}},
            _ones(_NORMS + ["*layer_norm*.weight"]), _zeros("*.bias"),
        ],
    },
    # Fixup (Zhang, Dauphin, Ma 2019, arXiv 1901.09321; hongyi-zhang/Fixup): the last layer of each
    # residual branch and the classifier 0; other branch convs He (N(0, 2 / fan_out), fan_out =
    # out * prod(kernel)) times L^(-1/(2m-2)) (L branches, m layers per branch); downsample and stem
    # convs plain He; scalar biases 0, scalar multipliers 1. torchvision ResNet names.
    "fixup": {
        "params": {},
        "derive": {"n_branches": {"count_distinct": r"^(layer\d+\.\d+)\."},
                   "branch_layers": {"count_distinct": r"^layer\d+\.\d+\.conv(\d+)\.weight$"}},
        "captures": {"conv_index": r"^layer\d+\.\d+\.conv(\d+)\.weight$"},
        "rules": [
            {"match": "layer*.conv*.weight", "where": "conv_index == branch_layers", "scheme": "zeros"},
            {"match": "layer*.conv*.weight", "scheme": "normal",
             "params": {"std": "sqrt(2 / fan_out) * pow(n_branches, -1 / (2 * branch_layers - 2))"}},
            {"match": ["conv1.weight", "*downsample*.weight"], "scheme": "normal",
             "params": {"std": "sqrt(2 / fan_out)"}},
            {"match": ["fc.weight", "fc.bias"], "scheme": "zeros"},
            _zeros(["*bias*"]), _ones(["*scale*"]),
        ],
    },
    # muP (Yang et al. 2022, arXiv 2203.03466; the `mup` package): readout (MuReadout,
    # readout_zero_init=True) 0; biases 0; norms 1; input weights and embeddings (one infinite dim)
    # N(0, std); hidden matrices (two infinite dims) N(0, std / sqrt(width_mult)), width_mult =
    # fan_in / base_fan_in, as mup.init.normal_. base_width defaults to the model's own width.
    "mup": {
        "params": {"std": 0.02},
        "derive": {"width": {"dim_of_last_matrix": True, "axis": 1}},
        "defaults": {"base_width": "width"},
        "rules": [
            {"match": ["*readout.weight", "*lm_head.weight", "*output.weight"], "scheme": "zeros",
             "optional": True},
            {"match": "*", "where": "last_matrix", "scheme": "zeros", "optional": True},
            _zeros("*.bias"), _ones(_NORMS),
            {"match": ["*embed*.weight", "*wte.weight", "*wpe.weight"], "scheme": "normal",
             "params": {"std": "std"}, "optional": True},
            {"match": "*", "where": "first_matrix", "scheme": "normal", "params": {"std": "std"},
             "optional": True},
            {"match": "*", "where": "rank >= 2", "scheme": "normal",
             "params": {"std": "std / sqrt(fan_in / base_width)"}},
        ],
    },
}

RECIPE_NAMES = tuple(BUILTINS)
_RECIPE_KEYS = {"recipe", "params", "derive", "defaults", "captures", "rules", "layer_id"}
_RULE_KEYS = {"match", "module", "where", "scheme", "params", "layout", "optional"}


# ---------------------------------------------------------------------------
# A tiny safe expression language.

_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b}
_COMPARE = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
            ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}


def exact_pow(x: float, y: float) -> float:
    """x**y from correctly rounded operations: y a multiple of 1/4 by products of x, sqrt(x) and
    sqrt(sqrt(x)); otherwise exp(y * log(x)) with the engine's own exp/log (docs/rng.md)."""
    x, y = float(x), float(y)
    if x <= 0:
        raise ValueError(f"pow needs a positive base, got {x}")
    if (4 * y).is_integer() and abs(y) <= 64:
        quarters = int(abs(4 * y))
        whole, rest = divmod(quarters, 4)
        result = 1.0
        for _ in range(whole):
            result = result * x
        if rest & 2:
            result = result * math.sqrt(x)
        if rest & 1:
            result = result * math.sqrt(math.sqrt(x))
        return 1.0 / result if y < 0 else result
    import numpy as np

    from .engine.transforms import exp_scalar, log_positive
    return exp_scalar(y * float(log_positive(np.array([x]))[0]))


_FUNCTIONS = {"sqrt": lambda x: math.sqrt(x), "min": min, "max": max, "pow": exact_pow}


def evaluate(expression: Any, variables: Mapping[str, Any], where: str) -> Any:
    """A number, bool or string passes through; a string that parses as an expression is evaluated."""
    if not isinstance(expression, str):
        return expression
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise SpecError(where, f"{expression!r} is not an expression: {error.msg}") from None
    try:
        return _eval(tree.body, variables)
    except SpecError:
        raise
    except (ValueError, ZeroDivisionError, OverflowError, TypeError) as error:
        raise SpecError(where, f"{expression!r}: {error}") from None
    except _Unknown as error:
        raise SpecError(where, f"{expression!r}: {error}") from None


class _Unknown(Exception):
    pass


def _eval(node: ast.AST, v: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in v:
            raise _Unknown(f"unknown name {node.id!r} (known: {', '.join(sorted(v))})")
        if v[node.id] is None:
            raise _Unknown(f"{node.id!r} does not apply to this tensor")
        return v[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_eval(node.left, v), _eval(node.right, v))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        operand = _eval(node.operand, v)
        return -operand if isinstance(node.op, ast.USub) else (not operand if isinstance(node.op, ast.Not)
                                                               else operand)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _eval(node.left, v)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, v)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        values = (_eval(item, v) for item in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.IfExp):
        return _eval(node.body, v) if _eval(node.test, v) else _eval(node.orelse, v)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords):
        return _FUNCTIONS[node.func.id](*(_eval(arg, v) for arg in node.args))
    raise _Unknown(f"{ast.unparse(node)!r} is outside the recipe expression language")


# ---------------------------------------------------------------------------
# Tensors and recipes


def _tensor_entries(tensors: Iterable) -> list[dict]:
    """(name, shape[, dtype[, module_type]]) tuples or {"name", "shape", "dtype", "module"} dicts."""
    entries, seen = [], set()
    for index, item in enumerate(tensors):
        path = f"tensors[{index}]"
        if isinstance(item, Mapping):
            unknown = sorted(set(item) - {"name", "shape", "dtype", "module"})
            if unknown:
                raise SpecError(f"{path}.{unknown[0]}", "is not a recipe tensor field (name, shape, dtype, module)")
            name, shape, dtype, module = item.get("name"), item.get("shape"), item.get("dtype"), item.get("module")
        elif isinstance(item, Sequence) and not isinstance(item, str) and 2 <= len(item) <= 4:
            name, shape, dtype, module = (list(item) + [None, None])[:4]
        else:
            raise SpecError(path, f"must be (name, shape[, dtype[, module_type]]) or a dict, got {item!r}")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{path}.name", f"must be a non-empty string, got {name!r}")
        if name in seen:
            raise SpecError(f"{path}.name", f"duplicate tensor name {name!r}")
        seen.add(name)
        if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
            raise SpecError(f"{name}.shape", f"must be a list of integers, got {shape!r}")
        shape = [int(d) for d in shape]
        entries.append({"name": name, "shape": shape, "dtype": dtype or "float32", "module": module})
    if not entries:
        raise SpecError("tensors", "must list at least one tensor")
    return entries


def _base(recipe: Any) -> tuple[dict, dict]:
    """(recipe data, user overrides) from a name, {"recipe": NAME, ...} or a full data recipe."""
    if isinstance(recipe, str):
        recipe = {"recipe": recipe}
    if not isinstance(recipe, Mapping):
        raise SpecError("recipe", f"must be a name ({', '.join(RECIPE_NAMES)}) or a dict, got {recipe!r}")
    name = recipe.get("recipe")
    if name is not None and name not in BUILTINS:
        raise SpecError("recipe.recipe", f"unknown recipe {name!r}; built-ins: {', '.join(RECIPE_NAMES)}")
    data = copy.deepcopy(BUILTINS[name]) if name is not None else {"params": dict(recipe.get("params") or {})}
    overrides = {k: v for k, v in recipe.items() if k not in _RECIPE_KEYS}
    if name is not None:
        overrides.update(recipe.get("params") or {})
    for key in ("derive", "defaults", "captures"):
        if key in recipe:
            data[key] = {**data.get(key, {}), **recipe[key]}
    if "rules" in recipe:
        data["rules"] = recipe["rules"]
    if "layer_id" in recipe:
        data["layer_id"] = recipe["layer_id"]
    data["name"] = name or "custom"
    if not data.get("rules"):
        raise SpecError("recipe.rules", "a recipe needs a built-in name or a list of rules")
    return data, overrides


def _per_tensor(entry: dict, captures: Mapping[str, re.Pattern], first: str | None, last: str | None) -> dict:
    shape = entry["shape"]
    rank = len(shape)
    variables: dict[str, Any] = {"rank": rank, "numel": math.prod(shape),
                                 "dim0": shape[0] if rank else None, "dim1": shape[1] if rank > 1 else None,
                                 "first_matrix": entry["name"] == first, "last_matrix": entry["name"] == last,
                                 "fan_in": None, "fan_out": None}
    if rank >= 2:
        receptive = math.prod(shape[2:])
        variables["fan_in"], variables["fan_out"] = shape[1] * receptive, shape[0] * receptive
    for key, pattern in captures.items():
        found = pattern.search(entry["name"])
        variables[key] = int(found.group(1)) if found else None
    return variables


def _derive(key: str, how: Mapping, entries: list[dict], layer_ids: list[int | None]) -> Any:
    path = f"recipe.derive.{key}"
    if how.get("layers"):
        ids = [i for i in layer_ids if i is not None]
        if not ids:
            raise SpecError(f"recipe.{key}", "no tensor name carries a layer index (h.N., layers.N., blocks.N.); "
                                             f"give {key} explicitly")
        return max(ids) + 1
    if "dim_of" in how:
        globs = how["dim_of"] if isinstance(how["dim_of"], list) else [how["dim_of"]]
        for glob in globs:
            for entry in entries:
                if fnmatch.fnmatchcase(entry["name"], glob) and len(entry["shape"]) > how.get("axis", 0):
                    return entry["shape"][how.get("axis", 0)]
        raise SpecError(f"recipe.{key}", f"no tensor matches {globs} to read it from; give {key} explicitly")
    if how.get("dim_of_last_matrix"):
        matrices = [e for e in entries if len(e["shape"]) >= 2]
        if not matrices:
            raise SpecError(f"recipe.{key}", f"no matrix in the model to read it from; give {key} explicitly")
        return matrices[-1]["shape"][how.get("axis", 1)]
    if "count_distinct" in how:
        pattern = re.compile(how["count_distinct"])
        found = {m.group(1) for e in entries for m in [pattern.search(e["name"])] if m}
        if not found:
            raise SpecError(f"recipe.{key}", f"no tensor name matches {how['count_distinct']!r}; give {key} "
                                             f"explicitly")
        return len(found)
    raise SpecError(path, f"unknown derivation {dict(how)!r} (layers, dim_of, dim_of_last_matrix, count_distinct)")


def _prepare(recipe: Any, tensors: Iterable):
    data, overrides = _base(recipe)
    entries = _tensor_entries(tensors)
    captures = {"layer_id": data.get("layer_id", DEFAULT_LAYER_ID), **data.get("captures", {})}
    try:
        patterns = {k: re.compile(v) for k, v in captures.items()}
    except re.error as error:
        raise SpecError("recipe.captures", f"bad regular expression: {error}") from None
    matrices = [e["name"] for e in entries if len(e["shape"]) >= 2]
    first, last = (matrices[0], matrices[-1]) if matrices else (None, None)
    per_tensor = [_per_tensor(e, patterns, first, last) for e in entries]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if data["name"] != "custom":
        accepted = set(data.get("params", {})) | set(data.get("defaults", {})) | set(data.get("derive", {}))
        for key in sorted(set(overrides) - accepted):
            raise SpecError(f"recipe.{key}", f"is not a parameter of recipe {data['name']!r} "
                                             f"(parameters: {', '.join(sorted(accepted)) or 'none'})")
    resolved: dict[str, Any] = {}
    layer_ids = [v["layer_id"] for v in per_tensor]
    for key, how in data.get("derive", {}).items():
        if key not in overrides:
            resolved[key] = _derive(key, how, entries, layer_ids)
    resolved.update({k: v for k, v in overrides.items() if not isinstance(v, str)})
    for key, value in {**data.get("defaults", {}), **data.get("params", {})}.items():
        if key not in overrides:
            resolved[key] = evaluate(value, resolved, f"recipe.{key}")
    for key, value in overrides.items():
        resolved[key] = evaluate(value, resolved, f"recipe.{key}")
    return data, entries, per_tensor, resolved


def resolve(recipe: Any, tensors: Iterable) -> dict:
    """The recipe's parameters for this model: given, defaulted or derived, every one a value."""
    data, _, _, resolved = _prepare(recipe, tensors)
    return {"recipe": data["name"], **resolved}


def _matches(rule: dict, entry: dict, variables: dict, index: int) -> bool:
    globs = rule.get("match", "*")
    globs = [globs] if isinstance(globs, str) else list(globs)
    if not any(fnmatch.fnmatchcase(entry["name"], g) for g in globs):
        return False
    modules = rule.get("module")
    if modules is not None:
        modules = [modules] if isinstance(modules, str) else list(modules)
        if entry["module"] not in modules:
            return False
    if "where" in rule:
        try:
            return bool(_eval(ast.parse(rule["where"], mode="eval").body, variables))
        except _Unknown as error:
            if "does not apply" in str(error):
                return False
            raise SpecError(f"recipe.rules[{index}].where", str(error)) from None
        except SyntaxError as error:
            raise SpecError(f"recipe.rules[{index}].where", f"not an expression: {error.msg}") from None
    return True


def _rule_params(rule: dict, variables: Mapping[str, Any], tensor: str) -> dict:
    """Evaluate a rule's parameters for one tensor; string-typed scheme parameters stay strings."""
    info = SCHEMES.get(rule["scheme"])
    params = {}
    for key, value in (rule.get("params") or {}).items():
        kind = info.params[key].type if info is not None and key in info.params else "float"
        if kind == "str":
            params[key] = value
            continue
        value = evaluate(value, variables, f"tensors.{tensor}.params.{key}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"tensors.{tensor}.params.{key}", f"must evaluate to a number, got {value!r}")
        params[key] = int(value) if kind == "int" else float(value)
    return params


def expand(recipe: Any, tensors: Iterable, *, seed: int | None = None) -> list[dict]:
    """Spec dicts (engine form) for every tensor, in the given order.

    ``tensors``: ``(name, shape[, dtype[, module_type]])`` or dicts with those keys.
    Raises :class:`SpecError` naming an unmatched tensor or an unused required rule.
    """
    data, entries, per_tensor, resolved = _prepare(recipe, tensors)
    rules = data["rules"]
    for index, rule in enumerate(rules):
        unknown = sorted(set(rule) - _RULE_KEYS)
        if unknown:
            raise SpecError(f"recipe.rules[{index}].{unknown[0]}", f"is not a rule field ({', '.join(sorted(_RULE_KEYS))})")
        if "scheme" not in rule:
            raise SpecError(f"recipe.rules[{index}].scheme", "is required")
    used = [False] * len(rules)
    specs = []
    for entry, tensor_vars in zip(entries, per_tensor):
        variables = {**resolved, **tensor_vars}
        for index, rule in enumerate(rules):
            if _matches(rule, entry, variables, index):
                used[index] = True
                break
        else:
            raise SpecError(f"tensors.{entry['name']}", f"no rule of recipe {data['name']!r} matches tensor "
                                                        f"{entry['name']!r} (shape {entry['shape']})")
        spec = {"name": entry["name"], "shape": entry["shape"], "dtype": entry["dtype"], "scheme": rule["scheme"],
                "params": _rule_params(rule, variables, entry["name"])}
        if "layout" in rule:
            spec["layout"] = rule["layout"]
        if seed is not None:
            spec["seed"] = seed
        specs.append(spec)
    for index, rule in enumerate(rules):
        if not used[index] and not rule.get("optional"):
            raise SpecError(f"recipe.rules[{index}]", f"rule {rule.get('match')!r} of recipe {data['name']!r} "
                                                      "matches no tensor")
    for spec in specs:  # every expanded spec is valid, or the error names the tensor
        try:
            spec_from_dict(spec, limits=None)
        except SpecError as error:
            raise SpecError(f"tensors.{spec['name']}.{error.field}", error.message) from None
    return specs


def expand_manifest(manifest: Mapping) -> dict:
    """``{"recipe": R, "seed": S, "tensors": [{"name", "shape", ...}]}`` -> a plain manifest whose
    tensors are full specs and whose ``recipe`` records every resolved parameter."""
    if not isinstance(manifest, Mapping) or "recipe" not in manifest:
        raise SpecError("manifest.recipe", "is required to expand a manifest")
    unknown = sorted(set(manifest) - {"recipe", "seed", "name", "tensors"})
    if unknown:
        raise SpecError(f"manifest.{unknown[0]}", "is not a manifest field (recipe, seed, name, tensors)")
    tensors = manifest.get("tensors")
    if isinstance(tensors, Mapping):
        tensors = [dict(spec, name=name) for name, spec in tensors.items()]
    if tensors is None or isinstance(tensors, (str, bytes)):
        raise SpecError("manifest.tensors", "must be a list of {name, shape} entries")
    specs = expand(manifest["recipe"], tensors)
    out = {"seed": manifest.get("seed", 0) or 0, "recipe": resolve(manifest["recipe"], tensors), "tensors": specs}
    if manifest.get("name"):
        out["name"] = manifest["name"]
    return out


__all__ = ["BUILTINS", "RECIPE_NAMES", "evaluate", "exact_pow", "expand", "expand_manifest", "resolve"]
