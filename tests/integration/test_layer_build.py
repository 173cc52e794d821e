"""The shared layer's dependencies, installed the way `sam build` installs them, hold an AWS SDK pair
that works together, and it is the pair the tests run on.

In Lambda the layer (/opt/python) comes before the runtime's own boto3 on the path: a layer that
held botocore without boto3 would run the runtime's boto3 on a botocore nobody chose for it.

This is the suite's one test that reaches a package index: the one pip is configured with, as for
`sam build` and `make`. Without network it is skipped, and says so.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LAYER_MAKEFILE = ROOT / "layers" / "shared" / "Makefile"
#: What pip says when it cannot reach an index at all (as opposed to a resolution failure).
NO_NETWORK = ("Failed to establish a new connection", "Temporary failure in name resolution")


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, metadata.Distribution]:
    """The distributions `sam build` puts in the layer, by normalised name."""
    artifacts = tmp_path_factory.mktemp("layer")
    done = subprocess.run(  # noqa: S603 - fixed arguments: make, the layer's own Makefile, a temp dir
        [  # noqa: S607 - make from PATH, as `sam build` runs it
            "make",
            "--no-print-directory",
            "-f",
            str(LAYER_MAKEFILE),
            "layer-dependencies",
            f"ARTIFACTS_DIR={artifacts}",
            f"PYTHON={sys.executable}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if any(sign in done.stdout + done.stderr for sign in NO_NETWORK):
            pytest.skip("no network: the layer's dependencies cannot be downloaded")
        pytest.fail(f"building the layer's dependencies failed:\n{done.stdout}\n{done.stderr}")
    return {
        canonical(dist.metadata["Name"]): dist
        for dist in metadata.distributions(path=[str(artifacts / "python")])
    }


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def unmet(dist: metadata.Distribution, layer: dict[str, metadata.Distribution]) -> list[str]:
    """``dist``'s requirements (for Lambda's Python 3.12 on Linux) the layer does not satisfy."""
    environment = {"python_version": "3.12", "sys_platform": "linux", "platform_system": "Linux"}
    missing = []
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": ""}):
            continue
        installed = layer.get(canonical(requirement.name))
        if installed is None or not requirement.specifier.contains(installed.version, prereleases=True):
            missing.append(f"{text} (layer: {installed.version if installed else 'absent'})")
    return missing


def test_the_layer_holds_boto3_with_the_botocore_it_requires(layer: dict[str, metadata.Distribution]) -> None:
    assert "aws-lambda-powertools" in layer  # the build really installed the requirements
    assert "boto3" in layer and "botocore" in layer, sorted(layer)
    assert unmet(layer["boto3"], layer) == []


def test_the_tests_run_on_the_sdk_the_layer_ships(layer: dict[str, metadata.Distribution]) -> None:
    for name in ("boto3", "botocore"):
        assert metadata.version(name) == layer[name].version, name
