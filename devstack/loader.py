"""Load a function's handler module in-process, the way the Lambda runtime imports it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_cache: dict[Path, Callable[..., Any]] = {}


def load_handler(module_path: Path, attribute: str = "lambda_handler") -> Callable[..., Any]:
    """Import ``module_path`` under a name unique to its function folder and return its handler."""
    key = module_path.resolve()
    if key not in _cache:
        name = f"fn_{key.parent.name}_{key.stem}"
        spec = importlib.util.spec_from_file_location(name, key)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {key}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _cache[key] = getattr(module, attribute)
    return _cache[key]
