"""DTensor materialize / fill_local_ / init_module over real torch.distributed (gloo, spawned processes on 127.0.0.1).

Every rank generates only its shard; gathered (``full_tensor``) results must equal the single-process
``weightinit.generate`` bit for bit: 1-D meshes of 1, 2 and 4 ranks, a 2x2 mesh, uneven shards, FSDP2
``fully_shard`` on meta + ``to_empty``, TP ``parallelize_module`` and FSDP2 + TP (strided shards).
Few spawns (each costs seconds): all cases of one world size run in one process group.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import weightinit as wi  # noqa: E402

DIM, HIDDEN, VOCAB = 10, 22, 13  # not multiples of 4: uneven shards everywhere


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raw_bits(tensor) -> bytes:
    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    return tensor.numpy().tobytes()


def _expected_bits(spec) -> bytes:
    return wi.generate_raw(spec, backend="numpy").tobytes()


def _param_spec(name: str, shape) -> dict:
    if len(shape) == 2 and name.endswith("weight") and "embed" not in name:
        return {"scheme": "torch_default", "shape": list(shape), "name": name, "seed": 5}
    return {"scheme": "normal", "params": {"std": 0.02}, "shape": list(shape), "name": name, "seed": 5}


def _model():
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(DIM)
            self.q, self.k = nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)
            self.up, self.down = nn.Linear(DIM, HIDDEN), nn.Linear(HIDDEN, DIM)

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, DIM)
            self.layers = nn.ModuleList([Block(), Block()])
            self.head = nn.Linear(DIM, VOCAB, bias=False)

    with torch.device("meta"):
        return Tiny()


def _tp_plan():
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel
    plan = {}
    for layer in range(2):
        plan.update({f"layers.{layer}.q": ColwiseParallel(), f"layers.{layer}.k": ColwiseParallel(),
                     f"layers.{layer}.up": ColwiseParallel(), f"layers.{layer}.down": RowwiseParallel()})
    return plan


def _check_module(model, label: str, checks: list) -> None:
    """Fill every parameter from its global spec via fill_local_, then compare gathered values."""
    from torch.distributed.tensor import DTensor
    from weightinit.torch.distributed import fill_local_

    for name, parameter in model.named_parameters():
        fill_local_(parameter, _param_spec(name, parameter.shape))
    placements_seen = set()
    for name, parameter in model.named_parameters():
        if isinstance(parameter, DTensor):  # TP leaves unplanned modules (norms, embedding) plain
            placements_seen.add(str(parameter.placements))
            full = parameter.full_tensor()
        else:
            full = parameter
        checks.append([f"{label} {name} {getattr(parameter, 'placements', 'plain')}",
                       _raw_bits(full) == _expected_bits({**_param_spec(name, parameter.shape), "dtype": "float32"})])
    checks.append([f"{label} placements {sorted(placements_seen)}", bool(placements_seen)])


def _check_init_module(model, label: str, checks: list) -> None:
    """init_module on the sharded model: each rank writes its shards; gathered == unsharded init_module."""
    from torch.distributed.tensor import DTensor
    from weightinit.torch import init_module

    init_module(model, seed=5)
    reference = _model()
    reference.to_empty(device="cpu")
    init_module(reference, seed=5)
    expected = dict(reference.named_parameters())
    for name, parameter in model.named_parameters():
        full = parameter.full_tensor() if isinstance(parameter, DTensor) else parameter
        checks.append([f"init_module {label} {name} {getattr(parameter, 'placements', 'plain')}",
                       _raw_bits(full) == _raw_bits(expected[name].detach())])


def _materialize_cases(mesh, label: str, checks: list, cases) -> None:
    from weightinit.torch.distributed import materialize

    for spec, placements in cases:
        tensor = materialize(spec, mesh, placements)
        local_elements = tensor.to_local().numel()
        full = tensor.full_tensor()
        checks.append([f"{label} {spec['scheme']} {spec['shape']} {spec.get('dtype', 'float32')} {placements} "
                       f"local={local_elements}",
                       tuple(full.shape) == tuple(spec["shape"]) and _raw_bits(full) == _expected_bits(spec)])


def _worker(rank: int, world: int, port: int, result_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import parallelize_module
    from torch.distributed.tensor.placement_types import _StridedShard

    checks: list = []
    try:
        mesh = init_device_mesh("cpu", (world,))
        specs = [
            {"scheme": "normal", "shape": [10, 7], "seed": 1, "name": "uneven.rows"},
            {"scheme": "kaiming_uniform", "shape": [6, 9, 3], "dtype": "bfloat16", "seed": 2, "name": "conv"},
            {"scheme": "sparse", "shape": [11, 6], "params": {"sparsity": 0.3}, "dtype": "float64", "seed": 3},
            {"scheme": "orthogonal", "shape": [9, 5], "seed": 4},
            {"scheme": "eye", "shape": [7, 5], "dtype": "float16"},
        ]
        cases = [(spec, [placement]) for spec in specs for placement in (Shard(0), Shard(1), Replicate())]
        cases.append((specs[1], [Shard(2)]))
        _materialize_cases(mesh, f"world{world}", checks, cases)

        def fsdp2():
            model = _model()
            for block in model.layers:
                fully_shard(block, mesh=mesh)
            fully_shard(model, mesh=mesh)
            model.to_empty(device="cpu")
            return model

        _check_module(fsdp2(), f"fsdp2 world{world}", checks)
        _check_init_module(fsdp2(), f"fsdp2 world{world}", checks)

        if world > 1:
            def tensor_parallel():
                model = _model()
                parallelize_module(model, mesh, _tp_plan())
                model.to_empty(device="cpu")
                return model

            _check_module(tensor_parallel(), f"tp world{world}", checks)
            _check_init_module(tensor_parallel(), f"tp world{world}", checks)

        if world == 4:
            mesh2 = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
            cases = [(specs[0], [Shard(0), Shard(1)]), (specs[0], [Shard(0), Shard(0)]),
                     (specs[1], [Replicate(), Shard(1)]), (specs[1], [Shard(1), Shard(0)]),
                     (specs[2], [Shard(1), Replicate()]), (specs[0], [_StridedShard(0, split_factor=2), Shard(0)])]
            _materialize_cases(mesh2, "mesh2x2", checks, cases)

            def fsdp2_tp():
                model = _model()
                parallelize_module(model, mesh2["tp"], _tp_plan())
                for block in model.layers:
                    fully_shard(block, mesh=mesh2["dp"])
                fully_shard(model, mesh=mesh2["dp"])
                model.to_empty(device="cpu")
                return model

            _check_module(fsdp2_tp(), "fsdp2+tp 2x2", checks)
            _check_init_module(fsdp2_tp(), "fsdp2+tp 2x2", checks)
    finally:
        Path(result_dir, f"{rank}.json").write_text(json.dumps(checks))
        try:
            dist.barrier()  # no rank tears gloo down while another is still in a collective
        finally:
            dist.destroy_process_group()
    # Skip the interpreter's teardown: gloo's threads can abort it ("terminate called without an
    # active exception"), which would fail a run whose checks all passed. Errors above still raise.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _spawn(world: int, tmp_path) -> list:
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    results = [json.loads(Path(tmp_path, f"{rank}.json").read_text()) for rank in range(world)]
    return results


@pytest.mark.parametrize("world", [1, 2, 4])
def test_gathered_shards_equal_single_process_generate(world, tmp_path):
    results = _spawn(world, tmp_path)
    for rank, checks in enumerate(results):
        failed = [label for label, ok in checks if not ok]
        assert not failed, f"rank {rank}: {failed}"
        assert len(checks) == len(results[0]) and len(checks) >= 16 + (20 if world > 1 else 0)
    labels = " ".join(label for label, _ in results[0])
    assert "init_module fsdp2" in labels
    if world > 1:
        assert "tp world" in labels and "Shard(dim=1)" in labels
    if world == 4:
        assert "fsdp2+tp 2x2 layers.0.q.weight (_StridedShard(dim=0, sf=2), Shard(dim=0))" in labels
        assert "fsdp2+tp 2x2 layers.0.down.weight (Shard(dim=0), Shard(dim=1))" in labels


def test_local_shards_of_uneven_rows_follow_torch_chunk():
    """Geometry without a process group: 10 rows on 4 ranks -> 3, 3, 3, 1 (torch.chunk)."""
    from torch.distributed.tensor import Shard

    sizes = [Shard(0)._local_shard_size_and_offset(10, 4, rank) for rank in range(4)]
    assert [size for size, _ in sizes] == [len(chunk) for chunk in torch.arange(10).chunk(4)]
    spec = {"scheme": "normal", "shape": [10, 7], "seed": 1}
    whole = wi.generate(spec)
    pieces = [wi.generate(spec, index=[(offset, offset + size)]) for size, offset in sizes]
    assert np.concatenate(pieces).tobytes() == whole.tobytes()


def test_fill_local_rejects_a_local_shape():
    from weightinit.torch.distributed import fill_local_

    with pytest.raises(wi.SpecError, match="shape"):
        fill_local_(torch.empty(3, 4), {"scheme": "normal", "shape": [6, 4]})
