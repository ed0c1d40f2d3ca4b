"""Seeded workloads: determinism and run1's checkpoint shape."""
from __future__ import annotations

import pytest

from protocol.guest.ram import Ram
from protocol.guest.workload import (
    VGA_BLOCK,
    WORKLOADS,
    SplitMix64,
    ToggleWorkload,
    derive,
    make_workload,
)
from protocol.migration.pages import KIND_ZERO

MIB = 1 << 20


def fresh_ram() -> Ram:
    return Ram([("pc.ram", 16 * MIB), (VGA_BLOCK, 16 * MIB)])


def test_splitmix64_known_values_and_determinism():
    # reference values of SplitMix64 seeded with 0
    rng = SplitMix64(0)
    assert rng.next_u64() == 0xE220A8397B1DCDAF
    assert rng.next_u64() == 0x6E789E6AA1B965F4
    a, b = SplitMix64(42), SplitMix64(42)
    assert [a.below(1000) for _ in range(50)] == [b.below(1000) for _ in range(50)]
    assert 0.0 <= SplitMix64(1).random() < 1.0
    assert derive(1, 2, 3).next_u64() == derive(1, 2, 3).next_u64() != derive(1, 3, 2).next_u64()


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_same_seed_same_writes_in_any_chunking(name):
    one, two, other = fresh_ram(), fresh_ram(), fresh_ram()
    w1 = make_workload(name, 5)
    w1.advance(one, 0, 1300)
    w2 = make_workload(name, 5)
    for lo, hi in ((0, 250), (250, 251), (251, 999), (999, 1300)):
        w2.advance(two, lo, hi)
    assert one.digest() == two.digest()
    assert [(r.block, r.offset, r.kind, r.data) for r in one.collect_dirty()] == \
        [(r.block, r.offset, r.kind, r.data) for r in two.collect_dirty()]
    make_workload(name, 6).advance(other, 0, 1300)
    if name != "idle":
        assert other.digest() != one.digest()


def test_rates():
    ram = fresh_ram()
    make_workload("sweep", 1, rate=20).advance(ram, 0, 1000)
    assert ram.dirty_count() == 20
    ram.collect_dirty()
    make_workload("idle", 1).advance(ram, 0, 5000)
    assert ram.dirty_count() == 0
    with pytest.raises(ValueError, match="unknown workload"):
        make_workload("nope", 1)


def _toggle_checkpoints(steps_per_ckpt: list[int]):
    ram = fresh_ram()
    ram.migration_pass()
    work = ToggleWorkload(seed=1)
    t = 0
    out = []
    for k in steps_per_ckpt:
        work.advance(ram, t, t + k * work.step_ms)
        last_step = (t + k * work.step_ms) // work.step_ms
        t += k * work.step_ms
        out.append((k, last_step, ram.collect_dirty()))
    return out


def test_toggle_reproduces_run1_checkpoint_shape():
    for k, last_step, recs in _toggle_checkpoints([10, 9, 9, 10, 9, 9, 10, 10, 9, 9, 10]):
        assert len(recs) == 1 + 2 + 8 + 2 * k + 8
        assert recs[0].block == VGA_BLOCK and recs[0].offset == 0
        assert all(r.block == "pc.ram" for r in recs[1:])
        offsets = [r.offset for r in recs[1:]]
        assert offsets == sorted(offsets)                  # ascending scan in pc.ram
        zero = [r for r in recs if r.kind == KIND_ZERO]
        if ToggleWorkload.zero_phase(last_step):
            assert len(zero) == 8
            assert [r.offset for r in zero] == [0xC00000 + i * 4096 for i in range(8)]
        else:
            assert zero == []
        fixed = {0x100000, 0x2FF000} | {0x400000 + i * 4096 for i in range(8)}
        assert fixed <= set(offsets)


def test_toggle_vga_text_and_sweep_addresses():
    ram = fresh_ram()
    ToggleWorkload(seed=3).advance(ram, 0, 300)            # steps 1, 2, 3
    assert ram.read(VGA_BLOCK, 0, 36)[::2] == b"COLO step 00000003"
    sweep = sorted(r.offset for r in ram.collect_dirty()
                   if 0x800000 <= r.offset < 0x900000)
    assert sweep == [0x800000 + 0x1000 * n for n in range(2, 8)]
