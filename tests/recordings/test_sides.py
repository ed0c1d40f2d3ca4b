"""The sides `colo replay` takes are the sides the writers write.

`protocol.record.replay.SIMULATED_SIDES` is closed: an event of another side is a bad
file, never a divergence.  These tests hold the list to the simulator (every side it
writes is listed, and every listed side is written) and to the golden recordings.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from protocol.record import format as rf
from protocol.record.replay import RECORDED_SIDES, SIMULATED_SIDES
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation

LIBRARY = Path(__file__).resolve().parents[2] / "recordings"

#: sessions that between them reach every writer of a side: the endpoints, the link,
#: the simulator's faults and end, the arbiter, the guest model's client, the operator
FAULTS = [[], ["drop@checkpoint-reply#2"], ["kill-primary@ram#2"],
          ["kill-secondary@ram#2", "reprotect@failover"], ["stall-secondary@vmstate-send#2"],
          ["heartbeat-primary@checkpoint-request#2"], ["partition=3000@ram#2"],
          ["shutdown@checkpoint-request#2"], ["close@vmstate-loaded#2"]]


def _sides(cfg: SimConfig, inputs=()) -> set[str]:
    sim = Simulation(cfg)
    for item in inputs:
        sim.apply_input(item)
    sim.run()
    return {e.side for e in sim.events}


def test_the_simulator_writes_exactly_the_simulated_sides():
    seen: set[str] = set()
    for guest in ("null", "model"):
        for faults in FAULTS:
            seen |= _sides(SimConfig(guest=guest, faults=faults, checkpoints=3,
                                     mode="hybrid" if guest == "model" else "periodic"))
    seen |= _sides(SimConfig(checkpoints=2), [{"cmd": "checkpoint"}])
    assert seen == set(SIMULATED_SIDES)


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.colo.jsonl")), ids=lambda p: p.name)
def test_the_golden_recordings_use_only_those_sides(path):
    rec = rf.read(str(path))
    sides = RECORDED_SIDES if rec.imported else SIMULATED_SIDES
    assert {e["side"] for e in rec.events} <= set(sides)
