"""Layering: weightinit.spec does not import the schemes (the dependency runs spec -> engine.schemes)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_spec_does_not_import_the_schemes_anywhere():
    imported = _imported_modules(REPO / "weightinit" / "spec.py")
    assert not [m for m in imported if "schemes" in m or "validate" in m or m.endswith("generate")], imported
    assert any("spec" in m for m in _imported_modules(REPO / "weightinit" / "engine" / "schemes.py"))


def test_importing_spec_loads_neither_schemes_nor_backends():
    code = ("import sys, weightinit.spec; "
            "print(sorted(m for m in sys.modules if m.startswith('weightinit.') and "
            "('schemes' in m or 'backends' in m or 'validate' in m)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_errors_module_imports_nothing_from_weightinit():
    assert not [m for m in _imported_modules(REPO / "weightinit" / "errors.py") if "weightinit" in m or
                m.startswith(".")]
