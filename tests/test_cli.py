"""The command line reads as sentences, not tracebacks."""

import json

import pandas as pd
import pytest

from causalcts.cli import main


def test_help(capsys):
    assert main([]) == 0
    assert "causalcts demo" in capsys.readouterr().out


def test_simulate_writes_parquet_and_truth(tmp_path, capsys):
    out = tmp_path / "panel.parquet"
    assert main(["simulate", "--teams", "20", "--weeks", "8", "--seed", "1", "-o", str(out)]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 160
    truth = json.loads((tmp_path / "panel.truth.json").read_text())
    assert truth["design"]["seed"] == 1
    assert "Wrote 160 team-weeks" in capsys.readouterr().out
    again = tmp_path / "again.parquet"
    main(["simulate", "--teams", "20", "--weeks", "8", "--seed", "1", "-o", str(again)])
    pd.testing.assert_frame_equal(df, pd.read_parquet(again))


def test_fit_prints_summary_and_json(tmp_path, capsys):
    out = tmp_path / "panel.csv"
    main(["simulate", "--teams", "60", "--weeks", "10", "--seed", "2", "-o", str(out)])
    assert (
        main(
            [
                "fit",
                str(out),
                "cr_velocity ~ L(cr_velocity, 1) + ai_share",
                "--method",
                "diff-gmm",
                "--collapse",
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "L1.cr_velocity" in text and "hansen" in text
    assert json.loads((tmp_path / "r.json").read_text())["method"] == "diff-gmm"


def test_errors_are_sentences(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "absent.csv"), "y ~ x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("causalcts: error: No such file") and "Traceback" not in err
    out = tmp_path / "p.csv"
    main(["simulate", "--teams", "5", "--weeks", "6", "-o", str(out)])
    assert main(["fit", str(out), "cr_velocity ~ L(cr_velocity, 1) + velocity"]) == 2
    assert "'velocity'" in capsys.readouterr().err


def test_demo_small(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--teams", "60", "--weeks", "12"]) == 0
    text = capsys.readouterr().out
    assert "TRUTH" in text and "within (fixed effects)" in text
    assert (tmp_path / "d" / "adoption.png").stat().st_size > 1000
    assert (tmp_path / "d" / "demo_results.json").exists()


def test_fit_default_is_collapsed_and_lag_limited(tmp_path, capsys):
    """The CLI's GMM default is lags 2..4, collapsed: an uncollapsed 200 x 52 run took over 15 minutes in 0.1."""
    import causalcts

    sim = causalcts.simulate(60, 10, seed=2)
    path = tmp_path / "panel.csv"
    sim.data.to_csv(path, index=False)
    f = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
    assert main(["fit", str(path), f, "--json", str(tmp_path / "r.json")]) == 0
    got = causalcts.EstimationResults.from_json(tmp_path / "r.json")
    ref = causalcts.fit(f, sim.data, method="diff-gmm", gmm={"cr_velocity": (2, 4)}, collapse=True)
    assert got.n_instruments == ref.n_instruments
    pd.testing.assert_series_equal(got.params, ref.params)


def test_fit_reads_iso_dates_and_derives_metrics(tmp_path, capsys):
    """A raw telemetry export: ISO dates in the time column and no cr_velocity/rollback_rate columns."""
    import causalcts

    sim = causalcts.simulate(40, 10, seed=3)
    raw = sim.data.drop(columns=["cr_velocity", "rollback_rate"])
    raw["week"] = (pd.Timestamp("2025-01-06") + pd.to_timedelta(7 * raw["week"], unit="D")).dt.strftime("%Y-%m-%d")
    path = tmp_path / "raw.csv"
    raw.to_csv(path, index=False)
    f = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate"
    assert main(["fit", str(path), f, "--method", "within", "--json", str(tmp_path / "r.json")]) == 0
    got = causalcts.EstimationResults.from_json(tmp_path / "r.json")
    ref = causalcts.fit(f, sim.data, method="within")
    # derived from the same raw counts the simulator used, so equal to round-off of the division (1e-10)
    pd.testing.assert_series_equal(got.params, ref.params, rtol=1e-10)


def test_bad_inputs_exit_2_with_one_sentence(tmp_path, capsys):
    out = tmp_path / "p.csv"
    main(["simulate", "--teams", "10", "--weeks", "8", "--seed", "1", "-o", str(out)])
    capsys.readouterr()
    f = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
    for argv in (
        ["fit", str(out), f, "--max-lag", "1"],
        ["fit", str(out), "cr_velocity ~ L(cr_velocity, 1) + no_such_metric"],
        ["fit", str(tmp_path / "p.txt"), f],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("causalcts: error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_fit_refuses_options_the_method_does_not_take(tmp_path, capsys):
    """`--method within --steps 2` was accepted and ignored; Python's fit refuses steps for within, so must the CLI."""
    out = tmp_path / "p.csv"
    main(["simulate", "--teams", "20", "--weeks", "8", "--seed", "1", "-o", str(out)])
    capsys.readouterr()
    f = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
    for extra, flags in (
        (["--method", "within", "--steps", "2"], ["--steps"]),
        (["--method", "within", "--max-lag", "3"], ["--max-lag"]),
        (["--method", "pooled", "--no-collapse", "--seed", "3"], ["--collapse/--no-collapse", "--seed"]),
        (["--method", "bayes", "--steps", "1"], ["--steps"]),
    ):
        assert main(["fit", str(out), f, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("causalcts: error: ") and len(err.splitlines()) == 1, err
        assert "not apply to --method " + extra[1] in err and all(flag in err for flag in flags), err
    # the CLI's own defaults (collapsed, lags 2..4, seed 1) still apply to the methods that take them, silently
    assert main(["fit", str(out), f, "--method", "within"]) == 0
    assert main(["fit", str(out), f, "--method", "diff-gmm", "--steps", "2", "--no-collapse", "--max-lag", "3"]) == 0


def test_fit_help_shows_entity_and_time_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--entity ENTITY column naming the team (default: team)" in text
    assert "--time TIME column naming the week or date (default: week)" in text
