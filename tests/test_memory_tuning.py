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


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        found = tuple(int(part) for part in platform.release().split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return found >= (major, minor)


def test_prefault_populates_a_fresh_array_and_keeps_what_was_written():
    import resource

    import numpy as np

    from weightinit.api import memory

    array = np.empty(64 << 20, np.uint8)
    array[:1 << 20] = 7  # written before (and, for the race, while) the pages are populated
    thread = memory.prefault(array)
    if platform.system() != "Linux":
        assert thread is None
        return
    assert thread is not None and memory.prefault(np.empty(1 << 20, np.uint8)) is None  # small: no thread
    thread.join(30)
    assert not thread.is_alive()
    assert (array[:1 << 20] == 7).all()
    if _kernel_at_least(5, 14):  # MADV_POPULATE_WRITE: writing the rest faults (almost) nothing now

        def faults_writing(target) -> int:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            target[1 << 20:] = 1
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

        control = faults_writing(np.empty(64 << 20, np.uint8))  # one per page: 4 KiB, or 2 MiB with THP
        assert control >= 31 and faults_writing(array) <= control // 8, control
