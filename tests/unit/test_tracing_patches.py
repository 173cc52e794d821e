"""X-Ray keeps tracing the AWS and HubSpot calls although the tracer no longer patches every library
it knows (which cost cold-start time): checked in a fresh interpreter that believes it is in Lambda,
where powertools' tracer is active."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
{imports}
import botocore.client
wrapped = lambda f: type(f).__name__ == "BoundFunctionWrapper"
print("boto", wrapped(botocore.client.BaseClient._make_api_call))
print("requests loaded", "requests" in sys.modules)
if "requests" in sys.modules:
    print("requests", wrapped(sys.modules["requests"].Session.request))
print("sqlite3 loaded", "sqlite3" in sys.modules)
"""


def probe(function: str, imports: str) -> list[str]:
    folder = ROOT / "functions" / function
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")},
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "probe",
        "LAMBDA_TASK_ROOT": str(folder),
    }
    code = PROBE.format(imports=imports)
    out = subprocess.run(  # noqa: S603 - our own interpreter and files
        [sys.executable, "-c", code, str(folder), str(ROOT / "layers" / "shared")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=folder,
    )
    return out.stdout.splitlines()


def test_ingest_traces_aws_calls_without_loading_requests() -> None:
    assert probe("ingest", "import app") == ["boto True", "requests loaded False", "sqlite3 loaded False"]


@pytest.mark.parametrize("function", ["merge", "flush"])
def test_the_sync_functions_trace_aws_and_hubspot_calls(function: str) -> None:
    assert probe(function, "import app") == [
        "boto True",
        "requests loaded True",
        "requests True",
        "sqlite3 loaded False",
    ]


def test_operations_traces_hubspot_calls_once_a_rename_loads_the_client() -> None:
    assert probe("operations", "import app") == ["boto True", "requests loaded False", "sqlite3 loaded False"]
    assert probe("operations", "import app; import hubspot_activation.hubspot.client")[1:3] == [
        "requests loaded True",
        "requests True",
    ]
