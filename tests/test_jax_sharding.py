"""weightinit.jax.sharding.materialize on 8 fake CPU devices (a subprocess: XLA_FLAGS must be set
before jax is imported): meshes (8,), (2, 4), (4, 2), several PartitionSpecs, replicated and uneven
shards; every array equals the single-device generate bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")

SCRIPT = textwrap.dedent(r'''
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import weightinit as wi
    from weightinit.jax import materialize

    assert len(jax.devices()) == 8, jax.devices()
    devices = np.array(jax.devices())
    meshes = {"8": Mesh(devices.reshape(8), ("x",)), "2x4": Mesh(devices.reshape(2, 4), ("x", "y")),
              "4x2": Mesh(devices.reshape(4, 2), ("x", "y"))}
    specs = [
        {"scheme": "normal", "shape": [16, 24], "seed": 1, "name": "w"},
        {"scheme": "glorot_uniform", "shape": [8, 16, 4], "dtype": "bfloat16", "seed": 2, "layout": "keras"},
        {"scheme": "truncated_normal", "shape": [32, 8], "dtype": "float64", "seed": 3},
        {"scheme": "sparse", "shape": [16, 8], "params": {"sparsity": 0.25}, "dtype": "float16", "seed": 4},
        {"scheme": "orthogonal", "shape": [16, 8], "seed": 5},
    ]
    partitions = {"8": [P("x"), P(None, "x"), P()],
                  "2x4": [P("x", "y"), P("y", "x"), P(("x", "y")), P(None, "y"), P("x")],
                  "4x2": [P("x", "y"), P("y"), P(None, ("x", "y")), P()]}
    results = []
    for mesh_name, mesh in meshes.items():
        for spec in specs:
            want = wi.generate_raw(spec, backend="numpy")
            for partition in partitions[mesh_name]:
                if len(partition) > len(spec["shape"]):
                    continue
                sharding = NamedSharding(mesh, partition)
                try:
                    array = materialize(spec, sharding)
                except ValueError as error:  # a layout JAX itself refuses (indivisible dims)
                    results.append([mesh_name, spec["scheme"], str(partition), "refused: " + str(error)[:80]])
                    continue
                got = np.asarray(array)
                same = (array.shape == want.shape and array.sharding == sharding
                        and got.tobytes() == want.tobytes() and str(array.dtype) == spec.get("dtype", "float32"))
                shards = len({tuple((s.start, s.stop) for s in shard.index) for shard in array.addressable_shards})
                results.append([mesh_name, spec["scheme"], str(partition), same, shards])
    # uneven: 10 rows over 4 devices, where this JAX allows it
    try:
        spec = {"scheme": "uniform", "shape": [10, 6], "seed": 9}
        array = materialize(spec, NamedSharding(meshes["4x2"], P("x")))
        results.append(["4x2", "uniform-uneven", "P(x)", np.asarray(array).tobytes()
                        == wi.generate_raw(spec).tobytes(), len(array.addressable_shards)])
    except ValueError as error:
        results.append(["4x2", "uniform-uneven", "P(x)", "refused: " + str(error)[:80]])
    print(json.dumps(results))
''')


def test_materialize_equals_single_device_generate():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    compared = [row for row in results if isinstance(row[3], bool)]
    wrong = [row for row in compared if row[3] is not True]
    assert not wrong, wrong
    assert len(compared) >= 40, results
    sharded = {(row[0], row[2]) for row in compared if row[4] > 1}
    assert {("8", "P('x',)"), ("2x4", "P('x', 'y')"),
            ("4x2", "P(None, ('x', 'y'))")} <= sharded
    assert any(row[2] == "P()" and row[4] == 1 for row in compared)  # replicated: one region


def test_float64_without_x64_is_refused():
    jax = pytest.importorskip("jax")
    from weightinit import SpecError
    from weightinit.jax import materialize

    if jax.config.jax_enable_x64:
        pytest.skip("x64 enabled in this process")
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with pytest.raises(SpecError, match="dtype"):
        materialize({"scheme": "normal", "shape": [4], "dtype": "float64"}, sharding)
