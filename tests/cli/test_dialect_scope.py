"""The qemu dialect claims 2.8 … 10.x for its control messages only: the stream it
decodes and the guest model are QEMU 7.2's, and every text that names the range says so."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from colo_tui.cli import main as cli
from protocol.core import dialects

ROOT = Path(__file__).resolve().parents[2]


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_decode_help_names_the_stream_version(capsys):
    text = _help(capsys, "decode")
    assert "The stream version decoded is QEMU 7.2's" in text
    assert "2.8 … 10.x" in text and "not decoded" in text


@pytest.mark.parametrize("cmd", [("node", "primary"), ("tui",)])
def test_dialect_help_narrows_the_range(capsys, cmd):
    text = _help(capsys, *cmd)
    assert "COLOMessage of QEMU 2.8 … 10.x" in text and "7.2's" in text


def test_the_dialect_title_and_scope_say_7_2():
    assert dialects.QEMU.title.endswith("stream and model: 7.2")
    assert dialects.QEMU_STREAM_VERSION == "7.2"


def test_no_text_claims_the_range_without_the_7_2_scope():
    """Every paragraph of README.md, docs/ and the code that says 10.x also says 7.2."""
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
             *(ROOT / "protocol").rglob("*.py"), *(ROOT / "colo_tui").rglob("*.py")]
    bad = []
    for f in files:
        for para in re.split(r"\n\s*\n", f.read_text(errors="replace")):
            if "10.x" in para and "7.2" not in para and "QEMU_STREAM_VERSION" not in para:
                bad.append(f"{f.relative_to(ROOT)}: {para.strip()[:80]}")
    assert bad == []
