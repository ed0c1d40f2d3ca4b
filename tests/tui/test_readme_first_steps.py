"""README's intro says what the first presses of `n` show in `colo`'s app; it said one
press shows the first message move, and it takes four: the 1st step starts the pair
(nothing on the ladder), the 2nd sends the initial migration, the 3rd puts
checkpoint-ready on the wire, the 4th delivers it (checked in a 120x40 terminal too)."""
from __future__ import annotations

from pathlib import Path

from tests.tui.conftest import make_app

README = Path(__file__).resolve().parents[2] / "README.md"


def _moves(view) -> list[tuple[str, bool]]:
    return [(r.label, r.flying) for r in view.ladder if r.kind in ("msg", "payload")]


async def test_the_first_presses_of_n_show_what_readme_says() -> None:
    app = make_app(guest="model")            # what `colo` opens on
    seen = []
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(4):
            await pilot.press("n")
            await pilot.pause()
            seen.append(_moves(app.bridge.view()))
    assert seen[0] == []
    assert [label for label, _ in seen[1]] == ["initial migration 22318 B"]
    assert seen[2][-1] == ("checkpoint-ready", True)         # on the wire
    assert seen[3][-1] == ("checkpoint-ready", False)        # delivered
    intro = README.read_text().split("## What this is")[0]
    assert ("each `n` is one step: the 2nd sends the initial migration, the 3rd puts the "
            "first COLO message, `checkpoint-ready`, on the wire and the 4th delivers it"
            in " ".join(intro.split()))
