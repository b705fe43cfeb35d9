"""The command line reads as sentences, not tracebacks."""

import json

import pandas as pd

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
