"""The wheel carries the service, the client, the generated stubs and the console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.service
def test_wheel_contains_server_client_stubs_and_entry_point(tmp_path):
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".ci-venv", "node_modules", "build", "*.egg-info", "__pycache__", ".hypothesis"))
    wheels = tmp_path / "wheels"
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "--wheel-dir", str(wheels), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    wheel = next(wheels.glob("weightinit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("weightinit/cli.py", "weightinit/__main__.py", "weightinit/server/app.py",
                   "weightinit/api/wire.py", "weightinit/api/convert.py", "weightinit/client/core.py", "weightinit/torch/__init__.py",
                   "weightinit/torch/modules.py",
                   "weightinit/v1/__init__.py", "weightinit/v1/spec_pb2.py", "weightinit/v1/initializer_service_pb2.py",
                   "weightinit/v1/initializer_service_pb2_grpc.py"):
        assert module in names, module
    assert not any(name.startswith(("server/", "client/", "tests/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "weightinit = weightinit.__main__:run" in zipfile.ZipFile(wheel).read(entry_points).decode()
