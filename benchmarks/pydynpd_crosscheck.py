"""Record pydynpd 0.2.2's estimates on abdata, for the cross-check test tests/test_gmm_crosscheck.py.

pydynpd needs numpy < 2.3, so it runs in its own virtual environment:

    python -m venv /tmp/pydynpd-venv
    /tmp/pydynpd-venv/bin/pip install "numpy<2.3" pydynpd==0.2.2 pandas
    /tmp/pydynpd-venv/bin/python benchmarks/pydynpd_crosscheck.py > tests/data/pydynpd_abdata.json

Each entry stores the pydynpd command, so the provenance of every number is in the file.
"""

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
from pydynpd import regression

DATA = Path(__file__).resolve().parents[1] / "causalcts" / "datasets" / "abdata.csv"
COMMANDS = {
    "sys_two_step_uncollapsed": "n L(1:1).n w L1.w k L1.k | gmm(n, 2:99) gmm(w, 2:99) gmm(k, 2:99) | timedumm",
    "sys_collapsed_lag_limits": "n L(1:1).n w k | gmm(n, 2:4) iv(w k) | timedumm collapse",
    "diff_fod_collapsed": "n L(1:1).n w k | gmm(n, 2:4) iv(w k) | nolevel fod collapse",
    "diff_one_step_robust": "n L(1:2).n w k | gmm(n, 2:99) iv(w k) | nolevel onestep",
    "diff_two_endogenous": "n L(1:1).n w k | gmm(n, 2:3) gmm(w, 2:3) iv(k) | nolevel timedumm",
}


def main() -> None:
    df = pd.read_csv(DATA)
    out = {}
    for name, cmd in COMMANDS.items():
        with contextlib.redirect_stdout(io.StringIO()):
            m = regression.abond(cmd, df, ["id", "year"]).models[0]
        t = m.regression_table
        out[name] = {
            "command": f"pydynpd 0.2.2: regression.abond({cmd!r}, abdata, ['id', 'year'])",
            "params": {str(k): float(v) for k, v in zip(t.variable, t.coefficient)},
            "std_errors": {str(k): float(v) for k, v in zip(t.variable, t.std_err)},
            "hansen": float(m.hansen.test_value),
            "ar": [float(a.AR) for a in m.AR_list],
            "n_instruments": int(m.z_information.num_instr),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
