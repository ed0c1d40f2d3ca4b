"""`colo` as a user runs it: real subprocesses, exit codes, JSON contracts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN1 = Path(__file__).resolve().parents[3] / "shared" / "qemu-colo" / "run1"


def colo(*args, stdin=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "colo_tui", *args], capture_output=True,
                          text=stdin is None or isinstance(stdin, str), input=stdin,
                          timeout=timeout)


def test_run_json_contract():
    r = colo("run", "--json", "--guest", "null", "--checkpoints", "2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("dialect", "mode", "seed", "checkpoints_committed", "outcome", "sides",
                "invariants", "wire"):
        assert key in out
    assert out["outcome"] == "ok" and out["checkpoints_committed"] == 2
    for side in ("primary", "secondary"):
        s = out["sides"][side]
        assert set(s["colo_status"]) == {"mode", "last-mode", "reason"}
        assert isinstance(s["running"], bool) and "failover_state" in s
    assert out["wire"][0] == {"dir": "S>P", "msg": "checkpoint-ready", "value": 0,
                              "hex": "00000000"}
    assert {"dir": "P>S", "msg": "vmstate-size", "value": 1,
            "hex": "000000040000000000000001"} in out["wire"]
    assert all(out["invariants"].values())


@pytest.mark.parametrize("dialect", ["qemu", "v11", "prototype"])
@pytest.mark.parametrize("mode", ["periodic", "hybrid"])
def test_run_each_dialect_and_mode(dialect, mode):
    r = colo("run", "--dialect", dialect, "--mode", mode, "--json", "--guest", "model",
             "--checkpoints", "2", "--checkpoint-delay", "500")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["outcome"] == "ok"


def test_run_failover_json():
    r = colo("run", "--json", "--fault", "kill-primary@ram#2")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["outcome"] == "failover"
    assert out["sides"]["secondary"]["colo_status"] == {"mode": "none",
                                                        "last-mode": "secondary",
                                                        "reason": "request"}


def test_run_split_brain_is_an_outcome_not_a_failure():
    r = colo("run", "--json", "--mode", "hybrid", "--fault",
             "heartbeat-secondary@checkpoint-request#2")
    assert r.returncode == 0
    assert json.loads(r.stdout)["outcome"] == "split-brain"


def test_run_hang_without_the_manager_exits_1_and_keeps_a_recording(tmp_path):
    r = subprocess.run([sys.executable, "-m", "colo_tui", "run", "--no-arbiter", "--fault",
                        "stall-secondary@checkpoint-request"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path,
                       env={**__import__("os").environ,
                            "COLO_RECORDINGS_DIR": str(tmp_path / "recs"),
                            "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert r.returncode == 1
    assert "termination" in r.stdout and "--seed 1" in r.stderr
    assert not list(tmp_path.glob("*.colo.jsonl"))      # never into the working directory
    kept = list((tmp_path / "recs").glob("colo-violation-*.colo.jsonl"))
    assert kept and f"recording: {tmp_path / 'recs'}/colo-violation-qemu-periodic-seed1" in r.stderr
    again = colo("replay", str(kept[0]), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["identical"]


@pytest.mark.parametrize("args,text", [
    (["run", "--fault", "explode@ram"], "unknown fault kind 'explode'"),
    (["run", "--fault", "drop@nowhere"], "valid points"),
    (["run", "--dialect", "qemu", "--fault", "unexpected=guest-shutdown@ram"], "stage"),
    (["run", "--dialect", "prototype", "--fault", "drop@ram"], "inside the device-state"),
])
def test_bad_fault_specs_exit_2_with_the_valid_choices(args, text):
    r = colo(*args)
    assert r.returncode == 2 and text in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["run", "--dialect", "qemu9"], ["run", "--checkpoints", "0"],
                                  ["decode", "x"], ["nonsense"]])
def test_usage_errors_exit_2(args):
    r = colo(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_dump_wire_and_decode_round_trip(tmp_path):
    r = colo("run", "--dump-wire", str(tmp_path), "--checkpoints", "2")
    assert r.returncode == 0
    s2p = tmp_path / "secondary_to_primary.bin"
    assert s2p.read_bytes().hex() == "00000000" + "000000020000000500000006" * 2
    d = colo("decode", "--dialect", "qemu", "--from", "secondary", str(s2p))
    msgs = [json.loads(line)["msg"] for line in d.stdout.splitlines()]
    assert msgs[:4] == ["checkpoint-ready", "checkpoint-reply", "vmstate-received",
                        "vmstate-loaded"]
    p = colo("decode", "--dialect", "qemu", "--from", "primary", "--initial",
             str(tmp_path / "primary_to_secondary.bin"))
    types = [json.loads(line)["type"] for line in p.stdout.splitlines()]
    assert types[0] == "initial" and types.count("ram") == 2 and p.returncode == 0


def test_decode_bad_bytes_is_a_clear_error(tmp_path):
    f = tmp_path / "bad.bin"
    f.write_bytes(b"\x00\x00\x00\x00\xff\xff\xff\xff")
    r = colo("decode", "--dialect", "qemu", "--from", "secondary", str(f))
    assert r.returncode == 1 and "Invalid message 4294967295" in r.stderr
    assert "Traceback" not in r.stderr
    r = colo("decode", "--dialect", "v11", "--from", "secondary", "-", stdin=b"\x00\x00\x00\x01\x00")
    assert r.returncode == 1 and b"ended in the middle" in r.stderr


def test_decode_of_a_migration_stream_without_initial_says_to_give_it(tmp_path):
    # the capture's primary_to_secondary.bin said only "Invalid message 1363498573"
    f = tmp_path / "primary_to_secondary.bin"
    f.write_bytes(b"QEVM\x00\x00\x00\x03")
    r = colo("decode", "--dialect", "qemu", "--from", "primary", str(f))
    assert r.returncode == 1 and "starts with QEVM" in r.stderr and "--initial" in r.stderr


@pytest.mark.skipif(not RUN1.exists(), reason="../shared/qemu-colo/run1 is not beside the repo")
def test_decode_the_real_capture_reverse_direction():
    r = colo("decode", "--dialect", "qemu", "--from", "secondary",
             str(RUN1 / "secondary_to_primary.bin"))
    msgs = [json.loads(line)["msg"] for line in r.stdout.splitlines()]
    assert r.returncode == 0 and len(msgs) == 61 and msgs[0] == "checkpoint-ready"
    r = colo("decode", "--dialect", "qemu", "--from", "primary", "--initial",
             str(RUN1 / "primary_to_secondary.bin"))
    items = [json.loads(line) for line in r.stdout.splitlines()]
    assert items[0]["type"] == "initial" and items[0]["machine"] == "pc-i440fx-7.2"
    assert sum(1 for i in items if i["type"] == "device-state") == 20
    assert r.returncode == 0          # the stream ends on a whole (lone) request


def test_record_then_replay(tmp_path):
    f = tmp_path / "s.colo.jsonl"
    assert colo("run", "--record", str(f), "--fault", "delay=3@ram").returncode == 0
    r = colo("replay", str(f), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["identical"] is True
    assert json.loads(r.stdout)["finished"] is True
    r = colo("replay", str(f))
    assert "; outcome ok, " in r.stdout and "unfinished" not in r.stdout, r.stdout
    lines = f.read_text().splitlines()
    lines[5] = lines[5].replace('"seq":', '"seq":1000+')
    (tmp_path / "bad.colo.jsonl").write_text("\n".join(lines) + "\n")
    r = colo("replay", str(tmp_path / "bad.colo.jsonl"))
    assert r.returncode == 1 and "line 6" in r.stderr and "Traceback" not in r.stderr


def test_replay_reports_the_first_divergence(tmp_path):
    f = tmp_path / "s.colo.jsonl"
    colo("run", "--record", str(f))
    text = f.read_text().replace('"msg":"vmstate-send"', '"msg":"vmstate-sent"', 1)
    f.write_text(text)
    r = colo("replay", str(f))          # the digest trailer no longer matches: refused
    assert r.returncode == 1 and "the digest does not match" in r.stderr, r.stderr
    # without the trailer the file reads as cut, and the replay names the difference
    f.write_text("".join(ln for ln in text.splitlines(True) if '"digest"' not in ln))
    r = colo("replay", str(f))
    assert r.returncode == 1 and "DIVERGES at event" in r.stdout and "vmstate-sent" in r.stdout
    assert "was cut" in r.stdout
    assert "recorded by" not in r.stdout          # this build wrote it: no build note


def test_a_divergence_in_another_build_s_recording_names_both_builds(tmp_path):
    """The golden recordings say which build wrote them (colo-testbed 0.1.0 for the
    oldest): a divergence in one another build wrote says so, since the simulator
    may have changed since; --json gives recorded_by."""
    import protocol
    f = tmp_path / "s.colo.jsonl"
    colo("run", "--record", str(f))
    text = f.read_text().replace(protocol.TOOL, "colo-testbed 0.0.9", 1)
    text = text.replace('"msg":"vmstate-send"', '"msg":"vmstate-sent"', 1)
    f.write_text("".join(ln for ln in text.splitlines(True) if '"digest"' not in ln))
    r = colo("replay", str(f))
    assert r.returncode == 1 and "DIVERGES at event" in r.stdout
    assert f"recorded by colo-testbed 0.0.9; this is {protocol.TOOL}" in r.stdout, r.stdout
    out = json.loads(colo("replay", "--json", str(f)).stdout)
    assert out["recorded_by"] == "colo-testbed 0.0.9" and out["identical"] is False


GOLDEN = Path(__file__).resolve().parents[2] / "recordings" / "happy-qemu-periodic.colo.jsonl"


@pytest.mark.parametrize("sealed", [True, False])
def test_replay_of_a_recording_without_events_fails(tmp_path, sealed):
    from protocol.record import format as rf
    from protocol.sim.config import SimConfig
    f = tmp_path / "empty.colo.jsonl"
    w = rf.Writer(f, rf.make_header(SimConfig(guest="null")))
    if sealed:
        w.close()            # the header and the digest trailer
    else:
        w.abort()            # the header alone: a cut file ("replayed 0 events identically")
    r = colo("replay", str(f))
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert r.stderr.startswith(f"colo: error: {f}: nothing to replay: the recording holds "
                               "no events"), r.stderr


#: line 4 of GOLDEN, the event of seq 1, as it is
STATE_1 = ('{"t":0.0,"seq":1,"side":"secondary","kind":"state","data":{"machine":"secondary",'
           '"to":"WAIT_INITIAL","from":"INIT"}}')


@pytest.mark.parametrize(("line", "needle"), [
    ('{"t":0.0,"seq":1,"side":"secondary","kind":"bogus","data":{}}',
     "unknown event kind 'bogus'"),
    ('{"t":0.0,"seq":7,"side":"secondary","kind":"state","data":{}}',
     "seq 7 where 1 was expected"),
    ('{"t":0.0,"seq":1,"side":"secondary","kind":"state","data":{"nonsense":1}}',
     "event 'state' has no field 'nonsense'"),
    ('{"t":0.0,"side":"secondary","kind":"state","data":{}}', "missing required field `seq`"),
    # a side no simulated session has (it read as 'DIVERGES at event 1'); "live" is a
    # live session's, never a simulated one's
    (STATE_1.replace('"secondary"', '"bogus"', 1), "unknown side 'bogus' (a simulated "
     "session's events come from primary, secondary, link, operator, arbiter, sim, client)"),
    (STATE_1.replace('"secondary"', '"live"', 1), "unknown side 'live'"),
])
def test_replay_names_a_bad_event_line_not_a_divergence(tmp_path, line, needle):
    lines = GOLDEN.read_text().splitlines()
    assert '"seq":1,' in lines[3]            # line 4 of the file: the event of seq 1
    lines[3] = line
    bad = tmp_path / "bad.colo.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    r = colo("replay", str(bad))
    assert r.returncode == 1 and "DIVERGES" not in r.stdout + r.stderr, r.stdout
    assert r.stderr.startswith(f"colo: error: {bad}: line 4: ") and needle in r.stderr, \
        r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_replay_names_a_bad_event_line_past_the_sessions_end(tmp_path):
    # the re-run ends before it: compared by count, the line was never looked at
    lines = GOLDEN.read_text().splitlines()
    last = max(i for i, ln in enumerate(lines) if '"kind":' in ln and '"seq":' in ln)
    seq = json.loads(lines[last])["seq"] + 1
    lines.insert(last + 1, f'{{"t":99999.0,"seq":{seq},"side":"bogus","kind":"state"}}')
    bad = tmp_path / "bad.colo.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    r = colo("replay", str(bad))
    assert r.returncode == 1 and "DIVERGES" not in r.stdout, r.stdout
    assert r.stderr.startswith(f"colo: error: {bad}: line {last + 2}: unknown side 'bogus'"), \
        r.stderr


def test_replay_names_a_bad_side_in_an_imported_recording(tmp_path):
    lines = GOLDEN.read_text().splitlines()
    header = json.loads(lines[1])
    lines[1] = json.dumps(header | {"imported": True})
    assert lines[3] == STATE_1
    lines[3] = STATE_1.replace('"secondary"', '"bogus"', 1)
    bad = tmp_path / "bad.colo.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    r = colo("replay", str(bad))
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert r.stderr == f"colo: error: {bad}: line 4: unknown side 'bogus' (a recorded " \
                       "session's events come from primary, secondary, link, operator, " \
                       "arbiter, sim, client, live)\n", r.stderr
    lines[3] = STATE_1.replace('"secondary"', '"live"', 1)      # a live session's own
    bad.write_text("\n".join(lines) + "\n")
    assert "unknown side" not in colo("replay", str(bad)).stderr


def test_explore_json():
    r = colo("explore", "--matrix", "--json", "--dialect", "qemu", timeout=300)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["violations"] == 0 and out["hangs"] == 0
    assert out["cases"] > 500 and set(out["outcomes"]) <= {"ok", "failover", "error",
                                                           "split-brain"}


def test_faults_lists_the_grammar():
    r = colo("faults")
    assert r.returncode == 0 and "kill-primary" in r.stdout and "device-state" in r.stdout
    assert "colo lab only: drop|delay|corrupt|duplicate@primary-in|compare-in" in r.stdout


def test_compare_modes_shows_the_tradeoff():
    r = colo("compare-modes", "--json", "--checkpoints", "4")
    out = json.loads(r.stdout)
    assert out["periodic"]["latency_mean_ms"] > 10 * max(out["hybrid"]["latency_mean_ms"], 1)
    assert out["periodic"]["invariants_hold"] and out["hybrid"]["invariants_hold"]


def test_a_zero_checkpoint_delay_runs_back_to_back():
    r = colo("run", "--checkpoint-delay", "0", "--checkpoints", "5", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["outcome"] == "ok" and out["checkpoints_committed"] == 5


@pytest.mark.parametrize("args", [["run", "--checkpoint-delay", "-5"],
                                  ["run", "--load-ms", "nan"],
                                  ["run", "--guest", "model", "--workload", "nope"],
                                  ["compare-modes", "--divergence", "5"]])
def test_bad_numbers_and_names_are_usage_errors(args):
    r = colo(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_unwritable_outputs_are_clear_errors(tmp_path):
    r = colo("run", "--record", str(tmp_path / "no" / "such" / "dir" / "x.jsonl"))
    assert r.returncode == 1 and "cannot write" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "file").write_text("x")
    r = colo("run", "--dump-wire", str(tmp_path / "file"))
    assert r.returncode == 1 and "--dump-wire" in r.stderr and "Traceback" not in r.stderr


def test_a_recording_with_an_unknown_dialect_is_refused(tmp_path):
    f = tmp_path / "r.colo.jsonl"
    f.write_text('{"format":"colo-recording","version":1,"dialect":"qemu9","mode":"periodic"}\n')
    r = colo("replay", str(f))
    assert r.returncode == 1 and "unknown dialect 'qemu9'" in r.stderr


@pytest.mark.parametrize("argv", [
    ["run", "--checkpoints", "1"],
    # (the node maps its guest before it listens or connects: exit 2 before, as if
    # --ram-mib 4096 were a usage error, where `colo run` said 1)
    ["node", "secondary", "--listen", "127.0.0.1:0"],
    ["node", "primary", "--connect", "127.0.0.1:1"],
])
def test_a_guest_too_big_to_map_is_a_named_error_not_a_traceback(argv):
    # (--ram-mib stops at 65536, what a recording carries: the process is given less
    # address space than the guest needs instead)
    import resource

    def small_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    r = subprocess.run([sys.executable, "-m", "colo_tui", *argv, "--guest", "model",
                        "--ram-mib", "4096"], capture_output=True,
                       text=True, timeout=120, preexec_fn=small_address_space)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("colo: error: "), r.stderr
    assert "RAM block 'pc.ram': cannot map 4.0 GiB of guest memory here" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_full_disk_under_the_recording_names_the_file(tmp_path):
    # ENOSPC writing the recording said "colo run: cannot write None: ..." (a write's
    # OSError carries no file name), and the REPL's record start named no file at all
    r = colo("run", "--checkpoints", "2", "--record", "/dev/full", "--force")
    assert r.returncode == 1 and "cannot write /dev/full: No space left" in r.stderr
    assert "None" not in r.stderr
    from colo_tui.commands import execute
    from colo_tui.session.control import Controller
    res = execute(Controller(), "record start /dev/full force")
    assert not res.ok and "/dev/full: No space left" in res.text
