"""The command line's edges: bad files, signals, server addresses, help texts, terminals, spec forms.

Signals are real: the CLI runs as a subprocess and gets SIGINT/SIGTERM/SIGHUP while it works;
terminals are real pseudo-terminals (pty).
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import weightinit as wi
from weightinit.cli import DEFAULT_PORT, build_parser, server_address

REPO = Path(__file__).resolve().parents[1]
#: 96M float32 = 384 MB through the NumPy reference: several seconds here, so a signal lands mid-write.
LARGE = ["--scheme", "normal", "--shape", str(96 << 20), "--backend", "numpy"]


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "weightinit", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120, **kw)


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- input files -------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--spec", "--manifest"])
def test_non_utf8_file_is_exit_2_one_line(tmp_path, flag):
    bad = tmp_path / "latin1.json"
    bad.write_bytes('{"scheme": "normal", "shape": [2], "name": "caf\u00e9"}'.encode("latin-1"))
    result = run_cli("generate", flag, str(bad), "-o", str(tmp_path / "x.safetensors"))
    assert result.returncode == 2
    assert "not UTF-8" in _one_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latin1.json"]


def test_spec_in_the_proto_json_form_gives_the_same_bytes(tmp_path):
    engine_form = {"scheme": "kaiming_normal", "shape": [16, 8], "seed": 7, "name": "fc1.weight", "dtype": "float16",
                   "params": {"mode": "fan_out", "nonlinearity": "relu"}}
    proto_form = {"kaiming_normal": {"mode": "FAN_MODE_FAN_OUT", "nonlinearity": "NONLINEARITY_RELU"},
                  "shape": [16, 8], "seed": "7", "name": "fc1.weight", "dtype": "DATA_TYPE_FP16"}
    outputs = []
    for label, spec in (("engine", engine_form), ("proto", proto_form)):
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(spec))
        out = tmp_path / f"{label}.npy"
        result = run_cli("generate", "--spec", str(path), "-o", str(out))
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert np.array_equal(np.load(tmp_path / "proto.npy"), wi.generate(engine_form))


def test_spec_in_neither_form_or_a_broken_proto_form_says_which(tmp_path):
    neither = tmp_path / "neither.json"
    neither.write_text(json.dumps({"shape": [2]}))
    line = _one_line(run_cli("generate", "--spec", str(neither), "-o", str(tmp_path / "x.npy")))
    assert "neither the engine form" in line and "proto JSON form" in line
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"normal": {"sigma": 1}, "shape": [2]}))
    result = run_cli("generate", "--spec", str(broken), "-o", str(tmp_path / "x.npy"))
    assert result.returncode == 2 and "read as the proto JSON form" in _one_line(result)


# -- server addresses ------------------------------------------------------------


@pytest.mark.parametrize("text, target", [
    ("127.0.0.1", f"127.0.0.1:{DEFAULT_PORT}"), ("127.0.0.1:8000", "127.0.0.1:8000"),
    ("localhost", f"localhost:{DEFAULT_PORT}"), ("[::1]", f"[::1]:{DEFAULT_PORT}"), ("[::1]:7", "[::1]:7"),
    ("dns:///svc.example:443", "dns:///svc.example:443"),
])
def test_server_address_defaults_to_the_service_port(text, target):
    assert server_address(text) == target
    assert build_parser().parse_args(["describe", "--server", text]).server == target


@pytest.mark.parametrize("text", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:http", "::1", ":50051", "[::1]x"])
def test_bad_server_addresses_are_exit_2_one_line(tmp_path, text):
    result = run_cli("generate", "--scheme", "ones", "--shape", "2", "--server", text, "-o", str(tmp_path / "x.npy"))
    assert result.returncode == 2
    assert "--server" in _one_line(result)
    if text.endswith("99999"):
        assert "1..65535" in result.stderr


# -- help and describe -------------------------------------------------------------


def test_help_texts():
    generate = run_cli("generate", "--help").stdout
    usage = generate[:generate.index("\n\n")]
    assert "-o OUT" in usage and "[-o OUT]" not in usage
    assert "deadline" in generate[generate.index("--timeout"):]
    serve = run_cli("serve", "--help").stdout
    assert "until SIGTERM" in serve and "compiles its kernels" in serve
    for command in ("describe", "health"):
        text = run_cli(command, "--help").stdout
        assert "deadline" in text[text.index("--timeout"):], command


def test_describe_lists_dtypes_as_dtype_takes_them():
    result = run_cli("describe")
    line = next(line for line in result.stdout.splitlines() if line.startswith("dtypes"))
    assert line.split(": ", 1)[1].split(", ") == list(wi.DTYPES)
    for dtype in wi.DTYPES:
        assert build_parser().parse_args(["generate", "--dtype", dtype, "-o", "x.npy"]).dtype == dtype


# -- terminals and signals -----------------------------------------------------------


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def _drain(fd: int, proc: subprocess.Popen, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    return seen


def test_binary_to_a_terminal_is_refused(tmp_path):
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "weightinit", "generate", "--scheme", "ones", "--shape", "4",
                                 "-o", "-"], stdout=slave, stderr=subprocess.PIPE, cwd=REPO)
        _, err = proc.communicate(timeout=60)
        os.close(slave)
        slave = None
        written = _drain(master, proc, 1.0)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 2 and b"is a terminal" in err and written == b""


@pytest.mark.parametrize("source", ["local", "server"])
def test_ctrl_c_mid_download_ends_the_progress_line_and_exits_130(tmp_path, server_process, source):
    out = tmp_path / "big.npy"
    where = ["--server", server_process("--backend", "numpy").target] if source == "server" else []
    master, slave = pty.openpty()  # stderr on a terminal: the progress bar is drawn
    try:
        proc = subprocess.Popen([sys.executable, "-m", "weightinit", "generate", *LARGE, *where, "-o", str(out)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, cwd=REPO)
        os.close(slave)
        seen = _read_until(master, b"MiB", 60)
        assert b"MiB" in seen, seen
        proc.send_signal(signal.SIGINT)
        seen += _drain(master, proc, 30)
        proc.wait(timeout=30)
    finally:
        os.close(master)
    text = seen.decode()
    assert proc.returncode == 130, text
    assert "Traceback" not in text
    progress, _, rest = text.rpartition("MB/s")
    assert rest.strip() == "weightinit: interrupted" and rest.startswith(("\n", "\r\n")), repr(text[-200:])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_leave_no_part_file(tmp_path, signum):
    out = tmp_path / "big.npy"
    proc = subprocess.Popen([sys.executable, "-m", "weightinit", "generate", *LARGE, "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 60
    parts: list[Path] = []
    while time.monotonic() < deadline and not (parts and parts[0].stat().st_size > (8 << 20)):
        parts = list(tmp_path.glob(".big.npy.*.part"))
        time.sleep(0.05)
    assert parts, "the .part file never appeared"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert err.strip() == f"weightinit: stopped by {signal.Signals(signum).name}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("delay", [0.002, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4])
def test_ctrl_c_while_the_command_loads_prints_no_traceback(tmp_path, delay):
    # The console script's entry point, with a real SIGINT (from a forked child) `delay` seconds into
    # loading the command line, numpy and the engine, and running.
    code = ("import os, signal, sys, time\n"
            "from weightinit.__main__ import run\n"
            "parent = os.getpid()\n"
            "if os.fork() == 0:\n"
            f"    time.sleep({delay}); os.kill(parent, signal.SIGINT); os._exit(0)\n"
            "sys.exit(run())\n")
    result = subprocess.run([sys.executable, "-c", code, "generate", *LARGE, "-o", str(tmp_path / "x.npy")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines()[-1:] == ["weightinit: interrupted"]
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
