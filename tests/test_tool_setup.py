"""One setup for every tool (issue 31, item 3): the training tools share their flags and their setup
(spine_det.engine.defaults), every tool fails the same way (one ``error:`` line, exit status 2, nothing
written before its inputs are checked) and logs through one setup (spine_det.utils.logs)."""
from __future__ import annotations

import argparse
import ast
import importlib
import logging
from pathlib import Path

import pytest

from spine_det.engine import defaults
from spine_det.tools import train_classifier, train_linknet, train_net, train_nnunet

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "spine_det" / "tools"

# tool -> (its required arguments, config overrides that make a run tiny)
TRAINERS = {
    "train_net": (train_net, ["--config-file", "lat_vertebra.yaml"], []),
    "train_linknet": (train_linknet, ["--config-file", "linknet/lat_vertebra.yaml"],
                      ["MODEL.PRETRAINED", "False", "INPUT.HEIGHT", "32", "INPUT.WIDTH", "32"]),
    "train_nnunet": (train_nnunet, ["--config-file", "nnunet/lat_vertebra.yaml"], []),
    "train_classifier": (train_classifier, [], ["MODEL.PRETRAINED", "False"]),
}


@pytest.fixture
def nnunet_installed(monkeypatch):
    """train-nnunet's checks as on a machine with the nnunet extra (nothing of nnU-Net runs here)."""
    monkeypatch.setattr(train_nnunet.nnunet, "available", lambda: None)


def _error_lines(capsys) -> list:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_trainer_takes_the_shared_flags(name):
    tool, required, _ = TRAINERS[name]
    args = tool.get_parser().parse_args([*required, "--data-root", "D", "--cache-dir", "C", "--output-dir", "O",
                                         "--profile", "cpu", "--resume", "--eval-only", "--num-gpus", "2",
                                         "--num-machines", "3", "--machine-rank", "1", "--dist-url", "tcp://h:1",
                                         "SEED", "3"])
    assert (args.data_root, args.cache_dir, args.output_dir, args.profile) == ("D", "C", "O", "cpu")
    assert args.resume and args.eval_only
    assert (args.num_gpus, args.num_machines, args.machine_rank, args.dist_url) == (2, 3, 1, "tcp://h:1")
    assert args.opts == ["SEED", "3"]


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_num_gpus_reaches_launch_with_the_checked_config(name, phantom_copy, tmp_path, monkeypatch, nnunet_installed):
    """``--num-gpus 2`` (and the machine flags) go to Detectron2's launch, with the tool's per-process
    function and the config checked once here; nothing is written before the workers start."""
    tool, required, tiny = TRAINERS[name]
    calls = []
    monkeypatch.setattr(defaults, "launch", lambda main_func, num_gpus, **kw: calls.append((main_func, num_gpus, kw)))
    monkeypatch.setattr(defaults, "check_gpu_count", lambda n, device="auto": None)  # a CPU machine: as if it had the GPUs
    out = tmp_path / "run"
    rc = tool.main([*required, "--data-root", str(phantom_copy), "--profile", "cpu", "--num-gpus", "2",
                    "--num-machines", "2", "--machine-rank", "1", "--dist-url", "tcp://127.0.0.1:12345",
                    "OUTPUT_DIR", str(out), *tiny])
    assert rc == 0
    (main_func, num_gpus, kw), = calls
    assert main_func is tool.train and num_gpus == 2
    assert kw["num_machines"] == 2 and kw["machine_rank"] == 1 and kw["dist_url"] == "tcp://127.0.0.1:12345"
    args, cfg = kw["args"]
    assert args.num_gpus == 2 and args.profile == "cpu"
    assert Path(cfg.OUTPUT_DIR) == out and cfg.is_frozen()
    assert sorted(p.name for p in out.iterdir()) == []  # the workers write config.yaml and log.txt, not this process


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_flag_after_the_overrides_is_one_line_naming_it(name, tmp_path, capsys):
    tool, required, _ = TRAINERS[name]
    out = tmp_path / "run"
    # before: "odd number of overrides" or "unknown config key --resume" (exit status 1), or a silent override
    assert tool.main([*required, "--data-root", str(tmp_path), "OUTPUT_DIR", str(out), "SEED", "1", "--resume"]) == 2
    err = _error_lines(capsys)
    assert err == ["error: --resume: flags after the KEY VALUE overrides are read as overrides; move it before OUTPUT_DIR"]
    assert tool.main([*required, "SEED", "1", "--num-gpus", "2", "--eval-only"]) == 2
    assert "--num-gpus 2" not in _error_lines(capsys)[0]  # the flags are named, not their values
    assert not out.exists()


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_trainer_refuses_bad_inputs_in_one_line_before_writing(name, tmp_path, capsys, monkeypatch,
                                                                      nnunet_installed):
    tool, required, _ = TRAINERS[name]
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    data = tmp_path / "data"
    data.mkdir()
    at = ["OUTPUT_DIR", str(out)]
    cases = [  # (flags, overrides, what the one line says)
        ([], at, "give --data-root DIR"),
        (["--data-root", str(tmp_path / "nope")], at, "data root is not a folder"),
        (["--data-root", str(data), "--output-dir", str(data / "out")], [], "lies inside the data root"),
        (["--data-root", str(data)], [*at, "MODEL.DEVICE", "tpu"], "MODEL.DEVICE must be one of"),
        (["--config-file", "nope.yaml", "--data-root", str(data)], at, "config file not found: nope.yaml"),
        (["--data-root", str(data)], at, "no Training/ folder"),  # before: config.yaml and log.txt written first
    ]
    for flags, overrides, says in cases:
        rc = tool.main([*required, "--profile", "cpu", *flags, *overrides])
        err = _error_lines(capsys)
        assert rc == 2 and len(err) == 1 and says in err[0], (flags, err)
    assert not out.exists() and sorted(p.name for p in data.iterdir()) == []


def test_default_setup_writes_the_run_folder_after_the_checks(tmp_path, monkeypatch):
    """Rank 0: the lock, log.txt, config.yaml (config_eval.yaml for --eval-only into a run folder);
    a torchrun rank above 0 (RANK before its process group is joined): log.txt.rank<k> only."""
    from fvcore.common.config import CfgNode as CN

    from spine_det.utils.paths import LOCK_FILE

    root = logging.getLogger("spine_det")
    before, propagate = list(root.handlers), root.propagate
    cfg = CN({"OUTPUT_DIR": str(tmp_path / "run"), "SEED": 5, "SPINE": CN({"DATA_ROOT": str(tmp_path / "data")})})
    try:
        defaults.default_setup(cfg, argparse.Namespace(eval_only=False))
        run = tmp_path / "run"
        assert {"config.yaml", "log.txt", LOCK_FILE} <= {p.name for p in run.iterdir()}
        assert "SEED: 5" in (run / "config.yaml").read_text()
        logging.getLogger("spine_det.test").info("a line of the run")
        assert "a line of the run" in (run / "log.txt").read_text()
        trained = (run / "config.yaml").read_text()
        cfg.SEED = 6
        defaults.default_setup(cfg, argparse.Namespace(eval_only=True))
        assert (run / "config.yaml").read_text() == trained and "SEED: 6" in (run / "config_eval.yaml").read_text()
        monkeypatch.setenv("RANK", "1")
        cfg.OUTPUT_DIR = str(tmp_path / "rank1")
        (tmp_path / "rank1").mkdir()
        assert defaults.process_rank() == 1
        defaults.default_setup(cfg, argparse.Namespace(eval_only=False))
        assert sorted(p.name for p in (tmp_path / "rank1").iterdir()) == ["log.txt.rank1"]
    finally:  # the handlers Detectron2's setup_logger added are this test's
        root.propagate = propagate
        for h in set(root.handlers) - set(before):
            root.removeHandler(h)


def test_config_overrides_put_the_flags_first_so_the_users_own_pairs_win(tmp_path):
    args = argparse.Namespace(data_root="d", cache_dir="c", output_dir="o", opts=["OUTPUT_DIR", "mine"])
    pairs = defaults.config_overrides(args)
    assert pairs == ["SPINE.DATA_ROOT", str(Path("d").resolve()), "SPINE.CACHE_DIR", "c", "OUTPUT_DIR", "o",
                     "OUTPUT_DIR", "mine"]
    # the classifier's config has the same SPINE keys as every family's (it had DATA.ROOT / DATA.CACHE_DIR)
    cfg = train_classifier.load_config(argparse.Namespace(config_file=train_classifier.DEFAULT_CONFIG, profile="full",
                                                          data_root="d", cache_dir="c", output_dir=None, opts=[]))
    assert (cfg.SPINE.DATA_ROOT, cfg.SPINE.CACHE_DIR, cfg.SPINE.SPLIT_SEED) == (str(Path("d").resolve()), "c", 0)
    assert "DATA" not in cfg
    seen = {}
    defaults.load_config_from_args(argparse.Namespace(config_file="linknet/lat_vertebra.yaml", profile="cpu",
                                                      data_root=None, cache_dir=None, output_dir=None, opts=[]),
                                   lambda f, profile, opts: seen.update(f=f, profile=profile, opts=opts))
    assert Path(seen["f"]).is_file() and seen["profile"] == "cpu" and seen["opts"] == []


# -- every tool ---------------------------------------------------------------------------------------


def _tool_modules():
    from spine_det.tools.__main__ import COMMANDS

    return {name: importlib.import_module(f"spine_det.tools.{name}") for name in COMMANDS}


def test_every_tool_reports_user_errors_in_one_line_with_exit_status_2():
    """Each tool's main goes through spine_det.utils.cli.reports_user_errors (tasks cannot fail on input;
    install-detectron2 reports its own download and build failures)."""
    unwrapped = [n for n, m in _tool_modules().items() if not hasattr(m.main, "__wrapped__")]
    assert sorted(unwrapped) == ["install_detectron2", "tasks"]


def test_no_tool_configures_logging_on_its_own():
    """One logging setup (spine_det.utils.logs.setup_logging), no logging.basicConfig in a tool; every
    tool logger lives under spine_det (the one setup's logger)."""
    for path in sorted(TOOLS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "basicConfig":
                pytest.fail(f"{path.name}:{node.lineno}: logging.basicConfig")
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "getLogger" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                assert node.args[0].value.startswith("spine_det."), f"{path.name}:{node.lineno}"


@pytest.mark.parametrize("tool, argv, says", [
    ("eval_instances", ["--data-root", "{tmp}", "--pred-dir", "{tmp}", "--task", "nope", "--out", "{tmp}/o"],
     "unknown task 'nope'"),
    ("predict", ["--checkpoint", "{tmp}/none.pth", "--input", "{tmp}", "--output", "{tmp}/o"], "checkpoint not found"),
    ("measure", ["--data-root", "{tmp}", "--out", "{tmp}/o", "--source", "linknet"], "--source linknet needs --pred-dir"),
    ("measure_cobb", ["--data-root", "{tmp}/nope", "--out", "{tmp}/o"], "folder not found"),
    ("eval_morphometry", ["--data-root", "{tmp}/nope", "--out", "{tmp}/o"], "data root"),
    ("visualize_data", ["--data-root", "{tmp}/nope", "--out", "{tmp}/o"], "data root is not a folder"),
    ("convert_to_coco", ["--data-root", "{tmp}", "--out", "{tmp}/o", "--tasks", "nope"], "unknown task 'nope'"),
    ("import_aasce", ["--source", "{tmp}/nope", "--out", "{tmp}/o"], "AASCE source is not a folder"),
    ("make_phantom", ["--out", "{tmp}/a_file", "--patients", "2", "--size", "64", "--quiet"], "is not a folder"),
    ("benchmark", ["--data-root", "{tmp}", "--out", "{tmp}/o", "--tasks", "nope"], "unknown task 'nope'"),
])
def test_other_tools_refuse_bad_input_in_one_line_with_exit_status_2(tool, argv, says, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a_file").write_text("x")
    rc = importlib.import_module(f"spine_det.tools.{tool}").main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = _error_lines(capsys)
    assert rc == 2 and len(err) == 1 and says in err[0], err
    assert not (tmp_path / "o").exists()  # before: the output folder was made first by visualize-data


def test_a_phantom_size_below_64_is_an_argparse_error_before_the_folder_is_made(tmp_path, capsys):
    from spine_det.tools import make_phantom

    with pytest.raises(SystemExit) as e:  # before: the folder made, then a ValueError in the first worker
        make_phantom.main(["--out", str(tmp_path / "o"), "--size", "8"])
    assert e.value.code == 2 and "argument --size: must be an integer >= 64, got '8'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_user_errors_become_one_line_and_other_errors_stay_tracebacks(capsys):
    from spine_det.utils.cli import as_user_error, reports_user_errors
    from spine_det.utils.errors import UserError

    @reports_user_errors
    def main(argv):
        with as_user_error(KeyError):
            {}[argv]

    assert main("SPINE.NOPE") == 2
    assert capsys.readouterr().err == "error: SPINE.NOPE\n"  # a KeyError's message, not its quoted repr

    @reports_user_errors
    def two_lines(argv):
        raise UserError("first\nsecond")

    assert two_lines(None) == 2 and capsys.readouterr().err == "error: first second\n"

    @reports_user_errors
    def bug(argv):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        bug(None)


def test_the_console_handler_follows_stderr():
    """Set up once, the console still writes where stderr is now (pytest, a notebook, redirect_stderr)."""
    import contextlib
    import io

    from spine_det.utils.logs import setup_logging

    logger = logging.getLogger("spine_det")
    kept, level = list(logger.handlers), logger.level
    for h in kept:
        logger.removeHandler(h)
    try:
        setup_logging()
        setup_logging()  # again: still one handler
        assert len(logger.handlers) == 1
        for text in ("first", "second"):
            with contextlib.redirect_stderr(io.StringIO()) as err:
                logging.getLogger("spine_det.test_console").info(text)
            assert err.getvalue() == f"INFO spine_det.test_console: {text}\n"
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        for h in kept:
            logger.addHandler(h)
        logger.setLevel(level)


def test_a_second_run_in_one_process_logs_once_and_only_to_its_own_folder(tmp_path, capsys):
    """Detectron2's setup_logger keeps every earlier run's handlers (lru_cache): two runs in one process
    printed each line twice and appended the second run's lines to the first run's log.txt."""
    from spine_det.utils.logs import setup_logging

    log = logging.getLogger("spine_det.test_runs")
    try:
        setup_logging(tmp_path / "one")
        log.info("first run")
        setup_logging(tmp_path / "two")
        log.info("second run")
        setup_logging(tmp_path / "one")  # the same folder again (--resume): still logged
        log.info("first again")
    finally:
        setup_logging()
    one, two = (tmp_path / "one" / "log.txt").read_text(), (tmp_path / "two" / "log.txt").read_text()
    assert "first run" in one and "first again" in one and "second run" not in one
    assert "second run" in two and "first" not in two
    assert capsys.readouterr().out.count("second run") == 1


def test_train_net_eval_only_names_a_missing_checkpoint_before_writing(phantom_copy, tmp_path, capsys):
    out = tmp_path / "run"
    # before: config.yaml and log.txt written and the data converted to COCO, then "checkpoint not found" (status 1)
    assert train_net.main(["--config-file", "lat_vertebra.yaml", "--data-root", str(phantom_copy), "--profile", "cpu",
                           "--eval-only", "OUTPUT_DIR", str(out), "MODEL.WEIGHTS", str(tmp_path / "none.pth")]) == 2
    assert _error_lines(capsys) == [f"error: --eval-only: MODEL.WEIGHTS file not found: {tmp_path / 'none.pth'}"]
    assert not out.exists()
