"""Check a recording that cannot be re-simulated (``imported: true``) against its own facts.

A recording of a real session (`colo import`, a live session) has no seed to
re-run, so ``replay --verify`` checks that it is self-consistent instead:

* ``seq`` strictly increases (``t`` may step back a little: each side stamps its own);
* each control message is sent by the side that sends it, is one of the
  header's dialect, and comes in the order a checkpoint transaction allows
  (``checkpoint-ready`` once, first; then request, reply, send, [size],
  received, loaded — the last transaction may be unfinished), up to the first
  error or fault (after which a real peer may send anything);
* checkpoints are numbered 1, 2, … without gaps; a commit closes the checkpoint
  that began; messages carry the number of the checkpoint they belong to;
* sizes add up: a RAM part's pages are its zero + full + xbzrle pages, and its
  bytes hold them (a page record is 8 + 4096 bytes, a zero page 9); a commit
  repeats its RAM part's counts and its device state's size; the qemu
  dialect's ``vmstate-size`` is the device state's size; the initial
  migration's size is the header's.

A recording that starts after seq 0 was started late in a long live session, whose
oldest events had been dropped from memory (protocol/core/eventwindow.py): it
joins mid-session, so the checks start at its first checkpoint that begins, as if
every checkpoint before it had gone well.
"""
from __future__ import annotations

from protocol.core import dialects
from protocol.core import messages as m

PAGE = 4096


class _Facts:
    def __init__(self, rec) -> None:
        self.rec = rec
        self.dialect = dialects.get(rec.header.get("dialect", "qemu"))
        # the prototype's size is a bare word, still a message of the transaction
        self.known = set(self.dialect.ids) | ({m.VMSTATE_SIZE} if self.dialect.size_is_bare_word
                                              else set())
        self.order = [msg for msg in m.TRANSACTION if msg in self.known]
        self.expect = 0            # index in self.order of the next transaction message
        self.ready = False
        self.begun = 0             # the checkpoint that began last (0: none yet)
        self.committed = 0
        self.sent_n = 0            # the transaction number counted from requests
        self.off_rails = False     # an error or fault happened: order no longer checked
        self.ram: dict[int, dict] = {}
        self.device: dict[int, int] = {}

    # each returns a sentence, or None when the event agrees with what came before
    def send(self, ev: dict, d: dict) -> str | None:
        msg, side = d.get("msg"), ev.get("side")
        if msg not in self.known:
            return f"{msg!r} is not a message of the {self.dialect.name} dialect"
        if m.SENDER.get(msg) != side:
            return f"{msg} is sent by the {m.SENDER.get(msg)}, not the {side}"
        if self.off_rails:
            return None
        if msg == m.CHECKPOINT_READY:
            if self.ready or self.sent_n:
                return "checkpoint-ready after the COLO handshake"
            self.ready = True
            return None
        if msg == m.GUEST_SHUTDOWN:
            return None if self.expect == 0 else f"{msg} inside a checkpoint transaction"
        if msg != self.order[self.expect]:
            return (f"{msg} where the transaction expects {self.order[self.expect]} "
                    f"(checkpoint {self.sent_n or 1})")
        if msg == m.CHECKPOINT_REQUEST:
            self.sent_n += 1
        self.expect = (self.expect + 1) % len(self.order)
        n = d.get("n")
        if n is not None and n != self.sent_n:
            return f"{msg} of checkpoint {self.sent_n} says n={n}"
        if self.begun and self.sent_n != self.begun:
            return f"{msg} of checkpoint {self.sent_n} while checkpoint {self.begun} is open"
        if msg == m.VMSTATE_SIZE and self.dialect.size_is_device_state:
            self.device.setdefault(-self.sent_n, d.get("value", 0))
        return None

    def checkpoint(self, d: dict) -> str | None:
        n, phase = d.get("n"), d.get("phase")
        if phase == "begin":
            if self.begun and n != self.begun + 1:
                return f"checkpoint {n} begins after checkpoint {self.begun}"
            if self.begun and self.committed != self.begun and not self.off_rails:
                return f"checkpoint {n} begins before checkpoint {self.begun} was committed"
            self.begun = n if isinstance(n, int) else self.begun + 1
        elif phase == "commit":
            if n != self.begun or self.committed == n:
                return f"a commit of checkpoint {n} while checkpoint {self.begun} is open"
            self.committed = n
            return self._commit_sizes(n, d)
        return None

    def _commit_sizes(self, n: int, d: dict) -> str | None:
        ram = self.ram.get(n)
        if ram is not None:
            for key in ("zero", "full", "xbzrle"):
                if key in d and key in ram and d[key] != ram[key]:
                    return f"checkpoint {n} commits {d[key]} {key} pages, its RAM part " \
                           f"had {ram[key]}"
        if "device_bytes" in d and n in self.device and d["device_bytes"] != self.device[n]:
            return f"checkpoint {n} commits {d['device_bytes']} device-state bytes, its " \
                   f"device state had {self.device[n]}"
        return None

    def ram_part(self, d: dict) -> str | None:
        n = d.get("n", self.sent_n)
        counts = [d.get(k) for k in ("zero", "full", "xbzrle")]
        if all(isinstance(c, int) for c in counts):
            zero, full, xbz = counts
            if "pages" in d and d["pages"] != zero + full + xbz:
                return f"RAM part of checkpoint {n}: {d['pages']} pages is not {zero} zero " \
                       f"+ {full} full + {xbz} xbzrle"
            size = d.get("bytes")
            low = full * (PAGE + 8) + zero * 9 + xbz * 11
            high = (zero + full + xbz) * (PAGE + 8 + 256 + 3) + PAGE
            if isinstance(size, int) and not low <= size <= high:
                return f"RAM part of checkpoint {n}: {size} bytes cannot hold {full} full, " \
                       f"{zero} zero and {xbz} xbzrle pages ({low} … {high} bytes)"
        self.ram[n] = d
        return None

    def device_state(self, d: dict) -> str | None:
        n, size = d.get("n", self.sent_n), d.get("bytes")
        said = self.device.pop(-n, None)
        if said is not None and size is not None and said != size:
            return f"device state of checkpoint {n}: {size} bytes, vmstate-size said {said}"
        self.device[n] = size
        return None


def check(rec) -> tuple[dict, str] | None:
    """The first event that disagrees with the recording's own facts and why; None: none."""
    facts = _Facts(rec)
    last_seq = -1
    initial = rec.header.get("initial")
    joining = bool(rec.events) and rec.events[0]["seq"] > 0     # started late: see above
    for ev in rec.events:
        seq, side, kind = ev["seq"], ev["side"], ev["kind"]
        d = ev.get("data") or {}
        why = None
        if joining and side == "primary" and kind == "checkpoint" and \
                d.get("phase") == "begin" and isinstance(d.get("n"), int):
            joining = False             # from here on, as if checkpoints 1 … n-1 went well
            facts.ready = True
            facts.begun = facts.committed = facts.sent_n = d["n"] - 1
        if seq <= last_seq:
            why = f"seq {seq} after seq {last_seq}: events out of order"
        elif joining:
            pass                        # mid-way through a checkpoint: not checked
        elif kind == "error" or (side == "sim" and kind == "fault") or \
                (side == "link" and kind == "fault"):
            facts.off_rails = True
        elif side in ("primary", "secondary") and kind == "send":
            why = facts.send(ev, d)
        elif side == "primary" and kind == "checkpoint":
            why = facts.checkpoint(d)
        elif side == "primary" and kind == "ram":
            why = facts.ram_part(d)
        elif side == "primary" and kind == "device-state":
            why = facts.device_state(d)
        elif kind == "recv-initial" and isinstance(initial, dict) \
                and isinstance(initial.get("bytes"), int) and d.get("bytes") != initial["bytes"]:
            why = f"the initial migration is {d.get('bytes')} bytes, the header says " \
                  f"{initial['bytes']}"
        elif side == "link" and kind == "closed" and isinstance(d.get("last_checkpoint"), int) \
                and facts.begun and d["last_checkpoint"] not in (facts.committed,
                                                                facts.begun):
            why = f"the end names checkpoint {d['last_checkpoint']} as the last, the " \
                  f"recording begins {facts.begun} and commits {facts.committed}"
        if why is not None:
            return ev, why
        last_seq = seq
    return None
