"""The Megatron-style recipes of docs/sharding.md: the region each tensor-parallel rank takes of the
global tensor, generated on its own, equals that part of the single-process tensor; gathering the
ranks' parts rebuilds the whole."""

from __future__ import annotations

import numpy as np
import pytest

import weightinit as wi

HIDDEN, FFN, TP = 24, 40, 4


def _spec(name: str, shape) -> dict:
    return {"scheme": "xavier_uniform", "shape": list(shape), "name": name, "seed": 11}


def column_parallel_index(out_features: int, rank: int, tp: int):
    """ColumnParallelLinear: weight [out, in], rank r holds output rows [r * out/tp, (r + 1) * out/tp)."""
    rows = out_features // tp
    return np.s_[rank * rows:(rank + 1) * rows, :]


def row_parallel_index(in_features: int, rank: int, tp: int):
    """RowParallelLinear: weight [out, in], rank r holds input columns [r * in/tp, (r + 1) * in/tp)."""
    cols = in_features // tp
    return np.s_[:, rank * cols:(rank + 1) * cols]


def fused_qkv_local(spec: dict, hidden: int, rank: int, tp: int) -> np.ndarray:
    """Fused QKV [3h, h] stored as [q; k; v] blocks: rank r holds its column-parallel rows of each block."""
    rows = hidden // tp
    return np.concatenate([wi.generate(spec, index=np.s_[block * hidden + rank * rows:
                                                         block * hidden + (rank + 1) * rows])
                           for block in range(3)])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_column_and_row_parallel_regions(dtype):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    up = {**_spec("mlp.up.weight", [FFN, HIDDEN]), "dtype": dtype}
    down = {**_spec("mlp.down.weight", [HIDDEN, FFN]), "dtype": dtype}
    whole_up, whole_down = wi.generate(up), wi.generate(down)
    up_parts = [wi.generate(up, index=column_parallel_index(FFN, rank, TP)) for rank in range(TP)]
    down_parts = [wi.generate(down, index=row_parallel_index(FFN, rank, TP)) for rank in range(TP)]
    for rank in range(TP):
        assert up_parts[rank].shape == (FFN // TP, HIDDEN) and down_parts[rank].shape == (HIDDEN, FFN // TP)
        assert up_parts[rank].tobytes() == np.ascontiguousarray(whole_up[column_parallel_index(FFN, rank, TP)]).tobytes()
    assert np.concatenate(up_parts, axis=0).tobytes() == whole_up.tobytes()
    assert np.concatenate(down_parts, axis=1).tobytes() == whole_down.tobytes()


def test_fused_qkv_rows_of_each_block():
    spec = _spec("attn.qkv.weight", [3 * HIDDEN, HIDDEN])  # fans of the fused shape, as nn.MultiheadAttention
    whole = wi.generate(spec)
    q, k, v = np.split(whole, 3)
    rows = HIDDEN // TP
    for rank in range(TP):
        local = fused_qkv_local(spec, HIDDEN, rank, TP)
        want = np.concatenate([block[rank * rows:(rank + 1) * rows] for block in (q, k, v)])
        assert local.tobytes() == want.tobytes()
    gathered = [fused_qkv_local(spec, HIDDEN, rank, TP) for rank in range(TP)]
    # gathering each block's rows back over ranks rebuilds q, k, v
    for block, reference in enumerate((q, k, v)):
        rebuilt = np.concatenate([part[block * rows:(block + 1) * rows] for part in gathered])
        assert rebuilt.tobytes() == reference.tobytes()


def test_fans_come_from_the_global_shape():
    """A rank's part is not a smaller tensor: the bound stays that of the global [out, in]."""
    spec = {"scheme": "torch_default", "shape": [FFN, HIDDEN], "seed": 1}
    part = wi.generate(spec, index=row_parallel_index(HIDDEN, 0, TP))
    local_only = wi.generate({**spec, "shape": [FFN, HIDDEN // TP]})
    assert np.abs(part).max() <= 1 / np.sqrt(HIDDEN)
    assert np.abs(local_only).max() > 1 / np.sqrt(HIDDEN)  # fan_in of the shard would widen the bound
