"""Periodic (Remus) against hybrid (COLO): one seeded workload, both modes, side by side.

The trade-off of the COLO paper: periodic mode holds every output packet until
the next checkpoint (latency of up to a whole epoch) but checkpoints only on the
timer; hybrid mode releases an output packet as soon as the SVM produced the
same bytes, and checkpoints when they diverge.
"""
from __future__ import annotations

from protocol.core.events import EventKind as K
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


class _Tally:
    """What `measure` reports, counted as the events pass (no event is kept: a
    10,000-checkpoint comparison holds counters, not its whole event stream)."""

    def __init__(self, blob_has_ram: bool) -> None:
        self.blob_has_ram = blob_has_ram
        self.pages = 0
        self.state_bytes = 0
        self.reasons: dict[int, str] = {}      # checkpoint -> why the primary began it

    def __call__(self, e) -> None:
        kind = e.kind
        if kind is K.SEND_RAM:
            self.pages += e.pages or 0
            self.state_bytes += e.bytes
        elif kind is K.SEND_DEVICE_STATE:
            self.state_bytes += e.bytes
        elif kind is K.ACTION and e.name == "cache-pages" and self.blob_has_ram:
            self.pages += e.pages or 0
        elif kind is K.CHECKPOINT and e.side == "primary" and e.phase == "begin":
            self.reasons[e.n] = e.reason

    def triggers(self, committed: int) -> str:
        """Why each committed checkpoint began (one still running at the end is not
        counted: the checkpoints row does not count it either)."""
        counts: dict[str, int] = {}
        for n, reason in self.reasons.items():
            if n <= committed:
                counts[reason] = counts.get(reason, 0) + 1
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


def measure(cfg: SimConfig, duration_ms: float) -> dict:
    sim = Simulation(cfg, keep_events=False)
    tally = _Tally(blob_has_ram=not sim.dialect.ram_outside_blob)
    sim.on_event = tally
    sim.run_until(lambda s: s.now >= duration_ms, max_steps=2_000_000)
    log = sim.guests["primary"].client_log
    latency = [r.t_ms - r.packet.created_ms for r in log.released]
    committed = sim.eps["primary"].checkpoint
    return {"mode": cfg.mode, "checkpoints": committed,
            "triggers": tally.triggers(committed),
            "pages_sent": tally.pages, "state_bytes_sent": tally.state_bytes,
            "packets_released": len(log.released),
            "latency_mean_ms": round(sum(latency) / len(latency), 2) if latency else 0.0,
            "latency_p99_ms": round(_percentile(latency, 0.99), 2),
            "invariants_hold": all(sim.invariants.ok.values())}


def compare_modes(*, dialect: str = "qemu", seed: int = 1, checkpoints: int = 10,
                  workload: str = "toggle", divergence: float = 0.02,
                  delay_ms: int = 1000, client_every_ms: float = 50.0) -> dict:
    duration = checkpoints * delay_ms + 1
    out = {}
    for mode in ("periodic", "hybrid"):
        cfg = SimConfig(dialect=dialect, mode=mode, seed=seed, checkpoints=10**9,
                        checkpoint_delay_ms=delay_ms, guest="model", workload=workload,
                        divergence=divergence, client_every_ms=client_every_ms)
        out[mode] = measure(cfg, duration)
    out["virtual_ms"] = duration
    return out
