"""Scenario presets the simulator reproduces (keys 1-9, 0, !, @, #); `section` is where
docs/protocol.md explains what each one shows (its §11 lists them)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    section: str
    what: str
    changes: dict = field(default_factory=dict)
    #: what the preset promises, checked by the tests: event matchers (colo_tui.commands.lessons
    #: .matches) that must happen, and the outcome the session must end with
    shows: tuple = ()
    outcome: str | None = None


_BASE = {"dialect": "qemu", "mode": "periodic", "load_ms": 0.0, "faults": [],   # keeps guest
         "divergence": 0.0, "svm_output_lost": False}
_OPTIONAL = {"secondary_dialect": None}      # only where this SimConfig knows it

PRESETS = (
    Preset("1", "happy path", "docs/protocol.md §3",
           "startup, checkpoint-ready, then periodic checkpoints", {},
           ("send:checkpoint-ready", "primary/checkpoint:commit"), "ok"),
    Preset("2", "lost heartbeat on the secondary", "docs/protocol.md §7.4",
           "x-colo-lost-heartbeat given to the SVM while the PVM lives: split brain",
           {"faults": ["heartbeat-secondary@checkpoint-request#1"]},
           ("secondary/failover:completed",), "split-brain"),
    Preset("3", "primary dies mid-RAM", "docs/protocol.md §6, §7.3",
           "kill-primary while the RAM streams: the cache is discarded, SVM takes over",
           {"faults": ["kill-primary@ram#1"]}, ("secondary/failover:completed",), "failover"),
    Preset("4", "relaunch", "docs/protocol.md §7.3",
           "the primary dies while the SVM loads (3 s, longer than the manager's 1 s): "
           "the failover meets the load, active→relaunch→…→completed",
           {"load_ms": 3000.0, "faults": ["kill-primary@load#1"]},
           ("secondary/failover:relaunch", "secondary/failover:completed"), "failover"),
    Preset("5", "secondary dies", "docs/protocol.md §7.2",
           "the SVM is killed mid-checkpoint: the PVM fails over and keeps serving",
           {"faults": ["kill-secondary@vmstate-send#1"]},
           ("primary/colo-exit", "primary/failover:completed"), "failover"),
    Preset("6", "out-of-order message", "docs/protocol.md §2, §8",
           "vmstate-size arrives instead of vmstate-send: 'Unexpected COLO message'",
           {"faults": ["unexpected=vmstate-size@vmstate-send#1"]}, ("secondary/error",)),
    Preset("7", "corrupted opcode", "docs/protocol.md §2, §8",
           "the checkpoint-request's opcode is corrupted: invalid message, COLO exits",
           {"faults": ["corrupt@checkpoint-request#1"]}, ("error",)),
    Preset("8", "truncated device blob", "docs/protocol.md §3, §8",
           "half the device state, then the connection closes",
           {"faults": ["truncate@device-state#1"]}, ("secondary/error",)),
    Preset("9", "stalled secondary", "docs/protocol.md §7.4",
           "the SVM stops answering (SIGSTOP): no timeout, the arbiter fences it",
           {"faults": ["stall-secondary@checkpoint-reply#1"]},
           ("primary/failover:completed",), "failover"),
    Preset("0", "dialect mismatch", "docs/protocol.md §2",
           "a qemu primary and a v11 secondary: the very first message already breaks",
           {"secondary_dialect": "v11"}, ("error",)),
    Preset("!", "hybrid: colo-compare mismatch", "docs/protocol.md §4, §5",
           "both VMs run; the SVM answers differently now and then: each mismatch asks for "
           "a checkpoint at once",
           {"mode": "hybrid", "guest": "model", "divergence": 0.3},
           ("checkpoint-requested:colo-compare",), "ok"),
    Preset("@", "hybrid: a stale packet", "docs/protocol.md §4, §5",
           "the SVM's answers never reach colo-compare: a PVM packet waits 3 s, then the "
           "stale scan asks for a checkpoint",
           {"mode": "hybrid", "guest": "model", "svm_output_lost": True},
           ("checkpoint-requested:colo-compare",), "ok"),
    Preset("#", "failover then re-protect", "docs/protocol.md §7.5",
           "the primary dies at checkpoint 2 and the secondary takes over; then a new "
           "secondary starts, the survivor migrates to it and COLO resumes",
           {"faults": ["kill-primary@checkpoint-request#2", "reprotect@failover#1"]},
           ("secondary/failover:completed", "reprotect", "secondary/action:load-initial",
            "primary/checkpoint:commit"), "ok"),
)

BY_KEY = {p.key: p for p in PRESETS}


def config_changes(preset: Preset, seed: int) -> dict:
    from protocol.sim.config import SimConfig
    known = SimConfig.__dataclass_fields__
    base = {**_BASE, **{k: v for k, v in _OPTIONAL.items() if k in known}}
    return {**base, "seed": seed, **preset.changes}
