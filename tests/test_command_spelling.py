"""One spelling of every command in the user's documents and help texts: ``spine-det <tool>`` (issue 32,
item 5). A user who ran ``pip install .`` has neither the checkout's ``tools/`` nor its ``.venv``."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_DOCS = ["README.md", "datasets/README.md"]
# `python tools/x.py`, `.venv/bin/python tools/x.py`, `python -m spine_det.tools[.x]`, `-m spine_det.tools.x`
OTHER_SPELLING = re.compile(r"(?:\bpython3?|\.venv/bin/python)\s+(?:tools/\w+\.py|-m\s+spine_det\.tools\b)"
                            r"|-m\s+spine_det\.tools\.\w+")
# a wrapper script named anywhere else (docker run, torchrun); Detectron2's own tools may be cited
WRAPPER = re.compile(r"(?<!Detectron2's )(?<!Detectron2's ``)\btools/\w+\.py\b")


def _help_text(name: str, capsys) -> str:
    from spine_det.tools.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("doc", USER_DOCS)
def test_user_documents_spell_every_command_spine_det(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert OTHER_SPELLING.findall(text) == []
    # the README may say once that a checkout's tools/<name>.py wrapper is the same command
    assert len(WRAPPER.findall(text)) <= (1 if doc == "README.md" else 0), WRAPPER.findall(text)


def test_every_tool_help_spells_commands_spine_det(capsys):
    from spine_det.tools.__main__ import COMMANDS

    bad = {}
    for name in COMMANDS:
        text = _help_text(name, capsys)
        found = OTHER_SPELLING.findall(text) + WRAPPER.findall(text)
        if found:
            bad[name] = found
    assert bad == {}


def test_spine_det_help_lists_every_tool_on_one_line_each(capsys):
    from spine_det.tools.__main__ import COMMANDS, main

    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in COMMANDS:
        listed = [ln for ln in lines if ln.split()[:1] == [name.replace("_", "-")]]
        assert len(listed) == 1 and len(listed[0]) <= 120, name
    tools = {p.stem for p in (ROOT / "tools").glob("*.py")}
    assert tools <= set(COMMANDS)  # every checkout wrapper is a spine-det command


def test_make_targets_call_spine_det():
    """The Makefile's demo and install run the same commands a pip user types."""
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert OTHER_SPELLING.findall(make) == []
    assert "$(BIN)/spine-det make-phantom" in make and "$(BIN)/spine-det benchmark" in make
    assert "$(BIN)/spine-det install-detectron2" in make
