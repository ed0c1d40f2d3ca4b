"""What a simulated session is made of: everything a recording's header holds."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from protocol.errors import UsageError


@dataclass
class SimConfig:
    dialect: str = "qemu"
    secondary_dialect: str | None = None   # a different dialect on the secondary: mismatch
    mode: str = "periodic"
    seed: int = 1
    checkpoints: int = 3
    faults: list[str] = field(default_factory=list)
    checkpoint_delay_ms: int | None = None
    load_ms: float = 0.0
    save_ms: float = 0.0          # primary: device-state save time after the RAM part (qemu)
    jitter_ms: float = 0.0        # every timer fires up to this much late (seeded)
    liveness_checkpoints: int = 0  # after the last fault: this many more must commit
    arbiter: bool = True          # the external manager COLO assumes (fences, then fails over)
    arbiter_ms: float = 1000.0
    faithful: bool = True         # reproduce QEMU 7.2's quirks
    guest: str = "null"           # "null" (control protocol only) or "model"
    ram_mib: int = 16
    workload: str = "toggle"
    rate: float | None = None
    divergence: float = 0.0
    client_every_ms: float = 100.0   # guest model: a client request this often
    svm_output_lost: bool = False    # guest model: the SVM's answers never reach compare
    xbzrle: bool = False
    latency_ms: float = 0.05
    bytes_per_ms: float = 1.0e6
    stop_on_violation: bool = True
    max_steps: int = 2_000_000
    max_time_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SimConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


#: QEMU's x-checkpoint-delay is a uint32 (ms)
MAX_CHECKPOINT_DELAY_MS = 0xFFFFFFFF
#: the guest model runs every workload step between two checkpoints (one per 100 ms
#: or faster): beyond an hour of guest time a checkpoint would cost minutes of CPU
MODEL_MAX_CHECKPOINT_DELAY_MS = 3_600_000


def check_checkpoint_delay(delay_ms, guest: str) -> None:
    """UsageError unless `delay_ms` is a checkpoint delay this simulation can run."""
    if delay_ms is None:
        return
    if not 0 <= delay_ms <= MAX_CHECKPOINT_DELAY_MS:
        raise UsageError(f"checkpoint delay {delay_ms} ms: x-checkpoint-delay takes 0 to "
                         f"{MAX_CHECKPOINT_DELAY_MS} ms (a uint32 in QEMU)")
    if guest == "model" and delay_ms > MODEL_MAX_CHECKPOINT_DELAY_MS:
        raise UsageError(f"checkpoint delay {delay_ms} ms: the guest model simulates every "
                         "step of its workload between checkpoints, so it takes at most "
                         f"{MODEL_MAX_CHECKPOINT_DELAY_MS} ms (an hour); the null guest "
                         "takes any uint32")
