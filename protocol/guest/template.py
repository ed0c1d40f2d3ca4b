"""A guest template: what a real QEMU 7.2 guest looks like on the COLO wire, so that
the testbed's model primary can feed a real QEMU secondary (issue 14, item 6).

A real secondary refuses any initial migration whose RAM block list differs from
its own machine's ("Size mismatch: pc.ram: 0x1000 != 0x8000000"), and any device
blob whose sections it does not know.  A template, taken from a real capture of
the same machine configuration, holds:

* ``blocks``: the RAM block list (idstr, used_length) in stream order;
* ``initial``: the real initial migration, QEVM … VMDESCRIPTION, verbatim (its
  device sections and the boot image in RAM: the guest the secondary will run);
* ``blobs``: every checkpoint's device blob (``qemu_save_device_state``), in order;
* ``qemu_args``: the machine options the secondary must be started with.

`TemplateGuest` is the model primary in that shape: the initial migration is the
template's, every checkpoint's RAM pages are the model workload's (in the
template's blocks), and its device blob is the template's next one (cycling).
`MUTATIONS` malform a checkpoint's RAM part or device blob for fuzzing.

File format (sans-IO here; reading and writing files is the caller's):
``COLOTPL1`` be32 JSON length, the JSON header, then the payload the header's
``[offset, length]`` pairs point into.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

from protocol.guest.model import Guest
from protocol.migration.pages import PageBatch, PageRecord

MAGIC = b"COLOTPL1"
FORMAT_VERSION = 1
_B32 = struct.Struct(">I")


class TemplateError(ValueError):
    """Not a template, or a template this version cannot use (one-line message)."""


@dataclass
class GuestTemplate:
    machine: str
    blocks: list[tuple[str, int]]
    ram_section_id: int
    initial: bytes
    blobs: list[bytes]
    qemu_args: list[str] = field(default_factory=list)
    capabilities: dict[str, bool] = field(default_factory=dict)
    source: str = ""

    def summary(self) -> dict:
        return {"machine": self.machine, "blocks": [list(b) for b in self.blocks],
                "ram_section_id": self.ram_section_id, "initial_bytes": len(self.initial),
                "blobs": len(self.blobs), "blob_bytes": [len(b) for b in self.blobs[:3]],
                "qemu_args": self.qemu_args, "capabilities": self.capabilities,
                "source": self.source}

    def to_bytes(self) -> bytes:
        payload = bytearray()
        spans = []
        for part in [self.initial, *self.blobs]:
            spans.append([len(payload), len(part)])
            payload += part
        head = json.dumps({
            "format": "colo-guest-template", "version": FORMAT_VERSION,
            "machine": self.machine, "blocks": [list(b) for b in self.blocks],
            "ram_section_id": self.ram_section_id, "initial": spans[0], "blobs": spans[1:],
            "qemu_args": self.qemu_args, "capabilities": self.capabilities,
            "source": self.source}).encode()
        return MAGIC + _B32.pack(len(head)) + head + bytes(payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> GuestTemplate:
        if data[:8] != MAGIC:
            raise TemplateError(f"not a guest template (no {MAGIC.decode()} magic; found "
                                f"{data[:8]!r}): make one with `colo template FROM-CAPTURE`")
        if len(data) < 12:
            raise TemplateError("truncated guest template (no header length)")
        n = _B32.unpack_from(data, 8)[0]
        try:
            head = json.loads(data[12:12 + n])
        except ValueError as exc:
            raise TemplateError(f"guest template header is not JSON ({exc})") from None
        if not isinstance(head, dict) or head.get("format") != "colo-guest-template":
            raise TemplateError("guest template header has no format colo-guest-template")
        if head.get("version") != FORMAT_VERSION:
            raise TemplateError(f"guest template version {head.get('version')!r}; this "
                                f"testbed reads version {FORMAT_VERSION}")
        payload = memoryview(data)[12 + n:]

        def part(span) -> bytes:
            off, ln = span
            if not (isinstance(off, int) and isinstance(ln, int)) or off < 0 or ln < 0 \
                    or off + ln > len(payload):
                raise TemplateError(f"guest template part {span} lies outside its "
                                    f"{len(payload)}-byte payload (truncated file?)")
            return bytes(payload[off:off + ln])
        try:
            tpl = cls(machine=str(head["machine"]),
                      blocks=[(str(b), int(s)) for b, s in head["blocks"]],
                      ram_section_id=int(head["ram_section_id"]),
                      initial=part(head["initial"]),
                      blobs=[part(s) for s in head["blobs"]],
                      qemu_args=[str(a) for a in head.get("qemu_args", [])],
                      capabilities={str(k): bool(v) for k, v in
                                    head.get("capabilities", {}).items()},
                      source=str(head.get("source", "")))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, TemplateError):
                raise
            raise TemplateError(f"guest template header lacks or garbles {exc}") from None
        if not tpl.blobs:
            raise TemplateError("guest template has no checkpoint device blob")
        return tpl


# -- mutations of one checkpoint's pieces (fuzzing a real secondary) ------------------
def _blob_sections(blob: bytes) -> list[int]:
    """Offsets of the blob's SECTION_FULL headers (04 <be32 sid> <u8 len> idstr
    <be32 instance> <be32 version>), checked to start with 04."""
    from protocol.migration.stream import decode_device_blob
    offs = [d.offset - 14 - len(d.idstr.encode("latin-1")) for d in decode_device_blob(blob)]
    if len(offs) < 3 or any(blob[o] != 0x04 for o in offs):
        raise TemplateError("the template's device blob has no 3 sections to malform")
    return offs


def _bad_section_id(blob: bytes) -> bytes:
    out = bytearray(blob)
    at = _blob_sections(blob)[1]           # the second section (the first is the timer)
    out[at + 1:at + 5] = (0x7FFF).to_bytes(4, "big")
    return bytes(out)


def _bad_footer_id(blob: bytes) -> bytes:
    offs = _blob_sections(blob)
    out = bytearray(blob)
    foot = offs[2] - 5                     # the footer of section 1: 7e <be32 sid>
    out[foot + 1:foot + 5] = (0x7FFE).to_bytes(4, "big")
    return bytes(out)


def _bad_version(blob: bytes) -> bytes:
    out = bytearray(blob)
    at = _blob_sections(blob)[2]
    ln = out[at + 5]
    out[at + 6 + ln + 4:at + 6 + ln + 8] = (0xFFFF).to_bytes(4, "big")
    return bytes(out)


def _unknown_idstr(blob: bytes) -> bytes:
    out = bytearray(blob)
    at = _blob_sections(blob)[1]
    ln = out[at + 5]
    out[at + 6:at + 6 + ln] = b"Z" * ln
    return bytes(out)


def _cut_blob(blob: bytes) -> bytes:
    return blob[:len(blob) // 2]


def _no_eof(blob: bytes) -> bytes:
    return blob[:-1]


def _bad_section_type(blob: bytes) -> bytes:
    out = bytearray(blob)
    out[_blob_sections(blob)[1]] = 0x09
    return bytes(out)


#: name -> (piece, what it does, function of the piece's bytes or of the records)
BLOB_MUTATIONS = {
    "bad-section-id": (_bad_section_id, "device blob: section 2's id is 0x7fff (unknown)"),
    "bad-footer-id": (_bad_footer_id, "device blob: section 2's footer names id 0x7ffe"),
    "bad-version": (_bad_version, "device blob: section 3's version_id is 0xffff"),
    "unknown-idstr": (_unknown_idstr, "device blob: section 2's idstr is ZZZ…"),
    "bad-section-type": (_bad_section_type, "device blob: section 2 has type 0x09"),
    "cut-blob": (_cut_blob, "device blob: the first half only (vmstate-size says so)"),
    "no-eof": (_no_eof, "device blob: the closing QEMU_VM_EOF is missing"),
}
RAM_MUTATIONS = {
    "page-past-block": "RAM part: a page at the block's used_length (one page past it)",
    "unknown-block": "RAM part: a page in a block named 'nope'",
    "xbzrle-full-garbage": "RAM part: an XBZRLE page of 4096 bytes 0xff (runs past the page)",
    "xbzrle-garbage": "RAM part: an XBZRLE page of 16 bytes that decode past the page",
    "xbzrle-zero-len": "RAM part: an XBZRLE page with encoded length 0",
}
MUTATIONS = {**{k: v[1] for k, v in BLOB_MUTATIONS.items()}, **RAM_MUTATIONS}


class TemplateGuest(Guest):
    """The model primary in a real guest's shape (see the module doc).

    ``mutate``: one of `MUTATIONS`, applied at checkpoint ``mutate_at`` (1-based)."""

    def __init__(self, template: GuestTemplate, *, seed: int = 1, workload: str = "toggle",
                 mode: str = "periodic", mutate: str | None = None, mutate_at: int = 1) -> None:
        if mutate is not None and mutate not in MUTATIONS:
            raise ValueError(f"unknown mutation {mutate!r}; one of {', '.join(MUTATIONS)}")
        super().__init__("primary", seed, blocks=list(template.blocks), workload=workload,
                         mode=mode, dialect="qemu")
        self.template = template
        self.mutate = mutate
        self.mutate_at = mutate_at
        self.blobs_sent = 0
        self.parts_sent = 0

    def initial_stream(self) -> bytes:
        """The template's real initial migration; `ram_context` as it leaves both sides."""
        from protocol.migration.stream import InitialReader, StreamError
        rd = InitialReader()
        try:
            rd.feed(self.template.initial)
        except StreamError as exc:
            raise TemplateError(f"the template's initial migration does not decode: "
                                f"{exc}") from None
        if not rd.done:
            raise TemplateError("the template's initial migration is truncated")
        self.ram_context = rd.ctx
        self.ram.migration_pass()
        return self.template.initial

    def collect_dirty_pages(self) -> list[PageRecord] | PageBatch:
        recs = super().collect_dirty_pages()
        self.parts_sent += 1
        if self.mutate in RAM_MUTATIONS and self.parts_sent == self.mutate_at:
            return [*recs, _ram_mutation(self.mutate, self.template, self.ram_context)]
        return recs

    def save_devices(self) -> bytes:
        blobs = self.template.blobs
        blob = blobs[self.blobs_sent % len(blobs)]
        self.blobs_sent += 1
        if self.mutate in BLOB_MUTATIONS and self.blobs_sent == self.mutate_at:
            blob = BLOB_MUTATIONS[self.mutate][0](blob)
        return blob


def _ram_mutation(name: str, tpl: GuestTemplate, ctx) -> PageRecord:
    """The malformed record; the primary's own RamContext is widened so that its
    encoder (which refuses such records) writes it."""
    from protocol.migration.pages import KIND_PAGE, KIND_XBZRLE
    block, used = tpl.blocks[0]
    page = bytes(4096)
    if name == "page-past-block":
        ctx.blocks[block] = used + 4096
        return PageRecord(block, used, KIND_PAGE, page)
    if name == "unknown-block":
        ctx.blocks["nope"] = 4096
        return PageRecord("nope", 0, KIND_PAGE, page)
    if name == "xbzrle-full-garbage":
        return PageRecord(block, 0x400000, KIND_XBZRLE, b"\xff" * 4096)
    if name == "xbzrle-garbage":
        # a zero run of 0xffff (ULEB128 ff ff 03), then a literal run: past 4096 bytes
        return PageRecord(block, 0x400000, KIND_XBZRLE, b"\xff\xff\x03\x08" + b"A" * 12)
    return PageRecord(block, 0x400000, KIND_XBZRLE, b"")
