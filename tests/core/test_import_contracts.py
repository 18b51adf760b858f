"""The import contracts (pyproject.toml [tool.importlinter]) hold, and catch a wrong import.

Each check runs `lint-imports` in a fresh interpreter: on the real package it passes; on a copy
of the package with one deliberately wrong import added it fails and names that import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
)


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """Run both contracts with `root` first on sys.path (so its `newsletter` is the one read)."""
    return subprocess.run(
        [sys.executable, "-c", RUN],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contracts")
    shutil.copytree(
        ROOT / "newsletter", root / "newsletter", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_real_package_keeps_both_contracts() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "source", "contract", "named"),
    [
        # store/ sits below plan/: a store module importing the planner breaks the layers.
        (
            "store/wrong_layer.py",
            "from newsletter.plan import planner\n",
            "Layers",
            "newsletter.store.wrong_layer -> newsletter.plan.planner",
        ),
        # the kernel imports no stage: keys.py (kernel) gains an import of render/.
        (
            "keys.py",
            "from newsletter.render import links\n",
            "Layers",
            "newsletter.keys -> newsletter.render.links",
        ),
        # SQL only in store/: a render module importing SQLModel breaks the second contract.
        (
            "render/wrong_sql.py",
            "from sqlmodel import select\n",
            "SQLAlchemy and SQLModel only in",
            "newsletter.render.wrong_sql -> sqlmodel",
        ),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    package_copy: Path, module: str, source: str, contract: str, named: str
) -> None:
    path = package_copy / "newsletter" / module
    before = path.read_text(encoding="utf-8") if path.exists() else None
    path.write_text((before or "") + source, encoding="utf-8")
    try:
        result = _lint(package_copy)
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_text(before, encoding="utf-8")
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), result.stdout
    assert named in result.stdout, result.stdout
