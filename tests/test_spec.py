"""Rollout spec files: every bad spec is a causalcts error naming the key or column, and a sentence on the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import causalcts
from causalcts.cli import main
from causalcts.errors import (
    CausalCTSError,
    DataFileError,
    MissingColumnError,
    RangeError,
    SpecificationError,
    TooFewPeriodsError,
)
from causalcts.workflows.spec import MIN_WEEKS, SCHEMA, load_data, load_spec, parse_spec, schema_table

RAW = ["team", "week", "developers", "crs_merged", "deployments", "rollbacks", "interventions", "pages",
       "oncall_builders", "ai_share", "dev_cost"]  # fmt: skip

GOOD = """name = "AI coding assistant rollout, 2025"
data = "rollout.csv"
entity = "team"
time = "week"
treatment = "ai_share"
outcomes = ["cr_velocity", "deploys_per_builder"]
controls = ["rollback_rate", "interventions_per_deploy"]
"""


@pytest.fixture(scope="module")
def raw():
    return causalcts.simulate(30, 10, seed=4).data[RAW]


def _write(folder, spec_text: str, frame: pd.DataFrame | None = None, name: str = "rollout.csv"):
    if frame is not None:
        frame.to_csv(folder / name, index=False)
    path = folder / "spec.toml"
    path.write_text(spec_text)
    return path


def _replace(text: str, key: str, value: str | None) -> str:
    """The spec with ``key``'s line replaced by ``key = value`` (removed when value is None)."""
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")]
    if value is not None:
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- good specs
def test_good_spec_loads_with_documented_defaults(tmp_path, raw):
    spec, = load_spec(_write(tmp_path, GOOD, raw))  # fmt: skip
    assert spec.outcomes == ("cr_velocity", "deploys_per_builder")
    for key in ("window", "onset_threshold", "seed", "bayes_draws", "level", "cluster"):
        assert getattr(spec, key) == SCHEMA[key].default
    # the savings come from the velocity in the unit CTS-SW is per (deployments by default), not the first outcome
    assert spec.cluster_column == "team" and spec.savings_from == "deploys_per_builder"
    assert spec.data_path == str(tmp_path / "rollout.csv")  # relative to the spec file, not the working folder


def test_schema_table_lists_every_key():
    text = schema_table()
    assert all(f"| {k} |" in text for k in SCHEMA)


def test_load_data_derives_metrics_and_leaves_the_file_alone(tmp_path, raw):
    path = _write(tmp_path, GOOD, raw)
    before = (tmp_path / "rollout.csv").read_bytes()
    data = load_data(load_spec(path)[0])
    assert dict(data.derived) == {
        "cr_velocity": ("crs_merged", "developers"),
        "deploys_per_builder": ("deployments", "developers"),
        "rollback_rate": ("rollbacks", "deployments"),
        "interventions_per_deploy": ("interventions", "deployments"),
    }
    expected = raw["crs_merged"] / raw["developers"]
    got = data.frame.sort_values(["team", "week"])["cr_velocity"].to_numpy()
    assert got == pytest.approx(expected.to_numpy(), rel=1e-12)  # same rows, same order (sorted already)
    assert (tmp_path / "rollout.csv").read_bytes() == before


def test_iso_dates_become_consecutive_periods(tmp_path, raw):
    dated = raw.assign(week=(pd.Timestamp("2025-01-06") + pd.to_timedelta(7 * raw["week"], unit="D")).astype(str))
    data = load_data(load_spec(_write(tmp_path, GOOD, dated))[0])
    assert sorted(data.frame["week"].unique()) == list(range(10))
    assert data.time_labels[0] == "2025-01-06" and data.time_labels[9] == "2025-03-10"


def test_experiments_inherit_top_level_keys(tmp_path, raw):
    raw.to_csv(tmp_path / "b.csv", index=False)
    text = _replace(GOOD, "name", None) + '\n[[experiments]]\nname = "A"\ndata = "rollout.csv"\n'
    text += '\n[[experiments]]\nname = "B"\ndata = "b.csv"\nseed = 9\n'
    a, b = load_spec(_write(tmp_path, text, raw))
    assert (a.name, b.name, a.seed, b.seed) == ("A", "B", 1, 9)
    assert a.controls == b.controls == ("rollback_rate", "interventions_per_deploy")


# ------------------------------------------------------------------------------------------- bad specs
def test_unknown_key_is_named_with_a_suggestion(tmp_path, raw):
    with pytest.raises(SpecificationError, match=r"unknown key\(s\) \['treshold'\].*did you mean"):
        load_spec(_write(tmp_path, GOOD + "treshold = 0.4\n", raw))


def test_missing_required_key_is_named(tmp_path, raw):
    with pytest.raises(SpecificationError, match=r"required key\(s\) \['treatment'\] are missing"):
        load_spec(_write(tmp_path, _replace(GOOD, "treatment", None), raw))


@pytest.mark.parametrize(
    "key, value, kind",
    [
        ("seed", '"one"', "an integer"),
        ("outcomes", '"cr_velocity"', "a list of strings"),
        ("onset_threshold", "true", "a number"),
        ("window", "[6]", "a list of two non-negative integers"),
    ],
)
def test_wrong_type_is_named(tmp_path, raw, key, value, kind):
    with pytest.raises(SpecificationError, match=rf"key '{key}' must be {kind}"):
        load_spec(_write(tmp_path, _replace(GOOD, key, value), raw))


@pytest.mark.parametrize("key, value", [("onset_threshold", "1.5"), ("level", "1.0"), ("seed", "-1")])
def test_value_out_of_range_is_named(tmp_path, raw, key, value):
    with pytest.raises(RangeError, match=rf"key '{key}'"):
        load_spec(_write(tmp_path, _replace(GOOD, key, value), raw))


def test_unknown_method_is_named(tmp_path, raw):
    with pytest.raises(SpecificationError, match=r"'methods' names \['ols'\]"):
        load_spec(_write(tmp_path, GOOD + 'methods = ["within", "ols"]\n', raw))


def test_invalid_toml_is_a_specification_error(tmp_path, raw):
    with pytest.raises(SpecificationError, match="not valid TOML"):
        load_spec(_write(tmp_path, GOOD + "seed = \n", raw))


def test_missing_spec_and_data_files(tmp_path, raw):
    with pytest.raises(DataFileError, match="No such spec file"):
        load_spec(tmp_path / "nope.toml")
    spec, = load_spec(_write(tmp_path, _replace(GOOD, "data", '"absent.csv"')))  # fmt: skip
    with pytest.raises(DataFileError, match=r"Key 'data' = 'absent.csv': no such file"):
        load_data(spec)


def test_missing_column_is_named_with_its_key(tmp_path, raw):
    spec, = load_spec(_write(tmp_path, _replace(GOOD, "controls", '["rollback_rate", "team_size"]'), raw))  # fmt: skip
    with pytest.raises(MissingColumnError, match=r"Key 'controls' names 'team_size'"):
        load_data(spec)
    spec, = load_spec(_write(tmp_path, _replace(GOOD, "entity", '"squad"'), raw))  # fmt: skip
    with pytest.raises(MissingColumnError, match=r"Key 'entity' = 'squad' is not a column"):
        load_data(spec)


def test_metric_without_its_raw_columns_names_them(tmp_path, raw):
    spec, = load_spec(_write(tmp_path, GOOD, raw.drop(columns="rollbacks")))  # fmt: skip
    with pytest.raises(MissingColumnError, match=r"'rollback_rate'.*\['rollbacks'\] is not in"):
        load_data(spec)


def test_share_outside_unit_interval_is_named(tmp_path, raw):
    pct = raw.assign(ai_share=raw["ai_share"] * 100)  # a percentage, the usual mistake
    spec, = load_spec(_write(tmp_path, GOOD, pct))  # fmt: skip
    with pytest.raises(RangeError, match=r"Key 'treatment' = 'ai_share' must be a share in \[0, 1\]"):
        load_data(spec)


def test_too_few_weeks_is_named(tmp_path, raw):
    short = raw[raw["week"] < MIN_WEEKS - 1]
    spec, = load_spec(_write(tmp_path, GOOD, short))  # fmt: skip
    with pytest.raises(TooFewPeriodsError, match=rf"Key 'time' = 'week': the data hold {MIN_WEEKS - 1} distinct"):
        load_data(spec)


def test_duplicate_experiment_names(tmp_path, raw):
    text = _replace(GOOD, "name", None) + '\n[[experiments]]\nname = "A"\n\n[[experiments]]\nname = "A"\n'
    with pytest.raises(SpecificationError, match=r"unique; \['A'\]"):
        load_spec(_write(tmp_path, text, raw))


# ------------------------------------------------------------------------------------------- the CLI
BAD = {
    "unknown key": (GOOD + "colour = 1\n", None),
    "missing key": (_replace(GOOD, "outcomes", None), None),
    "wrong type": (_replace(GOOD, "seed", "1.5"), None),
    "missing column": (_replace(GOOD, "outcomes", '["velocity"]'), None),
    "share outside [0, 1]": (GOOD, "percent"),
    "too few weeks": (GOOD, "short"),
    "not TOML": ("name = \n", None),
}


@pytest.mark.parametrize("case", list(BAD))
def test_cli_prints_a_sentence_never_a_traceback(tmp_path, raw, capsys, case):
    text, change = BAD[case]
    frame = {"percent": raw.assign(ai_share=raw["ai_share"] * 100), "short": raw[raw["week"] < 3]}.get(change, raw)
    path = _write(tmp_path, text, frame)
    code = main(["analyze", str(path), "--out", str(tmp_path / "report"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("causalcts: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]  # no temporary folder left


def test_errors_are_causalcts_errors():
    assert issubclass(SpecificationError, CausalCTSError) and issubclass(RangeError, CausalCTSError)


def test_parse_spec_rejects_a_non_table():
    with pytest.raises(SpecificationError, match="table of keys"):
        parse_spec(["name"])


def test_savings_outcome_follows_the_cts_unit(tmp_path, raw):
    path = _write(tmp_path, GOOD, raw)
    assert load_spec(path)[0].savings_from == "deploys_per_builder"
    assert load_spec(_write(tmp_path, _replace(GOOD, "cts_unit", '"crs_merged"')))[0].savings_from == "cr_velocity"
    only_crs = _replace(GOOD, "outcomes", '["cr_velocity"]')
    assert load_spec(_write(tmp_path, only_crs))[0].savings_from == "cr_velocity"  # no deployment outcome
    chosen = _replace(GOOD, "savings_outcome", '"cr_velocity"')
    assert load_spec(_write(tmp_path, chosen))[0].savings_from == "cr_velocity"  # an explicit choice wins


def test_cost_column_key_reads_another_cost_column(tmp_path, raw):
    """A cost column called ``developer_cost`` is usable: the spec names it with ``cost_column``."""
    mine = raw.rename(columns={"dev_cost": "developer_cost", "deployments": "deploys"})
    text = _replace(GOOD, "outcomes", '["cr_velocity", "log_cts"]')
    text = _replace(text, "controls", "[]")
    with pytest.raises(MissingColumnError, match=r"'log_cts'.*\['dev_cost', 'deploys'\].*'cost_column'"):
        load_data(load_spec(_write(tmp_path, _replace(text, "deployments_column", '"deploys"'), mine))[0])
    text = _replace(_replace(text, "cost_column", '"developer_cost"'), "deployments_column", '"deploys"')
    data = load_data(load_spec(_write(tmp_path, text, mine))[0])
    assert data.derived["log_cts"] == ("developer_cost", "deploys")
    expected = np.log(mine["developer_cost"] / mine["deploys"].where(mine["deploys"] > 0))
    got = data.frame.set_index(["team", "week"])["log_cts"].to_numpy()
    np.testing.assert_allclose(np.sort(got[np.isfinite(got)]), np.sort(expected[np.isfinite(expected)]))
    assert "developer_cost" in data.frame.columns  # kept for the money saved


def test_schema_table_lists_the_raw_columns():
    text = schema_table()
    for col in ("developers", "crs_merged", "deployments", "rollbacks", "interventions", "pages",
                "oncall_builders", "dev_cost"):  # fmt: skip
        assert f"| {col} |" in text
    assert "| cost_column | a string | no | 'dev_cost' |" in text
