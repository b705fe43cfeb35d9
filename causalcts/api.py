"""Top-level ``causalcts.fit``: every registered method (frequentist or Bayesian) behind one call.

This module sits above :mod:`causalcts.estimators` and :mod:`causalcts.bayes` so that neither imports the other;
it dispatches through :mod:`causalcts.registry`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from causalcts import metrics, registry
from causalcts.data.formula import formula_spec
from causalcts.data.panel import Panel
from causalcts.errors import DataFileError, MissingColumnError, SpecificationError
from causalcts.estimators.api import fit as _fit_frequentist
from causalcts.estimators.exogeneity import exogeneity_rows, has_outcome_lag, regressors

__all__ = ["fit"]


def _read(data) -> pd.DataFrame | Panel:
    if not isinstance(data, (str, Path)):
        return data
    path = Path(data)
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise DataFileError(f"Cannot read {path}: use a .csv or .parquet file, or pass a DataFrame.")
    if not path.exists():
        raise DataFileError(f"No such file: {path}")
    return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)


def _drop_missing(data, entity: str, time: str, columns: list[str], categorical=()):
    """A Panel of the used columns without the rows where one is missing (a DataWarning counts them)."""
    data = _read(data)
    if isinstance(data, Panel):  # a Panel holds no missing values
        return data
    if not isinstance(data, pd.DataFrame):
        return data  # the method raises its own error for other types
    wanted = list(dict.fromkeys([entity, time, *columns, *categorical]))
    missing = [c for c in wanted if c not in data.columns]
    if missing:
        raise MissingColumnError(
            f"The model uses {missing}, which {'is' if len(missing) == 1 else 'are'} not in the data; "
            f"columns are {list(data.columns)}."
        )
    return Panel(data[wanted], entity=entity, time=time, columns=columns, dropna=True)


def _derive_hint(err: MissingColumnError, formula: str, data, m, given) -> MissingColumnError:
    """``err`` with a pointer to :func:`causalcts.metrics.derive` when the missing columns are derivable metrics."""
    try:
        wanted = [*m.columns(formula, given), *formula_spec(formula).categorical]
        frame = _read(data)
        columns = set(frame.data.columns if isinstance(frame, Panel) else frame.columns)
    except Exception:  # the hint is a courtesy: never hide the original error behind another
        return err
    names = [c for c in dict.fromkeys(wanted) if c in metrics.DERIVED and c not in columns]
    if not names:
        return err
    one = len(names) == 1
    return type(err)(
        f"{err} {', '.join(repr(n) for n in names)} {'is a metric' if one else 'are metrics'} computed from raw "
        f"telemetry counts: derive {'it' if one else 'them'} with causalcts.metrics.derive(df, {names!r})."
    )


def _check_keywords(formula: str, checks, treatment) -> bool:
    """Validate ``checks`` and ``treatment``; whether the exogeneity checks run."""
    if not isinstance(checks, bool):
        raise SpecificationError(f"checks must be True or False, got {checks!r}.")
    if treatment is not None and not isinstance(treatment, str):
        raise SpecificationError(f"treatment must be the name of a regressor, got {treatment!r}.")
    dynamic = has_outcome_lag(formula)
    if treatment is not None and not checks:
        raise SpecificationError(
            f"treatment={treatment!r} names the treatment for the exogeneity checks, which checks=False turns off; "
            "drop treatment= or set checks=True."
        )
    if treatment is not None and not dynamic:
        raise SpecificationError(
            f"treatment={treatment!r} is used only by the exogeneity checks, which fit runs for dynamic panels; "
            f"{formula!r} has no lag of its outcome. Call causalcts.diagnostics.check_exogeneity(...) instead."
        )
    if treatment is not None and treatment not in regressors(formula):
        raise SpecificationError(
            f"treatment={treatment!r} is not a regressor of {formula!r}; its regressors are {regressors(formula)}."
        )
    return checks and dynamic


def _with_checks(res, formula, data, *, entity, time, time_effects, treatment):
    """``res`` with the exogeneity tests in ``info["checks"]`` (rows of the layout of ``check_exogeneity``).

    The tests cluster by the entity, as every estimator's robust covariance does; a test that cannot be computed
    is a row with verdict ``"n/a"`` and the reason, never an error, and no estimate changes.
    """
    frame = _read(data)
    rows = exogeneity_rows(
        formula, frame, entity=entity, time=time, treatment=treatment, time_effects=time_effects, record_errors=True
    )
    cluster = frame.entity if isinstance(frame, Panel) else entity
    info = {**dict(res.info), "checks": rows, "checks_cluster": cluster}
    return dataclasses.replace(res, info=info)


def fit(
    formula,
    data,
    *,
    entity="team",
    time="week",
    method="diff-gmm",
    time_effects=True,
    dropna=False,
    checks=True,
    treatment=None,
    **options,
):
    """Estimate a dynamic panel model with any registered method (table below; ``causalcts.registry``).

    Options left unset (None) take the method's defaults; an option that does not apply to ``method``
    raises :class:`~causalcts.errors.SpecificationError` naming the options it takes. With ``dropna=True``
    rows with a missing value in a column the model uses are dropped with a
    :class:`~causalcts.errors.DataWarning` that counts them (otherwise they are an error).
    Every method returns results with the same interface, and frequentist results carry ``spec``
    (refit with ``causalcts.fit(**res.spec, data=new_data)``), ``resid`` and ``fitted``.

    When the formula has a lag of its outcome, every method's result also carries the exogeneity checks
    (``res.checks``, shown in ``summary()``, kept in ``info["checks"]``): the strict-exogeneity lead test of every
    regressor and, when ``treatment=`` names the treatment, the test of whether each other regressor responds to
    it (:func:`causalcts.diagnostics.check_exogeneity`; clustered by ``entity``, as the estimates are). They never
    change an estimate; ``checks=False`` skips them (Monte Carlo grids do).

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=100, n_weeks=12, seed=3)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="within")
    >>> res.method, res.spec["cov"]
    ('within', 'robust')
    >>> again = causalcts.fit(**res.spec, data=sim.data)
    >>> bool((again.params == res.params).all())
    True
    >>> res.checks[["test", "verdict"]].loc["ai_share"].tolist()
    ['lead', 'pass']
    """
    if method == "auto":
        raise SpecificationError(
            "method='auto' runs exogeneity checks before choosing an estimator, which fit() (one estimator per "
            "call) does not do: call causalcts.diagnostics.fit_auto(formula, data, treatment=...) for the fit, or "
            "causalcts.diagnostics.recommend(...) for the choice and its reasons."
        )
    m = registry.get(method)
    given = registry.check_options(method, options)
    run_checks = _check_keywords(formula, checks, treatment)
    try:
        used = data
        if dropna:
            used = _drop_missing(data, entity, time, m.columns(formula, given), formula_spec(formula).categorical)
        res = m.fit(formula, used, entity=entity, time=time, time_effects=time_effects, **given)
    except MissingColumnError as err:
        raise _derive_hint(err, formula, data, m, given) from None
    spec = getattr(res, "spec", None)
    if spec and dataclasses.is_dataclass(res) and "spec" in {f.name for f in dataclasses.fields(res)}:
        extra = {"dropna": bool(dropna), **({} if checks else {"checks": False})}
        res = dataclasses.replace(res, spec={**dict(spec), **extra, **({"treatment": treatment} if treatment else {})})
    if run_checks:
        checked = used if dropna else data
        res = _with_checks(
            res, formula, checked, entity=entity, time=time, time_effects=time_effects, treatment=treatment
        )
    return res


def _method_table() -> str:
    rows = [
        f"``{m.name}`` ({m.family}): {m.description}. Options: {', '.join(m.options) or 'none'}. Assumes {m.assumes}."
        for m in registry.REGISTRY.values()
    ]
    return "\n\nMethods\n-------\n" + "\n".join(f"* {r}" for r in rows)


fit.__doc__ = (
    (fit.__doc__ or "")
    + _method_table()
    + "\n\nFrequentist options\n-------------------\n"
    + (_fit_frequentist.__doc__ or "")
)
