"""bfloat16 files: one format whatever the environment.

``.npy`` holds the bits as little-endian uint16 (``'<u2'``); ``.safetensors`` stores ``BF16``. Files
written with and without ml_dtypes are byte-identical and load the same in numpy, torch
(``torch.from_numpy``) and safetensors. The absence of ml_dtypes is real: a subprocess blocks
its import (``sys.modules['ml_dtypes'] = None``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import weightinit as wi

REPO = Path(__file__).resolve().parents[1]
SPEC = {"scheme": "normal", "shape": [8, 4], "dtype": "bfloat16", "seed": 5, "name": "w"}

#: Writes w.npy and w.safetensors with the CLI, then reads them back every way it can; prints JSON.
WRITE_AND_READ = r"""
import json, sys
if sys.argv[1] == "without":
    sys.modules["ml_dtypes"] = None  # `import ml_dtypes` now raises ImportError
out = sys.argv[2]
from weightinit.cli import main
args = ["generate", "--scheme", "normal", "--shape", "8", "4", "--dtype", "bfloat16", "--seed", "5", "--name", "w"]
assert main([*args, "-o", out + "/w.npy"]) == 0
assert main([*args, "-o", out + "/w.safetensors"]) == 0
import numpy as np
found = {}
loaded = np.load(out + "/w.npy")
found["npy_dtype"] = loaded.dtype.str
found["npy_shape"] = list(loaded.shape)
found["npy_bits"] = loaded.view(np.uint16).tobytes().hex()
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    tensor = torch.from_numpy(np.load(out + "/w.npy")).view(torch.bfloat16)
    found["torch_npy_bits"] = tensor.view(torch.int16).numpy().view(np.uint16).tobytes().hex()
    found["torch_npy_float"] = tensor.float().flatten().tolist()
    from safetensors.torch import load_file
    st = load_file(out + "/w.safetensors")["w"]
    found["safetensors_torch_dtype"] = str(st.dtype)
    found["safetensors_torch_bits"] = st.view(torch.int16).numpy().view(np.uint16).tobytes().hex()
try:
    import ml_dtypes
except ImportError:
    ml_dtypes = None
if ml_dtypes is not None:
    from safetensors.numpy import load_file
    found["safetensors_numpy_bits"] = load_file(out + "/w.safetensors")["w"].view(np.uint16).tobytes().hex()
print(json.dumps(found))
"""


def _write_and_read(mode: str, directory: Path) -> dict:
    directory.mkdir()
    result = subprocess.run([sys.executable, "-c", WRITE_AND_READ, mode, str(directory)], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bf16_files_are_the_same_with_and_without_ml_dtypes(tmp_path):
    pytest.importorskip("safetensors")
    want_bits = wi.generate_raw(SPEC).astype("<u2").tobytes().hex()
    found = {mode: _write_and_read(mode, tmp_path / mode) for mode in ("with", "without")}
    for name in ("w.npy", "w.safetensors"):
        assert (tmp_path / "with" / name).read_bytes() == (tmp_path / "without" / name).read_bytes(), name
    for mode, seen in found.items():
        assert seen["npy_dtype"] == "<u2" and seen["npy_shape"] == [8, 4], mode
        assert seen["npy_bits"] == want_bits, mode
        if "torch_npy_bits" in seen:
            assert seen["torch_npy_bits"] == want_bits and seen["safetensors_torch_bits"] == want_bits, mode
            assert seen["safetensors_torch_dtype"] == "torch.bfloat16"
    if "torch_npy_float" in found["with"]:
        assert found["with"]["torch_npy_float"] == found["without"]["torch_npy_float"]
    assert "safetensors_numpy_bits" not in found["without"]
    if "safetensors_numpy_bits" in found["with"]:
        assert found["with"]["safetensors_numpy_bits"] == want_bits


def test_bf16_npy_values_are_the_float32_values_rounded():
    torch = pytest.importorskip("torch")
    bits = wi.generate_raw(SPEC)
    as_bf16 = torch.from_numpy(bits).view(torch.bfloat16).float()
    rounded = torch.from_numpy(wi.generate({**SPEC, "dtype": "float32"})).to(torch.bfloat16).float()
    assert torch.equal(as_bf16, rounded)
    assert bits.dtype == np.uint16
