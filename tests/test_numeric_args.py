"""Numbers on the command line: a count, a fraction or a length that cannot mean anything is an
argparse error (one line naming the option, exit 2) before anything runs, never a Python slice
(``--limit -1``: all but the last), an empty split (``--val-fraction 2``) or a NaN passing every test."""
from __future__ import annotations

import argparse
import json

import pytest

NOWHERE = "no-such-folder"  # argparse refuses the number before any path is looked at

CASES = [
    ("convert_to_coco", ["--data-root", NOWHERE, "--out", NOWHERE], "--val-fraction", ["2", "-0.5", "nan", "0", "1"]),
    ("convert_to_coco", ["--data-root", NOWHERE, "--out", NOWHERE], "--test-fraction", ["1.5", "nan", "-0.1"]),
    ("convert_to_coco", ["--data-root", NOWHERE, "--out", NOWHERE], "--workers", ["0", "-2"]),
    ("measure", ["--data-root", NOWHERE, "--out", NOWHERE], "--limit", ["0", "-1"]),
    ("measure", ["--data-root", NOWHERE, "--out", NOWHERE], "--pad", ["nan", "inf", "-inf"]),
    ("measure_cobb", ["--data-root", NOWHERE, "--out", NOWHERE], "--limit", ["0", "-1"]),
    ("measure_cobb", ["--data-root", NOWHERE, "--out", NOWHERE], "--overlay-max-side", ["0", "-5"]),
    ("eval_morphometry", ["--data-root", NOWHERE, "--out", NOWHERE], "--limit", ["0", "-1"]),
    ("eval_instances", ["--data-root", NOWHERE, "--pred-dir", NOWHERE, "--out", NOWHERE], "--expected", ["-5"]),
    ("visualize_data", ["--data-root", NOWHERE, "--out", NOWHERE], "--num", ["-1", "0"]),
    ("visualize_data", ["--data-root", NOWHERE, "--out", NOWHERE], "--max-size", ["-5"]),
    ("import_aasce", ["--source", NOWHERE, "--out", NOWHERE], "--limit", ["0", "-1"]),
    ("import_aasce", ["--source", NOWHERE, "--out", NOWHERE], "--workers", ["0"]),
    ("make_phantom", ["--out", NOWHERE], "--workers", ["0"]),
    ("benchmark", ["--data-root", NOWHERE, "--out", NOWHERE], "--cost-images", ["0", "-1"]),
    ("benchmark", ["--data-root", NOWHERE, "--out", NOWHERE], "--figure-images", ["-1"]),
    ("benchmark", ["--data-root", NOWHERE, "--out", NOWHERE], "--make-phantom", ["-1", "0"]),
    ("benchmark", ["--data-root", NOWHERE, "--out", NOWHERE], "--phantom-size", ["0"]),
]


@pytest.mark.parametrize("tool,base,option,values", CASES, ids=[f"{c[0]}{c[2]}" for c in CASES])
def test_meaningless_numbers_are_argparse_errors(tool, base, option, values, load_tool, capsys, tmp_path,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written, and if it were, not into the repository
    mod = load_tool(tool)
    for v in values:
        with pytest.raises(SystemExit) as exc:
            mod.main([*base, f"{option}={v}"])
        assert exc.value.code == 2, (option, v)
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"argument {option}" in err and repr(v) in err, err
    assert list(tmp_path.iterdir()) == []


def test_benchmark_cost_step_refuses_meaningless_counts(capsys):
    from spine_det.benchmark import cost

    base = ["--model", "linknet", "--checkpoint", NOWHERE, "--task", "lat_vertebra", "--manifest", NOWHERE,
            "--out", NOWHERE]
    for option, v in (("--images", "0"), ("--images", "-3"), ("--keep", "-1")):
        with pytest.raises(SystemExit) as exc:
            cost.main([*base, f"{option}={v}"])
        assert exc.value.code == 2 and f"argument {option}" in capsys.readouterr().err


def test_shared_validators_accept_what_means_something():
    from spine_det.utils.cli import finite_float, fraction_open, non_negative_int, positive_int

    assert positive_int("3") == 3 and non_negative_int("0") == 0
    assert fraction_open("0.25") == 0.25 and finite_float("-1.5") == -1.5
    for parse, bad in ((positive_int, "1.5"), (non_negative_int, "x"), (fraction_open, "inf"), (finite_float, "nan")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


def test_a_config_file_with_a_nan_pad_is_refused(tmp_path, phantom_root, monkeypatch, load_tool, capsys):
    # JSON's NaN passes json.loads: every length NaN, every patient "Normal" from zero graded levels
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "morph.json"
    cfg.write_text(json.dumps({"config": {"pad": float("nan")}}))
    out = tmp_path / "m"
    assert load_tool("measure").main(["--data-root", str(phantom_root), "--out", str(out), "--config", str(cfg),
                                      "--quiet", "--no-overlay"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "pad must be a finite number" in err[0] and str(cfg) in err[0]
    assert not (out / "measure_summary.json").exists()
