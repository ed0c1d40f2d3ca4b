"""Regenerate the golden recordings in this directory.

    python recordings/make_recordings.py            # write every *.colo.jsonl
    python recordings/make_recordings.py NAME ...   # only these scenarios
    python recordings/make_recordings.py --list     # name, §15 reference, expected outcome

Each scenario is a SimConfig plus a short operator script driven through
``colo_tui.session.control.Controller``; the session is written with
``protocol.record.format``.  The header carries three extra fields that
readers ignore: ``scenario`` (the file's stem), ``covers`` (PROTOCOL.md
reference) and ``expect`` ({"outcome", "events": [{side, kind, match}],
"invariants": "ok"|[names that may break]}).  The test suite never runs this
script: it replays the committed files (tests/recordings/test_library.py).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from colo_tui.session.control import Controller  # noqa: E402
from protocol.record import format as rf  # noqa: E402
from protocol.sim.config import SimConfig  # noqa: E402

SUFFIX = ".colo.jsonl"
BASE = {"checkpoints": 2, "checkpoint_delay_ms": 1000}


@dataclass
class Scenario:
    name: str
    covers: str
    comment: str
    config: dict
    outcome: str
    script: list = field(default_factory=list)   # ("until", side, kind, match) | ("do", ...)
    events: list = field(default_factory=list)   # [(side, kind, substring of data)]

    def sim_config(self) -> SimConfig:
        return SimConfig.from_dict({**BASE, **self.config})

    def expect(self) -> dict:
        return {"outcome": self.outcome, "invariants": "ok",
                "events": [{"side": s, "kind": k, "match": m} for s, k, m in self.events]}


def _matches(ev, side: str, kind: str, match: str) -> bool:
    return ev.side == side and ev.kind == kind and \
        match in json.dumps(ev.payload(), sort_keys=True)


def drive(sc: Scenario) -> Controller:
    """Run a scenario's session to its end; returns the controller."""
    ctl = Controller(sc.sim_config())
    for item in sc.script:
        if item[0] == "until":
            _, side, kind, match = item
            seen = False
            while not ctl.finished and not seen:
                seen = any(_matches(e, side, kind, match) for e in ctl.step())
            if not seen:
                raise RuntimeError(f"{sc.name}: the session ended before {side} {kind} {match}")
        else:
            _, method, *args = item
            getattr(ctl, method)(*args)
    ctl.run(max_steps=1_000_000)
    return ctl


def write(sc: Scenario, path: Path) -> Controller:
    ctl = drive(sc)
    header = rf.make_header(ctl.config, scenario=sc.name, covers=sc.covers, expect=sc.expect())
    rf.write(path, header, ctl.events, ctl.inputs, comments=[sc.comment],
             force=True)                 # the generator replaces the library on purpose
    return ctl


def _happy(dialect: str, mode: str) -> Scenario:
    return Scenario(
        f"happy-{dialect}-{mode}", "§15.1 §15.2",
        f"Happy path, {dialect} dialect, {mode} mode: initial migration, checkpoint-ready, "
        "two timer-driven checkpoints (1000 ms) with the full message order of §3.2/§3.3.",
        {"dialect": dialect, "mode": mode}, "ok",
        events=[("primary", "checkpoint", '"phase": "commit"'),
                ("secondary", "checkpoint", '"n": 2')])


AFTER_CKPT1 = ("until", "primary", "checkpoint", '"phase": "commit"')

SCENARIOS: list[Scenario] = [_happy(d, m) for d in ("qemu", "v11", "prototype")
                             for m in ("periodic", "hybrid")] + [
    Scenario(
        "lost-heartbeat-secondary", "§9.2 §15.14 qemu-colo/README run1",
        "x-colo-lost-heartbeat on the SECONDARY between checkpoints while the primary lives "
        "(hybrid, qemu, faithful): the SVM takes over (COLO_EXIT secondary/request), the "
        "primary only notices at its next checkpoint-request (COLO_EXIT primary/error) and "
        "keeps running: split brain, as in qemu-colo/README 'Failover observations'.",
        {"mode": "hybrid"}, "split-brain",
        script=[AFTER_CKPT1, ("do", "lost_heartbeat", "secondary")],
        events=[("secondary", "colo-exit", '"reason": "request"'),
                ("primary", "colo-exit", '"reason": "error"')]),
    Scenario(
        "lost-heartbeat-primary", "§9.2 §9.4 qemu-colo/README",
        "x-colo-lost-heartbeat on the PRIMARY between checkpoints while the secondary lives "
        "(hybrid, qemu, faithful): the primary takes over and its COLO_EXIT says 'error' "
        "(the 7.2 race); the secondary sees the socket shut down, COLO_EXIT "
        "secondary/error, and its SVM keeps running: split brain.",
        {"mode": "hybrid"}, "split-brain",
        script=[AFTER_CKPT1, ("do", "lost_heartbeat", "primary")],
        events=[("primary", "colo-exit", '"reason": "error"'),
                ("secondary", "colo-exit", '"reason": "error"')]),
    Scenario(
        "kill-primary-mid-ram", "§15.11",
        "The primary dies while the RAM of checkpoint 2 streams (kill-primary@ram#2, qemu): "
        "the secondary's read fails, COLO_EXIT secondary/error; the arbiter fails over to the "
        "secondary, which discards the partial checkpoint in its RAM cache.",
        {"faults": ["kill-primary@ram#2"]}, "failover",
        events=[("secondary", "colo-exit", '"reason": "error"'),
                ("secondary", "failover", '"to": "completed"')]),
    Scenario(
        "kill-primary-mid-ram-v11", "§15.11 (v11) §9.7",
        "v11, no arbiter: the primary dies while RAM streams (kill-primary@ram#2); nobody "
        "gives x-colo-lost-heartbeat, so after DEFAULT_FAILOVER_DELAY (2000 ms) the SVM "
        "exits by itself ('SVM is going to exit in default!').",
        {"dialect": "v11", "arbiter": False, "faults": ["kill-primary@ram#2"]}, "error",
        events=[("secondary", "default-failover", "SVM is going to exit in default!")]),
    Scenario(
        "kill-secondary-mid-ram", "§15.13",
        "The secondary dies while the RAM of checkpoint 2 streams (kill-secondary@ram#2, "
        "qemu): the primary's read of vmstate-received fails, COLO_EXIT primary/error; the "
        "arbiter fails over to the primary, which resumes the PVM.",
        {"faults": ["kill-secondary@ram#2"]}, "failover",
        events=[("primary", "failover", '"to": "completed"')]),
    Scenario(
        "failover-during-load", "§15.12 §9.5 (relaunch)",
        "Failover requested while the secondary loads checkpoint 2 (load_ms 500, "
        "heartbeat-secondary@load#2, qemu): state active -> relaunch, the load completes, "
        "vmstate-loaded is NOT sent, then relaunch -> none -> require -> active -> "
        "completed; the SVM ends up with the whole checkpoint 2.  The primary is alive "
        "(operator error): it stays stopped in WAIT_LOADED.",
        {"load_ms": 500, "faults": ["heartbeat-secondary@load#2"]}, "failover",
        events=[("secondary", "failover", '"to": "relaunch"'),
                ("secondary", "checkpoint", '"loaded_sent": false'),
                ("secondary", "failover", '"to": "completed"')]),
    Scenario(
        "failover-during-load-primary-dead", "§15.12",
        "The primary dies just after the secondary holds checkpoint 2 (kill-primary@"
        "vmstate-received#2, load_ms 2000 > arbiter 1000 ms): the arbiter's failover arrives "
        "while the SVM loads -> relaunch; the load completes, vmstate-loaded is not sent, "
        "then relaunch -> none -> require -> active -> completed with the whole checkpoint.",
        {"load_ms": 2000, "faults": ["kill-primary@vmstate-received#2"]}, "failover",
        events=[("secondary", "failover", '"to": "relaunch"'),
                ("secondary", "failover", '"to": "completed"')]),
    Scenario(
        "truncated-device-blob", "§15.10",
        "vmstate-size announces N bytes, half arrive, then the connection closes "
        "(truncate@device-state#2, qemu): the secondary reports 'less than expected' and "
        "does not flush its cache; before the (slow, 5 s) arbiter acts, the operator fails "
        "over to the secondary, which discards the partial checkpoint and resumes from "
        "checkpoint 1; the PVM stays stopped in its broken transaction.",
        {"arbiter_ms": 5000, "faults": ["truncate@device-state#2"]}, "failover",
        script=[("until", "secondary", "colo-exit", "error"),
                ("do", "lost_heartbeat", "secondary")],
        events=[("secondary", "error", "less than expected"),
                ("secondary", "action", "discard-cache"),
                ("secondary", "failover", '"to": "completed"')]),
    Scenario(
        "dialect-mismatch-qemu-v11", "§15.6",
        "Dialect mismatch: a qemu (7.2) primary with a v11 secondary (secondary_dialect). "
        "The secondary's checkpoint-ready is be32 1 + be64 0; the primary reads 1 where 0 "
        "was expected: 'Unexpected COLO message 1, expected 0' (hint: the peer speaks v11), "
        "COLO_EXIT primary/error; the arbiter keeps the primary.",
        {"dialect": "qemu", "secondary_dialect": "v11"}, "failover",
        events=[("primary", "error", "Unexpected COLO message 1, expected 0"),
                ("primary", "colo-exit", '"reason": "error"')]),
    Scenario(
        "dialect-mismatch-v11-qemu", "§15.6 (v11 side) §9.7",
        "Dialect mismatch: a v11 primary with a qemu secondary, no arbiter.  The secondary "
        "sends 00 00 00 00; the v11 primary reads command 0 (invalid): 'Unexpect colo "
        "command, expect:1, but got cmd:0', then v11's 2 s default failover: the primary "
        "takes over; the qemu secondary sees the socket close and waits (no default failover "
        "in qemu).",
        {"dialect": "v11", "secondary_dialect": "qemu", "arbiter": False}, "failover",
        events=[("primary", "error", "Unexpect colo command, expect:1, but got cmd:0"),
                ("primary", "default-failover", "Primary VM will take over work in default")]),
    Scenario(
        "out-of-range-opcode", "§15.7",
        "opcode=7@checkpoint-request#2 (qemu): the primary's request goes out as id 7, one "
        "past vmstate-loaded(6): the secondary says 'Invalid message 7', COLO_EXIT "
        "secondary/error; no automatic takeover in 7.2: the arbiter fences the secondary "
        "and fails over to the primary.",
        {"faults": ["opcode=7@checkpoint-request#2"]}, "failover",
        events=[("secondary", "error", "Invalid message 7"),
                ("secondary", "colo-exit", '"reason": "error"')]),
    Scenario(
        "out-of-order-message", "§15.8",
        "unexpected=vmstate-size@vmstate-send#2 (qemu): vmstate-size arrives where "
        "vmstate-send was expected: 'Unexpected COLO message 4, expected 3' on the secondary.",
        {"faults": ["unexpected=vmstate-size@vmstate-send#2"]}, "failover",
        events=[("secondary", "error", "Unexpected COLO message 4, expected 3")]),
    Scenario(
        "v11-nonzero-value", "§15.9",
        "value=5@checkpoint-request#2 (v11): a non-zero value in the secondary's idle wait: "
        "\"Got unexpected value 5 for 'checkpoint-request' command\".",
        {"dialect": "v11", "faults": ["value=5@checkpoint-request#2"]}, "failover",
        events=[("secondary", "error", "Got unexpected value 5")]),
    Scenario(
        "dropped-vmstate-loaded", "§15.14 (no timeout, B13)",
        "drop@vmstate-loaded#2 (qemu): the message never arrives, the connection stays up; "
        "COLO has no timeout, the primary waits in WAIT_LOADED until the arbiter's watchdog "
        "fences the secondary and fails over to the primary.",
        {"faults": ["drop@vmstate-loaded#2"]}, "failover",
        events=[("link", "dropped", '"point": "vmstate-loaded"'),
                ("arbiter", "watchdog", "no checkpoint completed")]),
    Scenario(
        "guest-shutdown-qemu", "§9.8 §15.17 (7.2)",
        "The guest powers off on the primary between checkpoints (qemu, no arbiter): no "
        "protocol message; the primary stops and closes the connection; the secondary sees "
        "EOF, COLO_EXIT secondary/error, and waits for a failover that nobody gives.",
        {"arbiter": False}, "error",
        script=[AFTER_CKPT1, ("do", "shutdown")],
        events=[("primary", "vm", '"run": "shutdown"'),
                ("secondary", "colo-exit", '"reason": "error"')]),
    Scenario(
        "guest-shutdown-v11", "§9.8 §15.17 (v11)",
        "The guest powers off on the primary between checkpoints (v11, no arbiter): a final "
        "checkpoint without waiting for the delay, then guest-shutdown (value 0) after "
        "vmstate-loaded; the secondary stops its VM and shuts down too.",
        {"dialect": "v11", "arbiter": False}, "ok",
        script=[AFTER_CKPT1, ("do", "shutdown")],
        events=[("primary", "send", '"msg": "guest-shutdown"'),
                ("secondary", "recv", '"msg": "guest-shutdown"'),
                ("secondary", "vm", '"run": "shutdown"')]),
    Scenario(
        "checkpoint-delay-changed", "§15.5 §4",
        "x-checkpoint-delay changed from 1000 to 400 ms after checkpoint 1 (qemu): an "
        "immediate checkpoint, then the timer re-armed to the new delay.",
        {"checkpoints": 3}, "ok",
        script=[AFTER_CKPT1, ("do", "set_checkpoint_delay", 400)],
        events=[("primary", "parameter", '"value": 400'),
                ("primary", "checkpoint", "x-checkpoint-delay changed")]),
    Scenario(
        "duplicate-lost-heartbeat", "§15.15",
        "x-colo-lost-heartbeat twice on the secondary while it loads checkpoint 2 "
        "(load_ms 500, hybrid): the second is refused with 'COLO failover is already "
        "activated' (state relaunch); after the failover a third gets 'feature disabled'.",
        {"mode": "hybrid", "load_ms": 500}, "failover",
        script=[("until", "secondary", "load", '"n": 2'),
                ("do", "lost_heartbeat", "secondary"), ("do", "lost_heartbeat", "secondary"),
                ("until", "secondary", "failover", '"to": "completed"'),
                ("do", "lost_heartbeat", "secondary")],
        events=[("operator", "qmp-error", "COLO failover is already activated"),
                ("operator", "qmp-error", "is not enabled")]),
]

SCENARIOS += [
    Scenario(
        "compare-mismatch", "§15.3 §4",
        "Hybrid mode with the guest model: every SVM answer differs from the PVM's "
        "(divergence 1.0), so colo-compare asks for a checkpoint at once, long before the "
        "20 s timer; the checkpoint releases the queued PVM packets.",
        {"mode": "hybrid", "guest": "model", "divergence": 1.0, "checkpoint_delay_ms": 20000},
        "ok",
        events=[("primary", "checkpoint", "colo-compare"),
                ("primary", "action", "release-output")]),
    Scenario(
        "stale-packet", "§15.4 §4",
        "Hybrid mode with the guest model: the SVM's answers never reach colo-compare, so "
        "the PVM's packets wait; the stale scan (every 1000 ms) finds one older than "
        "3000 ms and asks for a checkpoint, which releases them.",
        {"mode": "hybrid", "guest": "model", "svm_output_lost": True, "checkpoints": 1,
         "checkpoint_delay_ms": 20000},
        "ok",
        events=[("primary", "checkpoint", "colo-compare")]),
]

BY_NAME = {s.name: s for s in SCENARIOS}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        for s in SCENARIOS:
            print(f"{s.name + SUFFIX:45} {s.covers:28} {s.outcome}")
        return 0
    names = argv or list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        sc = BY_NAME[name]
        ctl = write(sc, HERE / (name + SUFFIX))
        got = ctl.session.outcome()
        bad = [k for k, v in ctl.session.checks().items() if not v]
        flag = "" if got == sc.outcome and not bad else "   <-- UNEXPECTED"
        if flag:
            status = 1
        print(f"{name + SUFFIX:45} {len(ctl.events):4} events  outcome {got}"
              f"{'  broken: ' + ','.join(bad) if bad else ''}{flag}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
