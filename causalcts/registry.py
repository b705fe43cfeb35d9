"""The method registry: the one list of estimation methods that ``causalcts.fit``, the CLI, the Monte Carlo grids
and the docs read.

Each family declares its methods where it is implemented (layer 3), as a tuple of plain dicts named
``METHODS_DECLARED`` with the keys

``name``
    what users pass as ``method=``;
``family``
    ``"least-squares"``, ``"gmm"``, ``"bayes"`` (later ``"likelihood"``, ``"event-study"``, ...);
``fit``
    a callable ``fit(formula, data, *, entity, time, time_effects, **options)`` returning results with the
    shared interface (``data`` is a validated :class:`~causalcts.Panel`);
``options``
    the keyword options the method accepts beyond ``entity``, ``time``, ``time_effects`` and ``dropna``;
``description``
    one line;
``assumes``
    what must hold for the estimates to mean what they say (e.g. strict exogeneity);
``columns`` (optional)
    ``columns(formula, options) -> list[str]``: every data column the method reads (default: the formula's).

This module (layer 4) combines the declarations of :data:`FAMILIES` into :data:`REGISTRY`; nothing else in
the package, the tests, the benchmarks or the docs holds a list of method names.

Adding a family
---------------
A new family (the ML-SEM ``"ml"`` estimator, event studies) needs no edits elsewhere: declare its methods in
its own module and add that tuple to :data:`FAMILIES` below, or, from outside the package (a plug-in, a
test), call :func:`register`::

    # causalcts/likelihood/sem.py (layer 3)
    METHODS_DECLARED = (
        dict(name="ml", family="likelihood", fit=fit_ml_sem, options=("cov", "start"),
             description="ML-SEM dynamic panel (Allison, Williams and Moral-Benito 2017)",
             assumes="sequential exogeneity; normal errors for the likelihood (QML otherwise)"),
    )

    # causalcts/registry.py
    FAMILIES = (_estimators.METHODS_DECLARED, _bayes.METHODS_DECLARED, _sem.METHODS_DECLARED)

``causalcts.fit(method="ml")``, ``causalcts fit --method ml``, grid validation and the method table of
``docs/inference.md`` (checked by ``tests/test_registry.py``) then pick it up.

Examples
--------
>>> from causalcts import registry
>>> registry.names()[0], "bayes" in registry.names()
('pooled', True)
>>> registry.get("within").family, registry.get("within").options
('least-squares', ('cov',))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import causalcts.bayes.dynamic as _bayes
import causalcts.estimators.api as _estimators
import causalcts.estimators.mlsem as _mlsem
from causalcts.data.formula import formula_spec
from causalcts.errors import SpecificationError, check_option

__all__ = ["COMMON_KEYWORDS", "FAMILIES", "REGISTRY", "Method", "check_options", "get", "names", "register"]

#: Keywords every method takes (handled by ``causalcts.fit`` itself): ``checks`` and ``treatment`` drive the
#: exogeneity checks that ``fit`` attaches to every dynamic-panel result, whatever the method.
COMMON_KEYWORDS = ("entity", "time", "time_effects", "dropna", "checks", "treatment")


def _formula_columns(formula: str, options: Mapping[str, Any]) -> list[str]:
    return list(formula_spec(formula).numeric)  # data columns read as numbers (not np.log(x) or C(f) columns)


@dataclass(frozen=True)
class Method:
    """One registered estimation method (see the module docstring for the fields)."""

    name: str
    family: str
    fit: Callable
    options: tuple[str, ...]
    description: str
    assumes: str
    columns: Callable = _formula_columns

    @property
    def supports_predetermined(self) -> bool:
        """Whether the method honours ``predetermined=[...]`` (sequential exogeneity); others assume strict."""
        return "predetermined" in self.options

    def row(self) -> dict[str, str]:
        """The method as a table row (name, family, options, description, assumes)."""
        return {
            "name": self.name,
            "family": self.family,
            "options": ", ".join(self.options),
            "description": self.description,
            "assumes": self.assumes,
        }


#: Declarations combined into the registry, in display order.
FAMILIES = (_estimators.METHODS_DECLARED, _bayes.METHODS_DECLARED, _mlsem.METHODS_DECLARED)

_REGISTRY: dict[str, Method] = {}


def register(**declaration) -> Method:
    """Add one method (keys as in the module docstring); a name already registered is an error.

    Examples
    --------
    >>> from causalcts import registry
    >>> "within" in registry.names()
    True
    """
    fields = {"name", "family", "fit", "options", "description", "assumes", "columns"}
    unknown = set(declaration) - fields
    missing = (fields - {"columns"}) - set(declaration)
    if unknown or missing:
        raise SpecificationError(
            f"A method declaration needs the keys {sorted(fields - {'columns'})} (and optionally 'columns'); "
            f"got unknown {sorted(unknown)}, missing {sorted(missing)}."
        )
    name = declaration["name"]
    if name in _REGISTRY:
        raise SpecificationError(f"Method {name!r} is registered twice.")
    clash = set(declaration["options"]) & set(COMMON_KEYWORDS)
    if clash:
        raise SpecificationError(f"Method {name!r} declares {sorted(clash)}, which every method takes already.")
    method = Method(**{**declaration, "options": tuple(declaration["options"])})
    _REGISTRY[name] = method
    return method


for _family in FAMILIES:
    for _decl in _family:
        register(**_decl)

#: name -> :class:`Method`, read-only.
REGISTRY: Mapping[str, Method] = MappingProxyType(_REGISTRY)


def names(family: str | None = None) -> tuple[str, ...]:
    """Registered method names (of one family, if given), in display order."""
    return tuple(m.name for m in _REGISTRY.values() if family is None or m.family == family)


def get(name: str) -> Method:
    """The method called ``name``; an unknown name raises :class:`SpecificationError` listing the choices."""
    check_option("method", name, names())
    return _REGISTRY[name]


def check_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Options of ``method=name`` that are set (not None); raise if one does not apply to the method.

    Examples
    --------
    >>> from causalcts import registry
    >>> registry.check_options("within", {"cov": "robust", "gmm": None})
    {'cov': 'robust'}
    """
    method = get(name)
    return _estimators.check_options(name, options, method.options, every=_all_options())


def _all_options() -> dict[str, tuple[str, ...]]:
    """Every option any method takes -> the methods that take it, in display order."""
    out: dict[str, tuple[str, ...]] = {}
    for m in _REGISTRY.values():
        for o in m.options:
            out[o] = (*out.get(o, ()), m.name)
    return out
