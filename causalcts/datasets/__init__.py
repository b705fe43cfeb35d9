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
* ``orthodont``: nlme's ``Orthodont`` growth curves, 108 rows, 27 children (16 boys ``M01``-``M16``,
  11 girls ``F01``-``F11``) measured every two years from age 8 to 14: ``distance`` (mm, pituitary to
  pterygomaxillary fissure on x-ray), ``age`` (years), ``Subject``, ``Sex`` (``Male``/``Female``).
  From the R package nlme as exported by Rdatasets (github.com/vincentarelbundock/Rdatasets,
  ``csv/nlme/Orthodont.csv`` at commit cc03c29690889dbe83089f5206e2422db8c3f71f, row-name column
  dropped). Citation: Potthoff, R. F. and Roy, S. N. (1964), Biometrika 51; Pinheiro, J. C. and
  Bates, D. M. (2000), Mixed-Effects Models in S and S-PLUS, Springer (Appendix A.17).

Examples
--------
>>> from causalcts import datasets
>>> datasets.load("sleepstudy").shape
(180, 3)
>>> datasets.load("orthodont").shape
(108, 4)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from causalcts.errors import CausalCTSError

__all__ = ["NAMES", "load", "path"]

HERE = Path(__file__).parent
NAMES = ("abdata", "sleepstudy", "dietox", "orthodont")


def path(name: str) -> Path:
    """Path of the CSV file of a shipped data set."""
    if name not in NAMES:
        raise CausalCTSError(f"Unknown data set {name!r}; available: {', '.join(NAMES)}.")
    return HERE / f"{name}.csv"


def load(name: str) -> pd.DataFrame:
    """Load a shipped data set as a new DataFrame."""
    return pd.read_csv(path(name))
