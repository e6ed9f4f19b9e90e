"""``recipe="hf"``: Hugging Face ``PreTrainedModel._init_weights`` (transformers 4.x/5.x), read from model.config.

std = config.initializer_range (init_std, initializer_factor, else 0.02):
Linear, Conv1d-3d, ConvTranspose1d/2d and GPT-2's ``Conv1D`` (weight ``[in, out]``): weight N(0, std^2),
bias 0; Embedding: N(0, std^2), padding row 0; LayerNorm/RMSNorm (by class name), GroupNorm, BatchNorm:
weight 1, bias 0; LSTM: weights xavier_uniform, biases 0; MultiheadAttention: torch's own.
GPT-2: ``c_proj.weight`` of each attention and MLP block N(0, (std / sqrt(2 * n_layer))^2).
BERT: the LM head's ``bias`` 0.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from torch import nn

from .modules import ONES, XAVIER_UNIFORM, ZEROS, _multihead_attention, _with_padding_row

_LINEAR_AND_CONV = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
_NORM_TYPES = (nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _config(root: nn.Module):
    config = getattr(root, "config", None)
    if config is None:
        raise ValueError(f"recipe='hf' reads the model's config: give a transformers PreTrainedModel, "
                         f"not a {type(root).__name__}")
    return config


def initializer_std(config) -> float:
    """PreTrainedModel._init_weights' std: initializer_range (0 means 0.02), else init_std,
    else initializer_factor, else 0.02."""
    if hasattr(config, "initializer_range"):
        return config.initializer_range or 0.02
    if hasattr(config, "init_std"):
        return config.init_std
    if hasattr(config, "initializer_factor"):
        return config.initializer_factor
    return 0.02


def _normal(std: float) -> dict:
    return {"scheme": "normal", "params": {"mean": 0.0, "std": float(std)}}


def _is_norm(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, _NORM_TYPES) or "LayerNorm" in name or "RMSNorm" in name


def _gpt2_block_types() -> tuple[type, ...]:
    try:
        from transformers.models.gpt2.modeling_gpt2 import GPT2MLP, GPT2Attention
    except ImportError:  # pragma: no cover - depends on the transformers build
        return ()
    return GPT2Attention, GPT2MLP


def _conv1d_type() -> tuple[type, ...]:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover
        return ()
    return (Conv1D,)


def _bert_head_type() -> tuple[type, ...]:
    try:
        from transformers.models.bert.modeling_bert import BertLMPredictionHead
    except ImportError:  # pragma: no cover
        return ()
    return (BertLMPredictionHead,)


def hf_recipe(module: nn.Module, root: nn.Module) -> Mapping[str, Mapping[str, Any]]:
    config = _config(root)
    std = initializer_std(config)
    if isinstance(module, _gpt2_block_types()):
        return {"c_proj.weight": _normal(std / math.sqrt(2 * config.n_layer))}
    if isinstance(module, _LINEAR_AND_CONV + _conv1d_type()):
        return {"weight": _normal(std), "bias": ZEROS}
    if isinstance(module, nn.LSTM):
        return {name: XAVIER_UNIFORM if "weight" in name else ZEROS for name, _ in module.named_parameters()}
    if isinstance(module, nn.Embedding):
        return {"weight": _with_padding_row(_normal(std), module)}
    if isinstance(module, nn.MultiheadAttention):
        return _multihead_attention(module, root)
    if _is_norm(module):
        return {"weight": ONES, "bias": ZEROS}
    if isinstance(module, _bert_head_type()):
        return {"bias": ZEROS}
    return {}


__all__ = ["hf_recipe", "initializer_std"]
