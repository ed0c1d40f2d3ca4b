"""Seeded guest workloads: which pages the guest writes, and when.

A workload runs in *steps* on the guest's own virtual clock (`step_ms` apart,
step k happens at guest time k * step_ms).  What step k writes depends only on
(seed, k), so `advance(ram, 0, 1000)` writes exactly what
`advance(ram, 0, 400)` then `advance(ram, 400, 1000)` write, and a primary and
a secondary that run the same guest time write the same pages.

Workloads:
  toggle   the run1 capture's guest (qemu-colo/README.md "The guest")
  hot      a fixed, seed-chosen hot set, rewritten round-robin
  sweep    walks through RAM page by page
  uniform  random pages anywhere in the main block
  idle     writes nothing

`rate` is pages per virtual second (toggle: steps per virtual second).
Sans-IO: the randomness is a pure-Python SplitMix64 seeded by an int.
"""
from __future__ import annotations

from protocol.guest.ram import PAGE_SIZE, Ram

MASK64 = (1 << 64) - 1


class SplitMix64:
    """A tiny deterministic PRNG (Steele, Lea, Flood 2014)."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """Uniform int in [0, n)."""
        if n <= 0:
            raise ValueError("below() needs n > 0")
        return self.next_u64() % n

    def random(self) -> float:
        """Uniform float in [0, 1)."""
        return (self.next_u64() >> 11) / float(1 << 53)

    def randbytes(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += self.next_u64().to_bytes(8, "little")
        return bytes(out[:n])


def derive(seed: int, *parts: int) -> SplitMix64:
    """A PRNG for a sub-stream: mixes `parts` into `seed` (order matters)."""
    rng = SplitMix64(seed)
    state = rng.next_u64()
    for part in parts:
        state = SplitMix64(state ^ (part & MASK64)).next_u64()
    return SplitMix64(state)


def pattern_page(tag: int) -> bytes:
    """A non-zero 4 KiB page derived from `tag` (an 8-byte word repeated)."""
    word = (SplitMix64(tag).next_u64() | 1).to_bytes(8, "little")
    return word * (PAGE_SIZE // 8)


class Workload:
    name = "idle"
    step_ms = 100
    default_rate = 0.0

    def __init__(self, seed: int, block: str = "pc.ram", rate: float | None = None) -> None:
        self.seed = seed
        self.block = block
        self.rate = self.default_rate if rate is None else float(rate)
        if self.rate < 0:
            raise ValueError(f"workload rate must be >= 0, got {rate}")

    def steps_between(self, from_ms: int, to_ms: int) -> range:
        """Step numbers whose time falls in (from_ms, to_ms]."""
        if to_ms < from_ms:
            raise ValueError(f"time runs backwards: {from_ms} -> {to_ms}")
        return range(from_ms // self.step_ms + 1, to_ms // self.step_ms + 1)

    def pages_in_step(self, step: int) -> int:
        """How many page writes step `step` makes: rate spread evenly over steps."""
        per_step = self.rate * self.step_ms / 1000.0
        return int(step * per_step) - int((step - 1) * per_step)

    def advance(self, ram: Ram, from_ms: int, to_ms: int) -> list[int]:
        """Perform the writes of guest time (from_ms, to_ms]; returns the steps run."""
        steps = list(self.steps_between(from_ms, to_ms))
        for step in steps:
            self.step(ram, step)
        return steps

    def step(self, ram: Ram, step: int) -> None:
        return None

    # a random write into one page: full pattern, zero page, or a small patch
    def _write_random(self, ram: Ram, rng: SplitMix64, page_index: int) -> None:
        roll = rng.below(16)
        if roll == 0:
            ram.fill_page(self.block, page_index, 0)
        elif roll < 6:
            ram.write(self.block, page_index * PAGE_SIZE, pattern_page(rng.next_u64()))
        else:
            at = rng.below(PAGE_SIZE // 64) * 64
            ram.write(self.block, page_index * PAGE_SIZE + at, rng.randbytes(64))


class IdleWorkload(Workload):
    name = "idle"


class HotWorkload(Workload):
    name = "hot"
    default_rate = 80.0
    hot_pages = 64

    def _hot_set(self, ram: Ram) -> list[int]:
        npages = ram.block(self.block).npages
        cached = getattr(self, "_hot", None)
        if cached is not None and cached[0] == npages:
            return cached[1]
        rng = derive(self.seed, 0x407)
        count = min(self.hot_pages, npages)
        chosen: list[int] = []
        seen: set[int] = set()
        while len(chosen) < count:
            index = rng.below(npages)
            if index not in seen:
                seen.add(index)
                chosen.append(index)
        self._hot = (npages, chosen)
        return chosen

    def step(self, ram: Ram, step: int) -> None:
        hot = self._hot_set(ram)
        rng = derive(self.seed, step)
        for _ in range(self.pages_in_step(step)):
            self._write_random(ram, rng, hot[rng.below(len(hot))])


class SweepWorkload(Workload):
    name = "sweep"
    default_rate = 20.0

    def step(self, ram: Ram, step: int) -> None:
        npages = ram.block(self.block).npages
        per_step = self.rate * self.step_ms / 1000.0
        start = int((step - 1) * per_step)
        rng = derive(self.seed, step)
        for k in range(self.pages_in_step(step)):
            page_index = (start + k) % npages
            ram.write(self.block, page_index * PAGE_SIZE,
                      pattern_page(rng.next_u64() ^ page_index))


class UniformWorkload(Workload):
    name = "uniform"
    default_rate = 100.0

    def step(self, ram: Ram, step: int) -> None:
        npages = ram.block(self.block).npages
        rng = derive(self.seed, step)
        for _ in range(self.pages_in_step(step)):
            self._write_random(ram, rng, rng.below(npages))


VGA_BLOCK = "0000:00:02.0/vga.vram"


class ToggleWorkload(Workload):
    """run1's guest: one step per 100 ms of guest time, writing

    * 8 HOT pages (pc.ram 0x400000-0x407000), a pattern, every step;
    * 2 SWEEP pages, pc.ram 0x800000 + 0x1000 * ((2*step + i) mod 256);
    * 8 ZERO-group pages (pc.ram 0xC00000-0xC07000), zeros while (step // 16)
      is even, a pattern while it is odd;
    * vga.vram page 0: "COLO step XXXXXXXX" as VGA text (char, attribute);
    * its own data (tick counter at 0x100000) and stack (0x2ff000).
    A checkpoint covering k steps therefore carries 1 + 2 + 8 + 2k + 8 pages.
    `rate` is steps per second (default 10).
    """

    name = "toggle"
    default_rate = 10.0
    HOT = 0x400000
    SWEEP = 0x800000
    ZERO = 0xC00000
    DATA = 0x100000
    STACK = 0x2FF000
    needs_bytes = ZERO + 8 * PAGE_SIZE

    def __init__(self, seed: int, block: str = "pc.ram", rate: float | None = None) -> None:
        super().__init__(seed, block, rate)
        if self.rate <= 0:
            raise ValueError("the toggle workload needs a positive step rate")
        self.step_ms = max(1, round(1000.0 / self.rate))

    @staticmethod
    def zero_phase(step: int) -> bool:
        return (step // 16) % 2 == 0

    def step(self, ram: Ram, step: int) -> None:
        if ram.block(self.block).size_bytes < self.needs_bytes:
            raise ValueError(f"toggle workload needs {self.block} >= {self.needs_bytes:#x} bytes")
        text = f"COLO step {step:08x}".encode()
        vga = bytes(b for ch in text for b in (ch, 0x07))
        if VGA_BLOCK in ram.blocks:
            ram.write(VGA_BLOCK, 0, vga)
        ticks = step * 10
        ram.write(self.block, self.DATA, ticks.to_bytes(4, "little") + step.to_bytes(4, "little"))
        ram.write(self.block, self.STACK + PAGE_SIZE - 16,
                  (0x101000 + step % 7).to_bytes(8, "little") + ticks.to_bytes(8, "little"))
        for i in range(8):
            ram.write(self.block, self.HOT + i * PAGE_SIZE,
                      pattern_page((self.seed << 20) ^ (step << 4) ^ i))
        for i in range(2):
            offset = self.SWEEP + PAGE_SIZE * ((2 * step + i) % 256)
            ram.write(self.block, offset, pattern_page((self.seed << 24) ^ (step << 1) ^ i ^ 0x5EED))
        zero = self.zero_phase(step)
        for i in range(8):
            if zero:
                ram.fill_page(self.block, (self.ZERO + i * PAGE_SIZE) // PAGE_SIZE, 0)
            else:
                ram.write(self.block, self.ZERO + i * PAGE_SIZE,
                          pattern_page((self.seed << 28) ^ (step << 3) ^ i ^ 0x2E80))


WORKLOADS: dict[str, type[Workload]] = {
    cls.name: cls
    for cls in (IdleWorkload, HotWorkload, SweepWorkload, UniformWorkload, ToggleWorkload)
}


def make_workload(name: str, seed: int, block: str = "pc.ram",
                  rate: float | None = None) -> Workload:
    try:
        cls = WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; known: {sorted(WORKLOADS)}") from None
    return cls(seed, block, rate)
