"""The dependency rules the tree promises: each function's package keeps to its side, the planner
does no I/O, and the HubSpot sandbox shares no code with the product it checks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "shared" / "hubspot_activation"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of everything a module imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT / "layers" / "shared").with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
    return names


@pytest.mark.parametrize(("side", "other"), [("ingest", "upsert"), ("upsert", "ingest")])
def test_each_function_package_keeps_to_its_side(side: str, other: str) -> None:
    offenders = {
        str(path.relative_to(LIBRARY)): sorted(name for name in imported_modules(path) if f".{other}" in name)
        for path in (LIBRARY / side).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize("side", ["ingest", "upsert"])
def test_no_function_package_imports_the_operations_package(side: str) -> None:
    # The operator's routes read what the functions record; the functions never depend on them.
    offenders = {
        str(path.relative_to(LIBRARY)): sorted(
            name for name in imported_modules(path) if ".operations" in name
        )
        for path in (LIBRARY / side).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_planner_imports_no_io_library() -> None:
    probe = (
        "import sys; import hubspot_activation.upsert.plan; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'boto3', 'botocore', 'requests', 'urllib3', 'aws_lambda_powertools', 'socket'}))"
    )
    output = subprocess.run(  # noqa: S603 - our own interpreter and a fixed probe
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    # socket comes with the standard library's own start-up on some platforms; the rest must not load.
    assert output in ("[]", "['socket']")


def test_the_sandbox_imports_nothing_from_the_product() -> None:
    sandbox = ROOT / "local" / "hubspot_sandbox"
    for path in sandbox.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(name.startswith("hubspot_activation") for name in names), path
