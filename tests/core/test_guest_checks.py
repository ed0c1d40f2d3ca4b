"""Guest-level checks for gaps a mutation test left:

* output covered: a held packet leaves only with a checkpoint that covers it;
* digests read back raw: a write around the page-hash cache shows;
* the hybrid survivor: a secondary taking over while stopped for a checkpoint it
  never loaded holds what it stopped with;
* client history at the take-over: the survivor, as it starts to run alone, holds
  every request whose answer the client saw (at the end of the run it has answered
  the queued requests again, and a lost checkpoint no longer shows).
"""
import pytest

from protocol.guest import model
from protocol.guest.ram import PAGE_SIZE, Ram
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation
from tests.explore import bugs


def run(**kw):
    kw.setdefault("checkpoint_delay_ms", 1000)
    kw.setdefault("guest", "model")
    sim = Simulation(SimConfig(**kw))
    sim.run()
    assert sim.finished and not sim.hung
    return sim


def violated(sim) -> set[str]:
    return {v["invariant"] for v in sim.invariants.violations}


# -- output covered ---------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["qemu", "v11", "prototype"])
@pytest.mark.parametrize("mode", ["periodic", "hybrid"])
def test_held_output_leaves_with_the_checkpoint_that_covers_it(dialect, mode):
    """Every dialect's own release point (vmstate-received in qemu, vmstate-loaded in
    v11 and the prototype): the PVM is stopped from checkpoint-reply to
    vmstate-loaded, so what leaves at either was made before the stop."""
    sim = run(dialect=dialect, mode=mode, checkpoints=4, divergence=0.3,
              client_every_ms=25)
    assert sim.outcome() == "ok" and not sim.invariants.violations
    held = [r for r in sim.guests["primary"].client_log.released
            if r.via in ("filter-buffer", "compare-checkpoint")]
    assert held                      # the check had releases to look at


@pytest.mark.parametrize("faults", [["kill-secondary@ram#2"],
                                    ["kill-secondary@vmstate-size#2", "reprotect@failover#1"],
                                    ["kill-primary@checkpoint-request#2",
                                     "reprotect@failover#1"]])
def test_a_take_over_and_a_new_pair_keep_output_covered(faults):
    """The primary taking over sends what it holds (as the survivor); after a
    re-protect the new pair's first release is covered by the new migration."""
    sim = run(mode="periodic", checkpoints=4, faults=faults, client_every_ms=25)
    assert not sim.invariants.violations, sim.invariants.violations


def test_a_filter_buffer_that_leaks_between_checkpoints_is_caught(monkeypatch):
    bugs.filter_buffer_interval_timer(monkeypatch)
    sim = run(mode="periodic", checkpoints=3)
    v = sim.invariants.violations[0]
    assert v["invariant"] == "output_covered", v
    assert "no checkpoint the secondary holds covers it" in v["text"] or \
        "before any checkpoint's vmstate-received came" in v["text"]
    # (the release-output event check sees no release-output action: it never looked)
    assert sim.invariants.ok["output_commit"]


def test_resuming_the_pvm_before_the_release_is_caught(monkeypatch):
    """(a slow load: requests queue while the PVM is stopped, it answers them at once)"""
    bugs.pvm_resumed_before_release(monkeypatch)
    sim = run(dialect="v11", mode="periodic", checkpoints=3, load_ms=200)
    v = sim.invariants.violations[0]
    assert v["invariant"] == "output_covered", v
    assert "after the PVM stopped for checkpoint" in v["text"]


def test_releasing_at_checkpoint_reply_is_caught_at_the_release(monkeypatch):
    """The event-level output-commit check needs the release-output action; the
    guest-level one sees the packets themselves leave."""
    from protocol.core import primary as prim
    orig = prim.PrimaryMachine._on_reply

    def early(self, msg):
        self.guest.release_output()          # (no release-output event)
        return orig(self, msg)
    monkeypatch.setattr(prim.PrimaryMachine, "_on_reply", early)
    sim = run(mode="periodic", checkpoints=3)
    assert violated(sim) == {"output_covered"}, sim.invariants.violations


# -- digests read back raw ----------------------------------------------------------------
def test_a_raw_digest_sees_a_write_around_the_hash_cache():
    ram = Ram([("pc.ram", 64 * PAGE_SIZE)])
    ram.write("pc.ram", 3 * PAGE_SIZE, b"\x01" * PAGE_SIZE)
    before = ram.digest()
    blk = ram.blocks["pc.ram"]
    blk.mem[3 * PAGE_SIZE:3 * PAGE_SIZE + 8] = b"\xff" * 8      # a raw memcpy
    assert ram.digest() == before                               # the cache trusts itself
    assert ram.digest(raw=True) != before
    assert ram.digest() == ram.digest(raw=True)                 # and is right again


def test_a_big_guest_is_read_back_in_turns_and_a_raw_write_still_shows(monkeypatch):
    """Beyond REREAD_PAGES touched pages a raw digest reads back a window that moves
    on at each call: bounded cost, and a stray write shows within touched/budget calls."""
    import protocol.guest.ram as ram_mod
    monkeypatch.setattr(ram_mod, "REREAD_PAGES", 8)
    ram = Ram([("pc.ram", 64 * PAGE_SIZE)])
    for i in range(40):                                        # 40 touched pages: 5 turns
        ram.write("pc.ram", i * PAGE_SIZE, bytes([i + 1]) * PAGE_SIZE)
    clean = ram.digest()
    blk = ram.blocks["pc.ram"]
    read = []
    monkeypatch.setattr(blk, "read_hashes",
                        lambda idx, orig=blk.read_hashes: read.append(len(idx)) or orig(idx))
    blk.mem[37 * PAGE_SIZE:37 * PAGE_SIZE + 4] = b"\xee" * 4    # a raw memcpy, late in order
    digests = [ram.digest(raw=True) for _ in range(5)]
    assert read == [8] * 5                                     # never more than the budget
    assert digests[0] == clean and digests[-1] != clean        # seen by the fifth turn
    assert ram.digest() == ram.digest(raw=True) == digests[-1]


@pytest.mark.parametrize("mode", ["periodic", "hybrid"])
def test_a_raw_write_into_svm_ram_breaks_consistency(mode, monkeypatch):
    """A stray write into SVM RAM right after the flush (not through the RAM API: the
    page-hash cache keeps the flushed page's hash)."""
    orig = model.Guest.flush_cache

    def flush_cache(self):
        out = orig(self)
        blk = self.ram.blocks[self.main_block]
        page = int(blk.touched.index_array()[0])
        blk.mem[page * PAGE_SIZE] ^= 0x5A
        return out
    monkeypatch.setattr(model.Guest, "flush_cache", flush_cache)
    sim = run(mode=mode, checkpoints=2)
    v = sim.invariants.violations[0]
    assert v["invariant"] == "consistency" and "'ram'" in v["text"], v


def test_a_raw_write_into_pvm_ram_breaks_consistency(monkeypatch):
    """A device writing PVM RAM around the dirty log (and so around the hash cache): the
    page never goes to the secondary."""
    orig = model.Guest.advance

    def advance(self, now_ms):
        orig(self, now_ms)
        if self.role == "primary" and self.running and now_ms >= 1500:
            self.ram.blocks[self.main_block].mem[0x10 * PAGE_SIZE + 8] ^= 0xA5
    monkeypatch.setattr(model.Guest, "advance", advance)
    sim = run(mode="periodic", checkpoints=3)
    v = sim.invariants.violations[0]
    assert v["invariant"] == "consistency" and "'ram'" in v["text"], v


def test_a_flush_that_copies_one_page_per_run_is_caught(monkeypatch):
    bugs.flush_copies_one_page_per_run(monkeypatch)
    sim = run(mode="periodic", checkpoints=2)
    v = sim.invariants.violations[0]
    assert v["invariant"] == "consistency" and "'pc.ram'" in v["text"], v


# -- the hybrid survivor ----------------------------------------------------------------
#: the secondary is stopped for checkpoint 2 and holds part of it when the primary dies
MID_CHECKPOINT = ["kill-primary@checkpoint-reply#2", "kill-primary@ram#2",
                  "kill-primary@vmstate-size#2", "heartbeat-secondary@ram#2"]


@pytest.mark.parametrize("fault", MID_CHECKPOINT)
def test_a_hybrid_survivor_holds_what_it_stopped_with(fault):
    sim = run(mode="hybrid", checkpoints=3, faults=[fault], divergence=0.3)
    assert sim.eps["secondary"].failover.state == "completed"
    assert sim.eps["secondary"].checkpoint == 1
    assert not sim.invariants.violations, sim.invariants.violations


@pytest.mark.parametrize("fault", MID_CHECKPOINT)
def test_a_disk_checkpoint_before_the_load_is_caught_in_hybrid_mode(fault, monkeypatch):
    """The SVM's own disk writes are emptied as the checkpoint starts: in the model
    its twin wrote the same sectors, so what it sees does not change, but its own
    writes (the active disk) are gone before the checkpoint is whole."""
    bugs.secondary_disk_checkpoint_at_request(monkeypatch)
    sim = run(mode="hybrid", checkpoints=3, faults=[fault])
    v = sim.invariants.violations[0]
    assert v["invariant"] == "whole_survivor", v
    assert "stopped for checkpoint 2, which it never loaded" in v["text"]
    assert "active disk" in v["text"]


# -- client history at the take-over -------------------------------------------------
@pytest.mark.parametrize("dialect", ["qemu", "v11"])
@pytest.mark.parametrize("fault", ["kill-primary@vmstate-send#2", "kill-primary@ram#2",
                                   "kill-primary@load#2", "kill-primary@vmstate-loaded#2",
                                   "stall-primary@vmstate-size#2"])
def test_a_survivor_holds_every_answer_the_client_saw(dialect, fault):
    sim = run(dialect=dialect, mode="periodic", checkpoints=3, faults=[fault],
              load_ms=200, client_every_ms=25)
    assert sim.eps["secondary"].failover.state == "completed"
    assert sim.guests["primary"].client_log.released
    assert not sim.invariants.violations, sim.invariants.violations


def test_output_released_before_the_secondary_holds_it_is_caught_at_the_take_over(
        monkeypatch):
    """The primary releases as it writes the checkpoint and dies before the secondary
    has it (the release-time checks muted: this one must see it on its own)."""
    from protocol.sim import invariants
    bugs.release_when_sent(monkeypatch)
    fail = invariants.Invariants.fail
    monkeypatch.setattr(invariants.Invariants, "fail", lambda self, name, text: None
                        if name in ("output_commit", "output_covered") else
                        fail(self, name, text))
    sim = run(mode="periodic", checkpoints=3, faults=["kill-primary@vmstate-send#2"])
    [v] = sim.invariants.violations
    assert v["invariant"] == "client_history", v
    assert "the secondary takes over holding requests up to" in v["text"], v
    # why the end of the run is too late: the survivor took in the queued mirrored
    # requests and answered them again, so its state now covers every answer
    survivor = sim.guests["secondary"]
    assert survivor.devices.last_rx_id >= max(r.packet.req_id
                                              for r in survivor.client_log.released)
