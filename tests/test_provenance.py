"""Provenance in .safetensors: each tensor's resolved spec, the algorithm version and its SHA-256 in
the metadata; `weightinit verify` recomputes (whole or sampled, locally or on a server)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import weightinit as wi
from weightinit.cli import main
from weightinit.provenance import read_safetensors_header

MANIFEST = {"seed": 5, "tensors": [
    {"name": "fc1.weight", "scheme": "kaiming_normal", "shape": [64, 32]},
    {"name": "fc1.bias", "scheme": "zeros", "shape": [64]},
    {"name": "fc2.weight", "scheme": "normal", "shape": [16, 64], "dtype": "bfloat16", "scale": 0.75},
    {"name": "fc2.bias", "scheme": "torch_default", "shape": [16], "dtype": "float16", "params": {"fan_in": 64}},
]}


@pytest.fixture
def written(tmp_path):
    manifest, out = tmp_path / "model.json", tmp_path / "model.safetensors"
    manifest.write_text(json.dumps(MANIFEST))
    assert main(["generate", "--manifest", str(manifest), "-o", str(out), "-q"]) == 0
    return out


def _tensor_bytes(path, name) -> tuple[int, int]:
    header, start = read_safetensors_header(path)
    begin, end = header[name]["data_offsets"]
    return start + begin, start + end


def _flip(path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_metadata_carries_spec_version_and_digest(written):
    header, start = read_safetensors_header(written)
    meta = header["__metadata__"]
    assert meta["weightinit.algorithm_version"] == str(wi.ALGORITHM_VERSION)
    raw = written.read_bytes()
    for tensor in MANIFEST["tensors"]:
        name = tensor["name"]
        spec = wi.spec_from_dict(json.loads(meta[f"weightinit.spec.{name}"]))
        assert spec == wi.spec_from_dict(dict(tensor, seed=5))
        begin, end = header[name]["data_offsets"]
        data = raw[start + begin:start + end]
        assert data == wi.to_le_bytes(wi.generate_raw(spec))
        assert meta[f"weightinit.sha256.{name}"] == hashlib.sha256(data).hexdigest()


def test_python_save_matches_cli(written, tmp_path):
    out = tmp_path / "py.safetensors"
    meta = wi.save_safetensors(out, MANIFEST)
    header, _ = read_safetensors_header(out)
    cli_meta = read_safetensors_header(written)[0]["__metadata__"]
    for tensor in MANIFEST["tensors"]:
        key = f"weightinit.sha256.{tensor['name']}"
        assert header["__metadata__"][key] == meta[key] == cli_meta[key]
    assert all(check.ok for check in wi.verify_safetensors(out))


def test_generated_file_verifies(written, capsys):
    assert main(["verify", str(written)]) == 0
    assert main(["verify", str(written), "--sample", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and all(line.startswith("ok") for line in lines)


def test_one_changed_byte_is_reported_for_that_tensor(written, capsys):
    begin, end = _tensor_bytes(written, "fc2.weight")
    changed = 333  # element 333 of fc2.weight (bfloat16: 2 bytes each)
    _flip(written, begin + 2 * changed)
    assert main(["verify", str(written)]) == 1
    out = capsys.readouterr().out
    assert f"DIFFERENT fc2.weight: element {changed} differs" in out
    assert out.count("DIFFERENT") == 1
    # sampled: a sample as large as the tensor checks every element by random access
    assert main(["verify", str(written), "--sample", str(16 * 64)]) == 1
    out = capsys.readouterr().out
    assert f"DIFFERENT fc2.weight: element {changed} differs" in out and out.count("DIFFERENT") == 1


def test_sampled_mode_finds_a_tensor_with_many_changed_bytes(written, capsys):
    begin, end = _tensor_bytes(written, "fc1.weight")
    data = bytearray(written.read_bytes())
    for position in range(begin, end, 8):  # every other float32 changed
        data[position] ^= 0x01
    written.write_bytes(bytes(data))
    assert main(["verify", str(written), "--sample", "8"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT fc1.weight" in out and out.count("DIFFERENT") == 1


def test_tampered_digest_is_reported_in_full_mode(written, capsys):
    raw = written.read_bytes()
    meta = read_safetensors_header(written)[0]["__metadata__"]
    digest = meta["weightinit.sha256.fc1.bias"].encode()
    written.write_bytes(raw.replace(digest, b"f" * 64))
    assert main(["verify", str(written)]) == 1
    assert "DIFFERENT fc1.bias: recorded sha256" in capsys.readouterr().out


@pytest.mark.service
def test_verify_on_a_server(written, server, capsys):
    assert main(["verify", str(written), "--server", server.target]) == 0
    assert main(["verify", str(written), "--server", server.target, "--sample", "3"]) == 0
    _flip(written, _tensor_bytes(written, "fc2.bias")[0] + 1)
    assert main(["verify", str(written), "--server", server.target]) == 1
    assert "DIFFERENT fc2.bias: element 0 differs" in capsys.readouterr().out


def test_bad_files_exit_2(tmp_path, written, capsys):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 20)
    assert main(["verify", str(junk)]) == 2
    plain = tmp_path / "plain.safetensors"
    assert main(["generate", "--scheme", "zeros", "--shape", "3", "--range", "0:2", "-o", str(plain)]) == 0
    assert main(["verify", str(plain)]) == 2  # an element range carries no per-tensor provenance
    assert main(["verify", str(tmp_path / "missing.safetensors")]) == 2
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(written.read_bytes()[:-10])
    assert main(["verify", str(truncated)]) == 2
    assert "weightinit verify:" in capsys.readouterr().err


def test_stdout_output_has_specs_without_digests(tmp_path, capfdbinary):
    manifest = tmp_path / "model.json"
    manifest.write_text(json.dumps(MANIFEST))
    assert main(["generate", "--manifest", str(manifest), "-o", "-"]) == 0
    raw = capfdbinary.readouterr().out
    target = tmp_path / "piped.safetensors"
    target.write_bytes(raw)
    meta = read_safetensors_header(target)[0]["__metadata__"]
    assert "weightinit.spec.fc1.weight" in meta and not any(k.startswith("weightinit.sha256.") for k in meta)
    assert all(check.ok for check in wi.verify_safetensors(target))
    assert np.frombuffer(raw[-2:], np.float16)[0] == wi.generate(dict(MANIFEST["tensors"][3], seed=5))[-1]


def test_single_tensor_file_verifies(tmp_path, capsys):
    out = tmp_path / "one.safetensors"
    assert main(["generate", "--scheme", "orthogonal", "--shape", "24", "16", "--seed", "3", "-o", str(out)]) == 0
    assert main(["verify", str(out)]) == 0
    assert "ok        tensor: 384 elements" in capsys.readouterr().out
    begin, _ = _tensor_bytes(out, "tensor")
    _flip(out, begin + 4 * 100 + 3)
    assert main(["verify", str(out), "--sample", "384"]) == 1
    assert "DIFFERENT tensor: element 100 differs" in capsys.readouterr().out
