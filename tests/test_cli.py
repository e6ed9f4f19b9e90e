"""The weightinit command line: local and --server generation, file formats, errors, serve/describe/health."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import weightinit as wi
from weightinit.cli import main

REPO = Path(__file__).resolve().parents[1]
KAIMING = ["--scheme", "kaiming_normal", "--shape", "64", "32", "--seed", "7", "--name", "fc1.weight",
           "--param", "mode=fan_out", "nonlinearity=relu"]
KAIMING_SPEC = {"scheme": "kaiming_normal", "shape": [64, 32], "seed": 7, "name": "fc1.weight",
                "params": {"mode": "fan_out", "nonlinearity": "relu"}}


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "weightinit", *args], capture_output=True, cwd=REPO,
                          input=stdin.encode() if stdin else None, timeout=120)


def read_safetensors(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    blob = path.read_bytes()
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    assert (8 + size) % 8 == 0
    body = blob[8 + size:]
    kinds = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "BF16": np.uint16}
    arrays, end = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, stop = entry["data_offsets"]
        assert begin == end, "tensors must be contiguous"
        end = stop
        arrays[name] = np.frombuffer(body[begin:stop], dtype=kinds[entry["dtype"]]).reshape(entry["shape"])
    assert end == len(body)
    return header, arrays


def _bits(array) -> bytes:
    return np.ascontiguousarray(array).tobytes()


def test_generate_npy_matches_the_engine(tmp_path):
    out = tmp_path / "w.npy"
    assert main(["generate", *KAIMING, "-o", str(out)]) == 0
    loaded = np.load(out)
    assert loaded.shape == (64, 32) and loaded.dtype == np.float32
    assert _bits(loaded) == _bits(wi.generate(KAIMING_SPEC))


def test_spec_file_range_and_raw_stdout(tmp_path):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(KAIMING_SPEC))
    result = run_cli("generate", "--spec", str(spec_file), "--range", "100:1100", "--chunk-elements", "77", "-o", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout == wi.to_le_bytes(wi.generate(KAIMING_SPEC).reshape(-1)[100:1100])
    assert result.stderr == b""


def test_range_npy_is_flat(tmp_path):
    out = tmp_path / "r.npy"
    assert main(["generate", *KAIMING, "--range", "5:50", "-o", str(out)]) == 0
    assert np.load(out).shape == (45,)


def test_bfloat16_npy(tmp_path):
    out = tmp_path / "b.npy"
    assert main(["generate", "--scheme", "normal", "--shape", "4", "4", "--dtype", "bfloat16", "-o", str(out)]) == 0
    loaded = np.load(out)
    want = wi.generate({"scheme": "normal", "shape": [4, 4], "dtype": "bfloat16"})
    assert loaded.shape == (4, 4) and loaded.itemsize == 2 and _bits(loaded) == _bits(want)


def test_single_tensor_safetensors(tmp_path):
    out = tmp_path / "w.safetensors"
    assert main(["generate", *KAIMING, "--dtype", "float16", "-o", str(out)]) == 0
    header, arrays = read_safetensors(out)
    assert header["fc1.weight"]["dtype"] == "F16"
    assert header["__metadata__"]["weightinit.algorithm_version"] == str(wi.ALGORITHM_VERSION)
    assert _bits(arrays["fc1.weight"]) == _bits(wi.generate({**KAIMING_SPEC, "dtype": "float16"}))


def _manifest(tmp_path) -> tuple[Path, dict]:
    manifest = {"seed": 7, "tensors": [
        {"name": "conv.weight", "scheme": "kaiming_normal", "shape": [16, 3, 3, 3]},
        {"name": "conv.bias", "scheme": "torch_default", "shape": [16], "params": {"fan_in": 27}},
        {"name": "emb", "scheme": "normal", "shape": [10, 4], "dtype": "bfloat16", "seed": 3},
        {"name": "empty", "scheme": "zeros", "shape": [0, 4]}]}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(manifest))
    return path, manifest


def test_manifest_to_safetensors_locally_and_from_a_server(tmp_path, server):
    path, manifest = _manifest(tmp_path)
    local_out, remote_out = tmp_path / "local.safetensors", tmp_path / "remote.safetensors"
    assert main(["generate", "--manifest", str(path), "-o", str(local_out)]) == 0
    assert main(["generate", "--manifest", str(path), "--server", server.target, "-o", str(remote_out)]) == 0
    assert local_out.read_bytes() == remote_out.read_bytes()
    header, arrays = read_safetensors(local_out)
    assert list(arrays) == [t["name"] for t in manifest["tensors"]]
    for tensor in manifest["tensors"]:
        spec = {**tensor, "seed": tensor.get("seed", manifest["seed"])}
        assert _bits(arrays[tensor["name"]]) == _bits(wi.generate(spec))


def test_server_flag_gives_identical_bytes(tmp_path, server):
    local_out, remote_out = tmp_path / "l.npy", tmp_path / "r.npy"
    assert main(["generate", *KAIMING, "--dtype", "bfloat16", "-o", str(local_out)]) == 0
    assert main(["generate", *KAIMING, "--dtype", "bfloat16", "--server", server.target, "-o", str(remote_out)]) == 0
    assert local_out.read_bytes() == remote_out.read_bytes()
    result = run_cli("generate", *KAIMING, "--server", server.target, "--range", "3:333", "-o", "-")
    assert result.returncode == 0 and result.stdout == wi.to_le_bytes(wi.generate(KAIMING_SPEC).reshape(-1)[3:333])
    for digest in ("sha256", "blake3"):  # either wire digest, the same file
        out = tmp_path / f"{digest}.npy"
        assert main(["generate", *KAIMING, "--dtype", "bfloat16", "--server", server.target, "--digest", digest,
                     "-o", str(out)]) == 0
        assert out.read_bytes() == local_out.read_bytes()
    result = run_cli("generate", *KAIMING, "--server", server.target, "--digest", "md5", "-o", "-")
    assert result.returncode == 2 and b"--digest" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("args, field", [
    (["--scheme", "nope", "--shape", "3"], "scheme"),
    (["--scheme", "normal", "--shape", "3", "-1"], "shape"),
    (["--scheme", "normal", "--shape", "3", "x"], "shape"),
    (["--scheme", "normal", "--shape", "3", "--dtype", "int8"], "dtype"),
    (["--scheme", "normal", "--shape", "3", "--param", "std=-1"], "params.std"),
    (["--scheme", "normal", "--shape", "3", "--param", "std=abc"], "params.std"),
    (["--scheme", "normal", "--shape", "3", "--param", "sigma=1"], "params.sigma"),
    (["--scheme", "kaiming_normal", "--shape", "3"], "shape"),
    (["--scheme", "normal", "--shape", "3", "--seed", "-4"], "seed"),
    (["--scheme", "normal", "--shape", "3", "--range", "2:1"], "range"),
    (["--scheme", "normal", "--shape", "3", "--layout", "jax"], "layout"),
    (["--shape", "3"], "scheme"),
])
def test_bad_spec_exits_2_with_one_line_naming_the_field(tmp_path, args, field):
    result = run_cli("generate", *args, "-o", str(tmp_path / "x.npy"))
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert f" {field}:" in lines[0], lines[0]
    assert not (tmp_path / "x.npy").exists() and not list(tmp_path.iterdir())


def test_bad_spec_through_a_server_exits_2(tmp_path, server):
    result = run_cli("generate", "--scheme", "sparse", "--shape", "4", "4", "--param", "sparsity=2",
                     "--server", server.target, "-o", str(tmp_path / "x.npy"))
    assert result.returncode == 2 and len(result.stderr.decode().strip().splitlines()) == 1
    assert "sparsity" in result.stderr.decode()


def test_usage_errors_are_one_line_too(tmp_path):
    for args in (["generate", "--bogus"], ["generate", *KAIMING], ["generate", *KAIMING, "-o", "x.txt"]):
        result = run_cli(*args)
        assert result.returncode == 2 and len(result.stderr.decode().strip().splitlines()) == 1, result.stderr


def test_unreachable_server_exits_1(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_cli("generate", *KAIMING, "--server", f"127.0.0.1:{port}", "--timeout", "2", "--retry-seconds", "1",
                     "-o", str(tmp_path / "x.npy"))
    assert result.returncode == 1 and b"UNAVAILABLE" in result.stderr


def test_describe_local_and_remote(server):
    result = run_cli("describe", "--json")
    assert result.returncode == 0
    info = json.loads(result.stdout)
    assert [s["name"] for s in info["schemes"]] == list(wi.SCHEMES)
    remote = run_cli("describe", "--server", server.target)
    assert remote.returncode == 0 and b"kaiming_normal" in remote.stdout and b"active backend" in remote.stdout


def test_serve_port_zero_prints_the_port_and_health_works(server_process):
    process = server_process("--backend", "numpy", "--max-streams", "4")
    host, port = process.target.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    health = run_cli("health", "--server", process.target)
    assert health.returncode == 0 and health.stdout.strip() == b"SERVING"
    info = json.loads(run_cli("describe", "--server", process.target, "--json").stdout)
    assert info["limits"]["max_concurrent_streams"] == 4 and info["active_backend"] == "numpy"


def test_serve_on_a_taken_port_fails_cleanly(server):
    port = server.port
    result = subprocess.run([sys.executable, "-m", "weightinit", "serve", "--port", str(port)], capture_output=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 1 and b"cannot listen" in result.stderr


def test_python_dash_m_and_console_script_agree():
    result = run_cli("--version")
    assert result.returncode == 0 and b"weightinit" in result.stdout
    script = Path(sys.executable).parent / "weightinit"
    if script.exists():
        assert subprocess.run([str(script), "--version"], capture_output=True, timeout=60).stdout == result.stdout


def test_progress_bar_only_on_a_terminal(tmp_path, monkeypatch, capsys):
    import weightinit.cli as cli

    monkeypatch.setattr(cli, "PROGRESS_MIN_BYTES", 1)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["generate", *KAIMING, "-o", str(tmp_path / "p.npy")]) == 0
    assert "100.0%" in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert main(["generate", *KAIMING, "-o", str(tmp_path / "q.npy")]) == 0
    assert capsys.readouterr().err == ""
