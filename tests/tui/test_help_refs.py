"""Help never points at what the repository does not have, and the legend covers the screen.

Every text a user reads as help (the help screen's keys, primer, legend and scenarios,
the command registry's help, the explanations, the REPL's `legend`) is searched for
references to files and to sections: a repository path must exist, a section of
docs/protocol.md must be one of its headings, and a QEMU source may only be named by
its place in QEMU's tree.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from colo_tui.commands import execute
from colo_tui.commands.registry import COMMANDS
from colo_tui.present import explain as ex
from colo_tui.present.legend import ABBREVIATIONS, SYMBOLS, legend_text
from colo_tui.session.control import Controller
from colo_tui.tui.screens import help as hs
from colo_tui.tui.screens.presets import PRESETS
from protocol.sim.config import SimConfig
from tests.tui.conftest import make_app

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "protocol.md"
#: QEMU's tree, where a citation by file and function is welcome
QEMU_DIRS = ("migration/", "net/", "qapi/", "softmmu/", "include/", "block/", "docs/colo",
             "docs/COLO-FT.txt")
FILE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.(?:md|py|c|h|json|txt|rst))\b")
SECTION = re.compile(r"(?:([\w/.-]+\.md)\s+)?((?:§[\d.]+(?:-[\d.]+)?(?:,\s*)?)+)")


def help_texts() -> dict[str, str]:
    texts = {"keys": "\n".join(f"{k} {w}" for k, w in hs.KEYS), "primer": hs.PRIMER,
             "legend": legend_text(),
             "scenarios": "\n".join(f"{p.title} ({p.section}): {p.what}" for p in PRESETS)}
    for c in COMMANDS:
        texts[f"command {c.name}"] = f"{c.syntax} {c.summary} {c.help}"
    for table in ("_MSG", "_ACTION", "_FAILOVER", "_LINK", "_OTHER"):
        for k, v in getattr(ex, table).items():
            texts[f"explain {table} {k}"] = v
    texts["explain module"] = ex.__doc__ or ""
    return texts


def _headings() -> set[str]:
    out = set()
    for line in GUIDE.read_text().splitlines():
        m = re.match(r"#{2,3} (\d+(?:\.\d+)?)\.? ", line)
        if m:
            out.add(m.group(1))
    return out


def test_the_guide_exists_and_covers_what_the_issue_asks():
    text = GUIDE.read_text()
    for topic in ("checkpoint-request", "vmstate-received", "failover", "RAM cache",
                  "colo-compare", "KIND[=ARG]@POINT[#N]", "v11", "prototype", "relaunch"):
        assert topic in text, topic
    # the fault grammar's kinds are all there
    from protocol.core.faults import KINDS
    assert all(f"`{k}" in text for k in KINDS), [k for k in KINDS if f"`{k}" not in text]


def test_help_cites_only_files_that_exist():
    bad = []
    for where, text in help_texts().items():
        for ref in FILE.findall(text):
            if ref.startswith(QEMU_DIRS):
                continue
            if not (ROOT / ref).exists():
                bad.append(f"{where}: {ref}")
    assert not bad, bad


def test_every_section_reference_is_a_heading_of_the_guide():
    heads = _headings()
    assert {"3", "7.4", "11"} <= heads
    bad = []
    for where, text in help_texts().items():
        for m in SECTION.finditer(text):
            doc = m.group(1)
            assert doc in (None, "docs/protocol.md"), f"{where}: {m.group(0)}"
            if doc is None:
                bad.append(f"{where}: a bare {m.group(2)} (which document?)")
                continue
            for sec in re.findall(r"§([\d.]+)", m.group(2)):
                if sec.rstrip(".") not in heads:
                    bad.append(f"{where}: {sec}")
    assert not bad, bad


def test_the_old_dangling_references_are_gone():
    every = "\n".join(help_texts().values())
    assert "PROTOCOL.md" not in every and "DESIGN.md" not in every
    assert not re.search(r"\bB\d+\b", every)                # PROTOCOL.md's bug ids


def _screen_symbols(app) -> set[str]:
    """The non-ASCII symbols drawn by the ladder, the panels, the status and diagram."""
    found: set[str] = set()
    for row in app.bridge.view().ladder:
        from colo_tui.tui.widgets.ladder import row_text
        found |= set(row_text(row, 60))
    return {ch for ch in found if ord(ch) > 127}


@pytest.mark.parametrize("faults", [["kill-primary@ram#1"], ["drop@vmstate-loaded#1"],
                                    ["stall-secondary@checkpoint-reply#1"]])
def test_the_legend_explains_every_symbol_the_ladder_draws(faults):
    app = make_app(faults=faults, checkpoints=2)
    app.bridge.c.run()
    legend = "".join(s for s, _w, _m in SYMBOLS)
    missing = {ch for ch in _screen_symbols(app)
               if ch not in legend and ch not in "─═│"}
    assert not missing, missing


def test_the_legend_is_on_the_help_screen_and_in_the_repl():
    async def go():
        app = make_app()
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            from rich.console import Console
            legend = app.screen.query_one("#help-legend")
            console = Console(width=80, record=True, file=open("/dev/null", "w"))
            console.print(legend.content)
            text = console.export_text()
            assert "↯" in text and "☠" in text and "XBZRLE" in text
    import asyncio
    asyncio.run(go())
    c = Controller(SimConfig())
    r = execute(c, "legend")
    assert r.ok and "☠" in r.text and "SVM" in r.text and "docs/protocol.md" in r.text
    assert all(sym.split()[0] in r.text for sym, _w, _m in SYMBOLS)
    assert all(a in r.text for a, _m in ABBREVIATIONS)
