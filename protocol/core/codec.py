"""Incremental decoder and encoder of one direction of a COLO connection.

The decoder turns bytes into items — `Message`, `RamPart`, `StateBlob` and,
at the very start of the primary's direction when asked, `InitialStream` —
whatever way the bytes are split ("need more data" is `None`).  It checks
what QEMU checks at the byte level (an id out of range, a stream that ends in
the middle of a message, a size beyond the limit); whether a message is the
*expected* one is the role machines' business.  With ``check_direction`` it also
refuses a message the other side sends (`colo decode`); off, such an id in range
goes on to the role machine, as in QEMU.  Buffers are bounded.
"""
from __future__ import annotations

import struct

from protocol.core.dialects import Dialect
from protocol.core.lazyimport import module
from protocol.core.messages import (  # by name: a compiled module reads a global fastest
    VMSTATE_SEND,
    VMSTATE_SIZE,
    InitialStream,
    Message,
    RamChunk,
    RamPart,
    StateBlob,
)
from protocol.errors import DecodeError, LimitError

_BE32 = struct.Struct(">I")
_BE64 = struct.Struct(">Q")

DEFAULT_MAX_BLOB_BYTES = 256 << 20      # QEMU grows its buffer without limit; we refuse
DEFAULT_MAX_PENDING_BYTES = 1 << 30

_MSG, _SIZE_WORD, _RAM, _BLOB, _INITIAL = "message", "size word", "ram", "blob", "initial"
STAGE_TEXT = {_MSG: "a control message", _SIZE_WORD: "the vmstate size word",
              _RAM: "the RAM part of a checkpoint", _BLOB: "the vmstate blob",
              _INITIAL: "the initial migration stream"}
#: opaque bytes (a blob, the initial stream's device region) count as progress
#: in units of this many
PROGRESS_UNIT_BYTES = 64 << 10


class Decoder:
    """Decode what one side (``sender``) sends, in one dialect."""

    def __init__(self, dialect: Dialect, sender: str, *, ram_ctx=None,
                 expect_initial: bool = False,
                 max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES,
                 max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
                 on_initial_page=None, keep_records: bool = True,
                 check_direction: bool = False) -> None:
        if sender not in ("primary", "secondary"):
            raise ValueError(f"sender must be primary or secondary, not {sender!r}")
        self.dialect = dialect
        self.sender = sender
        #: True: a message only the other side sends (or neither: v11's invalid) is a
        #: DecodeError naming it and the direction.  Off for the endpoints and the
        #: proxy: QEMU checks only the range, so a wrong-direction id in range reaches
        #: the role machine as an unexpected message ("Unexpected COLO message 0,
        #: expected 1"), as in a dialect mismatch or an ``unexpected=`` fault
        self.check_direction = check_direction
        self._frames = dialect.frames_by_sender[sender] if check_direction \
            else dialect.frames
        self._width = dialect.opcode_bytes       # (read per message: kept here)
        self.max_blob_bytes = max_blob_bytes
        self.max_pending_bytes = max_pending_bytes
        self._buf = bytearray()
        self._pos = 0
        self._state = _INITIAL if expect_initial else _MSG
        self._blob_size = 0
        self._blob = bytearray()
        self._blob_fill = 0
        self._ram_ctx = ram_ctx
        self._reader = None
        self._reader_start = 0
        #: the RAM-part reader, kept for the next checkpoint's part (reset, not rebuilt)
        self._ram_reader = None
        #: the reader has a part behind it: reset before it reads the next (_next_ram)
        self._reset_pending = False
        #: the empty RAM part last returned (a checkpoint with no dirty page): the same
        #: value every time, so handed out again (a frozen value, never changed)
        self._empty_part = None
        #: each message with a value last decoded, by its first bytes (vmstate-size: its
        #: blob's size is often the same checkpoint after checkpoint; v11 gives every
        #: message a value): the same bytes give the same (frozen) message again
        self._valued = {}
        self._on_initial_page = on_initial_page
        #: False: a RAM part's page records are counted, never handed out (no
        #: RamChunk; RamPart.records is empty), for a consumer that keeps no page
        self.keep_records = keep_records
        self.bytes_consumed = 0
        self.closed = False
        #: optional: would the reader accept this message now?  Lets an unexpected
        #: command be reported before its value arrives, as QEMU does.
        self.accepts = None
        #: optional: called each time next_item needs more bytes (the endpoint's
        #: progress timeout looks at progress() then)
        self.on_wait = None

    # -- input --------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise DecodeError("data after the end of the stream", state=self._state)
        pending = len(self._buf) - self._pos
        if pending + len(data) > self.max_pending_bytes:
            raise DecodeError(
                f"receive buffer limit exceeded: {pending + len(data)} bytes pending "
                f"> {self.max_pending_bytes}", state=self._state)
        if pending == 0 and type(data) is bytes:
            self._buf, self._pos = data, 0     # immutable: keep it as is, no copy
            return
        if type(self._buf) is bytes:
            self._buf = bytearray(self._buf[self._pos:])
            self._pos = 0
        elif self._pos and self._pos > len(self._buf) // 2:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def close(self) -> None:
        """The peer closed the stream: fine between messages, an error inside one."""
        self.closed = True
        pending = len(self._buf) - self._pos
        if self._state == _MSG and pending == 0:
            return
        what = STAGE_TEXT[self._state]
        detail = f"{pending} byte(s) pending"
        if self._state == _BLOB:
            pending += self._blob_fill
            detail = (f"got {pending} VMState data, less than expected {self._blob_size}")
        raise DecodeError(f"stream ended in the middle of {what} ({detail})",
                          state=self._state)

    @property
    def in_message(self) -> bool:
        return self._state != _MSG or len(self._buf) > self._pos

    @property
    def state(self) -> str:
        return self._state

    @property
    def stage(self) -> str:
        """What is being received, in words (for errors)."""
        return STAGE_TEXT[self._state]

    def progress(self) -> int:
        """A count that grows with each unit of work the peer's bytes completed:
        an item, a page record or section of a RAM part or the initial stream,
        64 KiB of an opaque blob.  A peer that trickles bytes without completing
        a unit makes no progress, however busy the socket is."""
        done = self.bytes_consumed
        reader = self._reader
        if reader is not None:      # it holds a partial request's bytes: not done yet
            done -= reader.consumed - reader.progress_bytes()
        if self._state == _BLOB:   # a blob counts in whole units
            done -= self._blob_fill % PROGRESS_UNIT_BYTES
        return done

    # -- output -------------------------------------------------------------
    def next_item(self):
        """The next decoded item, or ``None`` when more bytes are needed."""
        item = self._next_item()
        if item is None and self.on_wait is not None:
            self.on_wait()
        return item

    def _next_item(self):
        if self._state == _MSG:
            return self._next_message()
        if self._state == _SIZE_WORD:
            if self._avail() < 8:
                return None
            raw = self._take(8)
            msg = self._valued.get(None)
            if msg is None or msg.raw != raw:
                (size,) = _BE64.unpack(raw)
                msg = self._valued[None] = Message(VMSTATE_SIZE, size, None, raw)
            self._start_blob(msg.value)
            return msg
        if self._state == _BLOB:
            # moved out of the receive buffer as it arrives and handed over whole,
            # never copied: the blob is held once, however large
            size, fill = self._blob_size, self._blob_fill
            take = min(self._avail(), size - fill)
            if take:
                if not fill:        # sized once: growing it would copy it (realloc)
                    self._blob = bytearray(size)
                pos = self._pos
                self._blob[fill:fill + take] = memoryview(self._buf)[pos:pos + take]
                self._pos = pos + take
                self.bytes_consumed += take
                self._blob_fill = fill = fill + take
            if fill < size:
                return None
            blob, self._blob, self._blob_fill = self._blob, bytearray(), 0
            self._state = _MSG
            return StateBlob(blob)
        if self._state == _RAM:
            return self._next_ram()
        return self._next_initial()

    def items(self):
        while (item := self.next_item()) is not None:
            yield item

    # -- internals ----------------------------------------------------------
    def _avail(self) -> int:
        return len(self._buf) - self._pos

    def _take(self, n: int) -> bytes:
        raw = bytes(memoryview(self._buf)[self._pos:self._pos + n])
        self._pos += n
        self.bytes_consumed += n
        return raw

    def _start_blob(self, size: int) -> None:
        if size > self.max_blob_bytes:
            raise DecodeError(
                f"vmstate-size {size} exceeds the limit of {self.max_blob_bytes} bytes",
                state=self._state, offending=size)
        self._blob_size = size
        self._blob, self._blob_fill = bytearray(), 0
        self._state = _BLOB

    def _next_message(self):
        d = self.dialect
        width = self._width
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < width:
            return None
        # (a slice of bytes is bytes already; bytes() of it would be a type call)
        op = buf[pos:pos + width]
        frame = self._frames.get(op if type(op) is bytes else bytes(op))
        if frame is None:
            msg_id = int.from_bytes(buf[pos:pos + width], "big")
            other = d.frames.get(bytes(buf[pos:pos + width]))
            if other is not None:       # in range, but the other side's (check_direction)
                raise DecodeError(d.direction_error(other[0], self.sender),
                                  state="receive", offending=msg_id)
            text, hint = _invalid_text(d, msg_id)
            raise DecodeError(text, state="receive", offending=msg_id, hint=hint)
        name, need, msg = frame
        if msg is not None:          # no value: one slice, one lookup, the singleton
            self._pos = pos + need
            self.bytes_consumed += need
            if name == VMSTATE_SEND and self.sender == "primary":
                if d.ram_outside_blob:
                    self._start_ram()
                else:
                    self._state = _SIZE_WORD
            return msg
        if avail < need:
            if self.accepts is not None and not self.accepts(name):
                # v11 checks the command before it reads the value (colo_ctl_get)
                return Message(name, 0, d.ids[name], self._take(width))
            return None
        raw = buf[pos:pos + need]
        if type(raw) is not bytes:
            raw = bytes(raw)
        self._pos = pos + need
        self.bytes_consumed += need
        msg = self._valued.get(name)
        if msg is None or msg.raw != raw:
            msg = self._valued[name] = Message(name, int.from_bytes(raw[width:], "big"),
                                               d.ids[name], raw)
        if self.sender == "primary":
            if name == VMSTATE_SEND:
                if d.ram_outside_blob:
                    self._start_ram()
                else:
                    self._state = _SIZE_WORD
            elif name == VMSTATE_SIZE:
                self._start_blob(msg.value)
        return msg

    def _start_ram(self) -> None:
        sd = _streamdecode()
        if self._ram_ctx is None:
            self._ram_ctx = sd.RamContext()
        reader = self._ram_reader
        if reader is None or reader.ctx is not self._ram_ctx:
            # one per connection (per context: a new initial stream brings a new one)
            reader = self._ram_reader = sd.RamPartReader(self._ram_ctx)
            reader.refeeds = True         # the bytes it leaves stay in _buf (_next_ram)
            self._reset_pending = False
        else:
            self._reset_pending = True    # _next_ram: unless the part is the empty one
        self._reader = reader
        self._reader_start = self.bytes_consumed
        self._state = _RAM

    def _next_ram(self):
        sd = _streamdecode()
        StreamError, StreamLimitError = sd.StreamError, sd.StreamLimitError
        reader = self._reader
        buf = self._buf
        if self._reset_pending:
            # a whole empty RAM part (a checkpoint with no dirty page: the null guest's,
            # every checkpoint): the part the reader would return, without the reader
            empty = reader.empty_part()
            n = len(empty)
            start = self._pos
            if n and len(buf) - start >= n and buf[start:start + n] == empty:
                self._pos = start + n
                self.bytes_consumed += n
                self._state = _MSG
                self._reader = None
                part = self._empty_part
                if part is None or part.size_bytes != n:
                    part = self._empty_part = RamPart(
                        _pages().PageBatch(()) if self.keep_records else (), n, 0, {}, {})
                return part
            reader.reset()
            self._reset_pending = False
        # the bulk path may keep page data as views into our buffer (no copy):
        # afterwards the buffer is handed over to them and replaced by its tail
        kind = type(buf)
        borrow = kind is bytearray or kind is bytes     # bytes: immutable, views stay valid
        reader.borrow = borrow
        start = self._pos
        used = 0
        try:
            used = reader.feed(memoryview(buf)[start:])
        except StreamLimitError as exc:
            raise LimitError(f"RAM part refused: {exc}", limit=exc.limit,
                             state=_RAM) from None
        except StreamError as exc:
            raise DecodeError(f"malformed RAM part: {exc}", state=_RAM) from None
        finally:
            if kind is bytearray:
                end = start + used
                self._buf = buf[end:] if end < len(buf) else bytearray()   # (a copy)
                self._pos = 0
        if kind is not bytearray:
            self._pos += used
        self.bytes_consumed += used
        if self.keep_records:
            records = reader.take_records()
            if not isinstance(records, _pages().PageBatch):
                records = tuple(records)
        else:
            reader.drop_records()
            records = ()
        if not reader.done:
            # hand the records out now: the part is never held whole (it may be
            # as large as the guest's RAM, or a hostile peer's endless one)
            return RamChunk(records) if records else None
        self._state = _MSG
        self._reader = None
        return RamPart(records, self.bytes_consumed - self._reader_start,
                       reader.pages, dict(reader.kind_counts), dict(reader.block_counts))

    def _next_initial(self):
        from protocol.migration.stream import InitialReader, StreamError
        if self._reader is None:
            self._reader = InitialReader(on_page=self._on_initial_page)
            self._reader_start = self.bytes_consumed
        try:
            used = self._reader.feed(memoryview(self._buf)[self._pos:])
        except StreamError as exc:
            raise DecodeError(f"malformed initial migration stream: {exc}",
                              state=_INITIAL) from None
        except ValueError as exc:     # the page callback refused a page
            raise DecodeError(f"initial migration stream: {exc}", state=_INITIAL) from None
        self._pos += used
        self.bytes_consumed += used
        if not self._reader.done:
            return None
        reader, self._reader = self._reader, None
        self._state = _MSG
        self._ram_ctx = reader.ctx
        return InitialStream(reader.summary, self.bytes_consumed - self._reader_start)

    @property
    def ram_context(self):
        return self._ram_ctx


#: protocol.migration.streamdecode and .pages, imported at the first RAM part (they
#: bring numpy, which a decoder of control messages alone never needs), then kept
#: here: a module global is a cached lookup, a call to lazyimport an interpreted frame
_SD = _PG = None


def _streamdecode():
    global _SD
    if _SD is None:
        _SD = module("protocol.migration.streamdecode")
    return _SD


def _pages():
    global _PG
    if _PG is None:
        _PG = module("protocol.migration.pages")
    return _PG


def _invalid_text(d: Dialect, msg_id: int) -> tuple[str, str | None]:
    """The error for an id out of range, and a guess at the peer's dialect (or None)."""
    top = max(d.names)
    text = d.invalid_text.format(got=msg_id)
    text += f" (the {d.name} dialect has ids {min(d.names)}..{top})"
    if d.opcode_bytes == 4 and msg_id in range(0x46, 0x4C):
        return text, "is the peer speaking prototype (be64 words from 0x46)?"
    if d.opcode_bytes == 8 and msg_id >> 32 in range(0, 9):
        return text, "is the peer speaking qemu or v11 (be32 ids)?"
    return text, None


def encode_message(dialect: Dialect, name: str, value: int = 0) -> bytes:
    return dialect.encode(name, value)
