"""Public reference data sets shipped with causalcts, with their provenance.

* ``abdata``: Arellano and Bond (1991) UK company panel, 140 firms, 1976-1984, 1,031 firm-years,
  unbalanced. Columns used: ``id``, ``year``, ``n`` (log employment), ``w`` (log real wage),
  ``k`` (log gross capital), ``ys`` (log industry output); also levels, ready-made lags and year
  dummies. Stata's ``webuse abdata`` exported to CSV, as distributed in the pydynpd repository
  (``data.csv``, unnamed row-index column dropped); it matches R plm's ``EmplUK`` on every
  (firm, year) key. Citation: Arellano, M. and Bond, S. (1991), Review of Economic Studies 58(2).
* ``sleepstudy``: lme4's sleep deprivation study, 180 rows: ``Reaction`` (ms), ``Days`` (0-9),
  ``Subject`` (18 levels). From the lme4 package (``data/sleepstudy.rda``). Citation: Belenky et
  al. (2003), Journal of Sleep Research 12.
* ``dietox``: pig growth from the R package geepack, 861 rows, 72 pigs (``Pig``), ``Weight`` (kg),
  ``Time`` (week 1-12), ``Evit``, ``Cu``, ``Litter``, ``Start``, ``Feed``. Citation: Lauridsen et
  al. (1999).

Examples
--------
>>> from causalcts import datasets
>>> datasets.load("sleepstudy").shape
(180, 3)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from causalcts.errors import CausalCTSError

__all__ = ["NAMES", "load", "path"]

HERE = Path(__file__).parent
NAMES = ("abdata", "sleepstudy", "dietox")


def path(name: str) -> Path:
    """Path of the CSV file of a shipped data set."""
    if name not in NAMES:
        raise CausalCTSError(f"Unknown data set {name!r}; available: {', '.join(NAMES)}.")
    return HERE / f"{name}.csv"


def load(name: str) -> pd.DataFrame:
    """Load a shipped data set as a new DataFrame."""
    return pd.read_csv(path(name))
