"""The parser is a pure function: every command, and bad input naming the problem."""
import pytest

from colo_tui.commands import REGISTRY, CommandError, parse

GOOD = [
    ("step", "step", {}), ("step 5", "step", {"n": 5}), ("run", "run", {}),
    ("run 2", "run", {"n": 2}), ("run until failover", "run", {"event": "failover"}),
    ("run until vmstate-received", "run", {"event": "vmstate-received"}),
    ("pause", "pause", {}), ("checkpoint", "checkpoint", {}),
    ("fault drop@vmstate-received#2", "fault", {"spec": "drop@vmstate-received#2"}),
    ("fault delay=500@ram", "fault", {"spec": "delay=500@ram#1"}),
    ("faults", "faults", {}), ("faults clear", "faults", {}),
    ("kill p", "kill", {"side": "primary"}), ("kill secondary", "kill", {"side": "secondary"}),
    ("stall s", "stall", {"side": "secondary"}),
    ("failover sec", "failover", {"side": "secondary"}),
    ("heartbeat sec", "heartbeat", {"side": "secondary"}),
    ("status", "status", {}), ("show ladder", "show", {"what": "ladder"}),
    ("show fail", "show", {"what": "failover"}), ("show ram", "show", {"what": "ram"}),
    ("show packets", "show", {"what": "packets"}), ("show disk", "show", {"what": "disk"}),
    ("set checkpoint-delay 1000", "set", {"ms": 1000}), ("set dialect v11", "set", {"d": "v11"}),
    ("set mode hybrid", "set", {"m": "hybrid"}), ("set seed 7", "set", {"s": 7}),
    ("set seed 18446744073709551615", "set", {"s": 2**64 - 1}),      # as `colo run --seed`
    ("record start /tmp/x.jsonl", "record", {"file": "/tmp/x.jsonl"}),
    ("record stop", "record", {}), ("replay 'a b.jsonl'", "replay", {"file": "a b.jsonl"}),
    ("back", "back", {}), ("back 3", "back", {"n": 3}), ("explain", "explain", {}),
    ("help", "help", {}), ("help run", "help", {"cmd": "run"}), ("legend", "legend", {}),
    ("help legend", "help", {"cmd": "legend"}), ("quit", "quit", {}),
    ("exit", "quit", {}), ("reprotect", "reprotect", {}), ("re-protect", "reprotect", {}),
    ("fault reprotect@failover#2", "fault", {"spec": "reprotect@failover#2"}),
]


@pytest.mark.parametrize("line,name,args", GOOD)
def test_good(line, name, args):
    p = parse(line)
    assert (p.name, p.args) == (name, args)


def test_every_command_has_a_good_example():
    assert {name for _, name, _ in GOOD} == set(REGISTRY)


BAD = [
    ("", "empty command"), ("frobnicate", "unknown command 'frobnicate'"),
    ("step x", "N must be a whole number, not 'x'"), ("step 0", "between 1 and"),
    ("step 1 2", "unexpected extra words"), ("run until", "missing EVENT"),
    ("run until nothing", "unknown event 'nothing'"), ("run forever", "whole number"),
    ("fault", "missing SPEC"), ("fault drop@nowhere", "unknown fault point 'nowhere'"),
    ("fault zap@ram", "unknown fault kind 'zap'"), ("fault delay@ram", "needs an argument"),
    ("faults purge", "expected 'clear'"), ("kill", "missing SIDE"),
    ("kill x", "side must be primary or secondary"), ("stall both", "side must be"),
    ("heartbeat", "missing SIDE"), ("show", "missing WHAT"), ("show cpu", "unknown view 'cpu'"),
    ("set", "missing"), ("set colour red", "unknown 'colour'; expected one of"),
    ("set dialect qemu9", "unknown dialect 'qemu9'"), ("set mode fast", "unknown mode"),
    ("set seed x", "whole number"), ("set checkpoint-delay -5", "between 0 and"),
    ("set seed 18446744073709551616", "between 0 and 18,446,744,073,709,551,615"),
    ("set seed -1", "between 0 and 18,446,744,073,709,551,615"),
    ("record", "missing"), ("record pause", "expected one of"),
    ("replay", "missing FILE"), ("replay ''", "FILE: an empty path"),
    ("record start ''", "FILE: an empty path"), ("back x", "whole number"), ("help nope", "no command 'nope'"),
    ("quit now", "unexpected extra words"), ("status 'unterminated", "cannot split"),
]


@pytest.mark.parametrize("line,needle", BAD)
def test_bad(line, needle):
    with pytest.raises(CommandError) as exc:
        parse(line)
    assert needle in str(exc.value)
    if line.split() and line.split()[0] in REGISTRY and "split" not in needle:
        assert "usage:" in str(exc.value)


def test_registry_is_data():
    for name, cmd in REGISTRY.items():
        assert cmd.name == name and cmd.syntax.startswith(name) and cmd.summary
        assert callable(cmd.handler)
    assert REGISTRY["kill"].destructive and REGISTRY["replay"].destructive
    assert not REGISTRY["step"].destructive
    assert "fault-spec" in REGISTRY["fault"].arg_kinds
    assert "side" in REGISTRY["heartbeat"].arg_kinds
    assert set(REGISTRY["set"].arg_kinds) == {"int", "dialect", "mode", "seed", "guest",
                                              "verbosity", "length", "ms", "onoff", "fraction",
                                              "arbiter-ms"}


@pytest.mark.parametrize("word", ["0x10", "٣", "1_000", "+3", "1e3"])
def test_numbers_follow_the_one_grammar(word):
    with pytest.raises(CommandError, match="whole number"):
        parse(f"step {word}")


def test_a_command_of_several_settings_alone_lists_them():
    """`set` with nothing after it names what it sets, not the first form's word."""
    from colo_tui.commands.parser import CommandError, parse
    with pytest.raises(CommandError) as info:
        parse("set")
    text = str(info.value)
    assert "missing what to set, one of:" in text
    assert all(word in text for word in ("checkpoint-delay", "dialect", "mode", "seed"))


def test_the_words_a_command_takes_are_each_named_once():
    # 'record' alone said "one of: start, start, stop" (two forms begin with start)
    from colo_tui.commands.parser import CommandError, parse
    for line in ("record", "record pause"):
        with pytest.raises(CommandError) as info:
            parse(line)
        assert "one of: start, stop;" in str(info.value), str(info.value)
