"""Load the functions' handlers from functions/<name>/app.py the way Lambda does (by file)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .template import ROOT


def load_function(name: str, cold_start: bool = False) -> ModuleType:
    """The handler module of functions/<name>; ``cold_start`` loads it anew, as a new Lambda
    execution environment would (module-level caches and clients start empty)."""
    module_name = f"{name}_function_app"
    if module_name in sys.modules and not cold_start:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"functions/{name}/app.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def handler(name: str, cold_start: bool = False) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    function: Callable[[dict[str, Any], Any], dict[str, Any]] = load_function(name, cold_start).lambda_handler
    return function
