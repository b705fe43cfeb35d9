"""Imports run one way (ARCHITECTURE.md): no module imports a layer above its own.

Estimators never see the simulator.
"""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "causalcts"

LAYER = {
    "errors": 0,
    "data": 1,
    "datasets": 1,
    "simulate": 2,
    "results": 2,
    "metrics": 2,
    "inference": 2,
    "models": 2,
    "estimators": 3,
    "bayes": 3,
    "did": 3,
    "api": 4,
    "registry": 4,
    "evaluation": 5,
    "diagnostics": 5,
    "plots": 6,
    "demo": 6,
    "cli": 6,
    "workflows": 6,
}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "causalcts" or len(parts) == 1:
        return None
    return LAYER.get(parts[1])


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("causalcts")}


MODULES = sorted(p for p in PKG.rglob("*.py") if p.name != "__init__.py" or p.parent != PKG)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PKG)) for p in MODULES])
def test_no_upward_imports(path):
    own = layer_of("causalcts." + ".".join(path.relative_to(PKG).with_suffix("").parts))
    assert own is not None, f"{path} is in no layer of ARCHITECTURE.md"
    for mod in imports(path):
        other = layer_of(mod)
        if other is None:
            continue
        assert other <= own, f"{path.relative_to(PKG)} (layer {own}) imports {mod} (layer {other})"
        assert not (own == other == 3 and mod.split(".")[1] != path.relative_to(PKG).parts[0]), (
            f"{path.relative_to(PKG)} imports its sibling {mod}"
        )


def test_estimators_never_import_the_simulator():
    for path in list((PKG / "estimators").rglob("*.py")) + list((PKG / "bayes").rglob("*.py")):
        assert not any(m.startswith("causalcts.simulate") for m in imports(path)), path
