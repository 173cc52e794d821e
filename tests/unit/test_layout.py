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


@pytest.mark.parametrize("side", ["ingest", "upsert", "reconcile", "lists"])
def test_no_function_package_imports_the_operations_package(side: str) -> None:
    # The operator's routes read what the functions record; the functions never depend on them.
    offenders = {
        str(path.relative_to(LIBRARY)): sorted(
            name for name in imported_modules(path) if ".operations" in name
        )
        for path in (LIBRARY / side).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_list_drain_works_through_its_ports_alone() -> None:
    # The lists package knows neither the table nor the HubSpot client: its adapters plug in.
    offenders = {
        str(path.relative_to(LIBRARY)): sorted(
            name
            for name in imported_modules(path)
            if name.startswith(("hubspot_activation.ledger", "hubspot_activation.hubspot"))
            or name.split(".")[0]
            in ("boto3", "botocore", "requests", "mypy_boto3_sqs", "mypy_boto3_dynamodb")
        )
        for path in (LIBRARY / "lists").rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_configuration_imports_no_feature_package() -> None:
    # settings.py is read by every function: it sits below ingest, upsert, reconcile and
    # operations. A setting's plain type may live beside its feature, in a module importing none.
    features = (".ingest", ".upsert", ".operations", ".reconcile")
    plain_types = {"reconcile.policy"}
    offenders = sorted(
        name
        for name in imported_modules(LIBRARY / "settings.py")
        if any(f in name for f in features) and not any(name.endswith(t) for t in plain_types)
    )
    assert offenders == []


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


#: How DynamoDB's low-level API spells an attribute value's type, and boto3's converters of them.
_ATTRIBUTE_TYPES = frozenset({"S", "N", "B", "M", "L", "SS", "NS", "BS", "BOOL", "NULL"})
_CONVERTERS = frozenset({"TypeSerializer", "TypeDeserializer"})


def _spelled_names(node: ast.AST) -> list[object]:
    if isinstance(node, ast.Dict):
        return [key.value for key in node.keys if isinstance(key, ast.Constant)]
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return [node.slice.value]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return [arg.value for arg in node.args[:1] if isinstance(arg, ast.Constant)]
    if isinstance(node, ast.Name) and node.id in _CONVERTERS:
        return [node.id]
    if isinstance(node, ast.Attribute) and node.attr in _CONVERTERS:
        return [node.attr]
    if isinstance(node, ast.alias) and node.name.split(".")[-1] in _CONVERTERS:
        return [node.name]
    return []


def attribute_value_uses(source: str) -> list[str]:
    """Where a module spells a DynamoDB attribute value: a dict key, a subscript or a ``.get`` of
    one of the type names, or boto3's TypeSerializer/TypeDeserializer; as ``line: name``."""
    return [
        f"{getattr(node, 'lineno', 0)}: {name}"
        for node in ast.walk(ast.parse(source))
        for name in _spelled_names(node)
        if name in _ATTRIBUTE_TYPES or name in _CONVERTERS
    ]


def test_no_dynamodb_attribute_value_outside_the_ledger_package() -> None:
    # The table's layout is the ledger package's alone: everything else sees plain data.
    offenders = {
        str(path.relative_to(LIBRARY)): uses
        for path in LIBRARY.rglob("*.py")
        if (LIBRARY / "ledger") not in path.parents
        if (uses := attribute_value_uses(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "source",
    [
        "key = {'email': {'S': email}}",
        "count = int(item['calls']['N'])",
        "name = item.get('name', {}).get('S')",
        "flag = {'BOOL': True}",
        "nothing = {'NULL': True}",
        "parts = value['L']",
        "fields = value.get('M')",
        "from boto3.dynamodb.types import TypeSerializer",
        "import boto3.dynamodb.types as t\nt.TypeDeserializer().deserialize(value)",
    ],
)
def test_the_attribute_value_check_sees_each_spelling(source: str) -> None:
    assert attribute_value_uses(source)


def test_the_attribute_value_check_leaves_plain_data_alone() -> None:
    assert attribute_value_uses("view = {'email': email, 'status': 'S'}; first = row['email']") == []


def boto3_client_calls(source: str) -> list[str]:
    """The outermost function (``module`` at the top level) of each ``boto3.client(...)`` call."""
    found: list[str] = []

    def visit(node: ast.AST, outer: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = outer
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and outer == "module":
                name = child.name
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr == "client"
                and isinstance(child.func.value, ast.Name)
                and child.func.value.id == "boto3"
            ):
                found.append(name)
            visit(child, name)

    visit(ast.parse(source), "module")
    return found


def test_each_function_builds_its_clients_in_its_composition_root_only() -> None:
    # The builders take clients as parameters, so a test or a benchmark builds the same function
    # with its own; a client created anywhere else would escape them.
    roots = {
        "upsert/wiring.py": {"build_merge", "build_flush"},
        "ingest/api.py": {"from_environment"},
        "operations/wiring.py": {"build_api"},
        "reconcile/wiring.py": {"build_reconcile"},
        "list_function/wiring.py": {"build_lists"},
    }
    found = {
        str(path.relative_to(LIBRARY)): set(calls)
        for path in LIBRARY.rglob("*.py")
        if (calls := boto3_client_calls(path.read_text(encoding="utf-8")))
    }
    assert found == roots


def test_the_client_check_finds_a_client_built_in_a_builder() -> None:
    source = "import boto3\ndef ledger(table):\n    return Ledger(boto3.client('dynamodb'), table)\n"
    assert boto3_client_calls(source) == ["ledger"]


def clients_built_by(source: str, function: str) -> set[str]:
    """The services of the ``boto3.client(...)`` calls inside one top-level function."""
    (definition,) = [
        node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name == function
    ]
    return {
        str(node.args[0].value)
        for node in ast.walk(definition)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "client"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_the_merge_builds_no_client_that_could_reach_hubspot() -> None:
    # The merge only merges into the ledger; HubSpot's budget is the flush function's alone, and
    # the merge's role has no access to the HubSpot credential.
    source = (LIBRARY / "upsert" / "wiring.py").read_text(encoding="utf-8")
    assert clients_built_by(source, "build_merge") == {"dynamodb", "sqs", "lambda"}
    assert clients_built_by(source, "build_flush") == {"dynamodb", "sqs", "secretsmanager", "lambda"}
    for name in ("build_merge", "merge_consumer"):
        (definition,) = [
            node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name == name
        ]
        used = {node.id for node in ast.walk(definition) if isinstance(node, ast.Name)}
        assert used & {"hubspot_client", "HubSpotClient", "RateGovernor", "secrets_manager_fetcher"} == set()
