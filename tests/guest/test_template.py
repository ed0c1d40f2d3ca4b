"""Guest templates (protocol.guest.template, protocol.record.template_source): the file
format, the model primary in a real guest's shape, and the mutations fuzzing uses."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.guest.model import Guest
from protocol.guest.template import (
    BLOB_MUTATIONS,
    MUTATIONS,
    GuestTemplate,
    TemplateError,
    TemplateGuest,
)
from protocol.migration.stream import (
    InitialReader,
    RamPartReader,
    StreamError,
    decode_device_blob,
    encode_ram_part,
)
from protocol.record.template_source import (
    load_template,
    machine_args,
    save_template,
    template_from_capture,
)

RUN1 = Path(os.environ.get("COLO_QEMU_RUN1", "/work/shared/qemu-colo/run1"))


def _synthetic() -> GuestTemplate:
    g = Guest("primary", seed=3, ram_mib=16)
    initial = g.initial_stream()
    blobs = [g.save_devices() for _ in range(2)]
    return GuestTemplate(machine="pc-i440fx-7.2", blocks=g.ram.layout(), ram_section_id=2,
                         initial=initial, blobs=blobs, qemu_args=["-m", "16M"])


def test_round_trip_keeps_every_part():
    tpl = _synthetic()
    back = GuestTemplate.from_bytes(tpl.to_bytes())
    assert back == tpl


@pytest.mark.parametrize("cut", [0, 5, 11, 40, -1])
def test_truncated_or_foreign_files_are_clear_errors(cut):
    data = _synthetic().to_bytes()
    with pytest.raises(TemplateError):
        GuestTemplate.from_bytes(data[:cut])


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 2000))
def test_any_garbage_after_the_magic_is_a_template_error(junk, at):
    data = bytearray(_synthetic().to_bytes())
    at = min(at, len(data))
    data[8 + at % 64: 8 + at % 64 + len(junk)] = junk
    try:
        GuestTemplate.from_bytes(bytes(data))
    except TemplateError:
        pass


def test_template_guest_sends_the_template_then_model_pages_and_template_blobs():
    tpl = _synthetic()
    g = TemplateGuest(tpl, seed=5)
    assert g.initial_stream() == tpl.initial
    assert g.ram_context.blocks == dict(tpl.blocks)
    g.start()
    g.advance(1000)
    recs = g.collect_dirty_pages()
    assert len(recs) > 0
    part = encode_ram_part(recs, g.ram_context)
    rd = InitialReader()
    rd.feed(tpl.initial)
    rr = RamPartReader(rd.ctx)
    rr.feed(part)
    assert rr.done and len(rr.records) == len(recs)
    assert [g.save_devices() for _ in range(3)] == [tpl.blobs[0], tpl.blobs[1], tpl.blobs[0]]


@pytest.mark.parametrize("name", sorted(BLOB_MUTATIONS))
def test_blob_mutations_hit_only_the_chosen_checkpoint(name):
    tpl = _synthetic()
    g = TemplateGuest(tpl, mutate=name, mutate_at=2)
    first, second, third = (g.save_devices() for _ in range(3))
    assert first == tpl.blobs[0] and third == tpl.blobs[0]
    assert second != tpl.blobs[1]
    if name in ("bad-version", "unknown-idstr"):
        secs = decode_device_blob(second)
        assert (secs[2].version_id == 0xFFFF) if name == "bad-version" \
            else set(secs[1].idstr) == {"Z"}
    else:
        with pytest.raises(StreamError):
            decode_device_blob(second)


@pytest.mark.parametrize("name", ["page-past-block", "unknown-block", "xbzrle-garbage",
                                  "xbzrle-full-garbage"])
def test_ram_mutations_make_a_part_a_correct_reader_refuses_or_flags(name):
    tpl = _synthetic()
    g = TemplateGuest(tpl, mutate=name)
    g.initial_stream()
    rd = InitialReader()
    rd.feed(tpl.initial)
    g.start()
    g.advance(500)
    part = encode_ram_part(g.collect_dirty_pages(), g.ram_context)
    rr = RamPartReader(rd.ctx)
    if name.startswith("xbzrle"):
        rr.feed(part)
        assert any(r.kind == "xbzrle" for r in rr.records)
    else:
        with pytest.raises(StreamError):
            rr.feed(part)


def test_unknown_mutation_is_refused():
    with pytest.raises(ValueError, match="unknown mutation"):
        TemplateGuest(_synthetic(), mutate="nope")
    assert "cut-blob" in MUTATIONS and "xbzrle-garbage" in MUTATIONS


def test_machine_args_keep_devices_and_drop_run_files():
    args, kernel = machine_args(
        "LD_PRELOAD=/x/shim.so qemu-system-x86_64 -name s,debug-threads=on -machine pc "
        "-m 128M -kernel /g/guest.elf -serial file:/tmp/s.serial -qmp unix:/q,server=on "
        "-D /t.log -trace events=/e -incoming defer")
    assert args == ["-machine", "pc", "-m", "128M", "-serial", "null"]
    assert kernel == "/g/guest.elf"


def test_save_and_load(tmp_path):
    p = save_template(_synthetic(), tmp_path / "a" / "t.colotpl")
    assert load_template(p) == _synthetic()
    with pytest.raises(TemplateError, match="no guest template"):
        load_template(tmp_path / "missing.colotpl")


@pytest.mark.skipif(not (RUN1 / "primary_to_secondary.bin").exists(),
                    reason=f"the run1 capture is not at {RUN1} (set COLO_QEMU_RUN1)")
def test_template_from_the_real_run1_capture():
    tpl = template_from_capture(RUN1)
    assert tpl.machine == "pc-i440fx-7.2"
    assert tpl.blocks[0] == ("pc.ram", 128 << 20) and len(tpl.blocks) == 8
    assert len(tpl.initial) == 1313269 and len(tpl.blobs) == 20
    assert all(len(b) == 14367 for b in tpl.blobs)
    assert tpl.qemu_args[:2] == ["-machine", "pc,accel=tcg"] and "-serial" in tpl.qemu_args
    g = TemplateGuest(tpl)
    g.initial_stream()
    assert g.ram_context.ram_section_id == 2 and g.ram_context.current_block == "pc.ram"
