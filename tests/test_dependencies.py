"""pyproject.toml declares what osteo imports, with floors that have the APIs it uses, and every
checkpoint load passes ``weights_only=True`` explicitly."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def _requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for spec in project["dependencies"]:
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(.*)$", spec)
        out[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2).strip()
    return out


def _sources():
    for path in sorted((ROOT / "osteo").rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _floor(spec: str) -> tuple[int, ...]:
    match = re.search(r">=\s*([0-9][0-9.]*)", spec)
    assert match, f"no >= floor in {spec!r}"
    return tuple(int(p) for p in match.group(1).split(".") if p)


def test_floors_have_the_apis_used():
    required = _requirements()
    assert _floor(required["pydicom"]) >= (3,)  # pydicom.pixels
    assert _floor(required["lightning"]) >= (2, 6)  # load_from_checkpoint(weights_only=...)
    assert _floor(required["torch"]) >= (2, 6)  # torch.load(weights_only=True) semantics


def test_every_imported_third_party_package_is_declared():
    declared = set(_requirements())
    providers = metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    missing = {}
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top == "osteo" or top not in providers:
                    continue
                dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers[top]}
                if not dists & declared:
                    missing.setdefault(top, str(path.relative_to(ROOT)))
    assert not missing, f"imported but not in pyproject dependencies: {missing}"


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_every_checkpoint_load_passes_weights_only_true():
    offenders = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            attr = node.func.attr
            is_torch_load = (
                attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            )
            is_fit = attr == "fit" and _keyword(node, "ckpt_path") is not None
            if not (is_torch_load or attr == "load_from_checkpoint" or is_fit):
                continue
            value = _keyword(node, "weights_only")
            if attr == "load_from_checkpoint" and any(k.arg is None for k in node.keywords):
                continue  # a pass-through wrapper (**kwargs): its callers are checked
            if not (isinstance(value, ast.Constant) and value.value is True):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {attr}")
    assert not offenders, f"checkpoint loads without weights_only=True: {offenders}"
