"""The house's import arrows run one way: handlers → billing; devstack → billing, stripe_emulator; tools → all.

Nothing imports back up: the shared package knows nothing of the local stack or the tools, and the local stack
knows nothing of the tools (it serves docs/openapi.json rather than importing its generator).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# top-level package → packages of this repository it must never import
FORBIDDEN = {
    "billing": {"devstack", "tools", "functions", "stripe_emulator", "bench", "tests"},
    "functions": {"devstack", "tools", "stripe_emulator", "bench", "tests"},
    "stripe_emulator": {"devstack", "tools", "billing", "functions", "bench", "tests"},
    "devstack": {"tools", "bench", "tests"},
}
SOURCES = {
    "billing": ROOT / "layers" / "billing" / "billing",
    "functions": ROOT / "functions",
    "stripe_emulator": ROOT / "stripe_emulator",
    "devstack": ROOT / "devstack",
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_back_up(package: str) -> None:
    files = sorted(SOURCES[package].rglob("*.py"))
    assert files, f"no sources under {SOURCES[package]}"
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & FORBIDDEN[package])
        for path in files
        if _imported_packages(path) & FORBIDDEN[package]
    }
    assert not wrong, f"{package} imports what depends on it: {wrong}"
