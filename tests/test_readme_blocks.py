"""The README as scripts/check-readme reads it (the script itself runs the blocks; .ci/run calls it)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _check_readme():
    loader = importlib.machinery.SourceFileLoader("check_readme", str(REPO / "scripts" / "check-readme"))
    spec = importlib.util.spec_from_loader("check_readme", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_readme"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


def test_the_two_commands_are_marked_and_run_in_order():
    blocks = _check_readme().parse((REPO / "README.md").read_text(encoding="utf-8"))
    assert [b.marker for b in blocks[:2]] == ["server", "tests"]
    assert blocks[0].code.strip() == ("python3 -m venv .venv && .venv/bin/pip install -q . && "
                                      ".venv/bin/weightinit serve --port 50051")
    assert {b.kind for b in blocks} >= {"sh", "python", "js"}


def test_files_the_examples_use_are_written_by_an_earlier_block():
    blocks = _check_readme().parse((REPO / "README.md").read_text(encoding="utf-8"))
    for name in ("spec.json", "model.json"):
        writers = [i for i, b in enumerate(blocks) if f"cat > {name}" in b.code]
        users = [i for i, b in enumerate(blocks) if name in b.code and f"cat > {name}" not in b.code]
        assert writers and users and writers[0] < min(users), name


def test_no_install_line_that_cannot_work_from_the_checkout():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "pip install weightinit[" not in text and "pip install weightinit " not in text
    assert "'.[bf16]'" in text
