"""The allocator tuning of weightinit.api.memory: on glibc, a stream's ~1 MiB message buffers
are reused instead of being faulted in afresh for every message."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, resource, sys
import numpy as np
from weightinit.api import memory
from weightinit.client import Client
from weightinit.server import create_server

server = create_server("127.0.0.1", 0)
spec = {"scheme": "uniform", "shape": [16 << 20]}
out = np.ones(16 << 20, np.float32)  # touched already: only the messages can fault
with Client(server.target) as client:
    client.generate(spec, out=out)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        client.generate(spec, out=out)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
server.stop(0)
print(json.dumps({"tuned": memory.keep_message_buffers(), "faults_per_mib": faults / 128}))
"""


def _run(env_value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "WEIGHTINIT_MALLOC_TUNING"}
    if env_value is not None:
        env["WEIGHTINIT_MALLOC_TUNING"] = env_value
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_streaming_reuses_message_buffers_on_glibc():
    tuned, untuned = _run(None), _run("0")
    assert tuned["tuned"] is True and untuned["tuned"] is False
    # server and client in one process, 128 MiB streamed: untuned, most pages of every ~1 MiB
    # message buffer are faulted in afresh (about 220 of 256 per MiB measured here)
    assert tuned["faults_per_mib"] < 64, (tuned, untuned)
    assert untuned["faults_per_mib"] > tuned["faults_per_mib"], (tuned, untuned)


def test_the_tuning_can_be_turned_off():
    assert _run("0")["tuned"] is False
