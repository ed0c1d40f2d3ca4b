"""The completer is a pure function of the text before the cursor."""
from colo_tui.repl.completer import complete


def test_command_names():
    assert complete("") == sorted(complete(""))
    assert {"step", "stall", "status"} <= set(complete("st"))
    assert complete("he") == ["heartbeat", "help"]
    assert complete("ex") == ["exit", "explain"]
    assert complete("zz") == []


def test_arguments():
    assert complete("kill ") == ["primary", "secondary"]
    assert complete("heartbeat s") == ["secondary"]
    assert complete("show ") == ["ladder", "ram", "packets", "disk", "failover", "screen"]
    from colo_tui.session.options import SETTINGS
    assert complete("set ") == ["checkpoint-delay", "dialect", "mode", "seed", "guest",
                                "verbosity", *SETTINGS]
    assert complete("set arbiter ") == ["on", "off"]
    assert complete("set verbosity q") == ["quiet"]
    assert complete("set guest n") == ["null"]
    assert complete("set dialect ") == ["v11", "qemu", "prototype"]
    assert complete("set mode h") == ["hybrid"]
    assert complete("faults ") == ["clear"]
    assert complete("record ") == ["start", "stop"]
    assert complete("run ") == ["until"]
    assert "vmstate-received" in complete("run until vm")
    assert "colo-exit" in complete("run until colo")
    assert complete("help ru") == ["run"]
    assert complete("step ") == []
    assert complete("nosuch ") == []
    assert complete("kill primary ") == []


def test_fault_specs():
    kinds = complete("fault ")
    assert "drop@" in kinds and "delay=" in kinds and "unexpected=" in kinds
    assert complete("fault kill-") == ["kill-primary@", "kill-secondary@"]
    assert "drop@vmstate-received" in complete("fault drop@vm")
    assert "drop@load" not in complete("fault drop@")       # link faults are not for 'load'
    assert "kill-primary@load" in complete("fault kill-primary@l")
    assert complete("fault unexpected=vmstate-l") == ["unexpected=vmstate-loaded@"]
    assert "unexpected=vmstate-loaded@checkpoint-reply" in complete(
        "fault unexpected=vmstate-loaded@checkpoint-r")
    assert complete("fault delay=5") == []
    assert complete("fault drop@ram#") == []


def test_files(tmp_path):
    (tmp_path / "session.colo.jsonl").write_text("")
    (tmp_path / "scripts").mkdir()
    (tmp_path / ".hidden").write_text("")
    base = str(tmp_path)
    got = complete(f"replay {base}/")
    assert got == [f"{base}/scripts/", f"{base}/session.colo.jsonl"]
    assert complete(f"record start {base}/se") == [f"{base}/session.colo.jsonl"]
    assert complete(f"replay {base}/.h") == [f"{base}/.hidden"]
    assert complete(f"replay {base}/missing/") == []


def test_prompt_toolkit_wrapper():
    from prompt_toolkit.document import Document

    from colo_tui.repl.completer import make_completer
    comps = list(make_completer().get_completions(Document("kill se"), None))
    assert [(c.text, c.start_position) for c in comps] == [("secondary", -2)]


def test_completions_carry_descriptions():
    from prompt_toolkit.document import Document

    from colo_tui.repl.completer import make_completer
    got = {c.text: c.display_meta_text for c in
           make_completer().get_completions(Document("re"), None)}
    assert got["record"] == "record the session to a file"
    got = {c.text: c.display_meta_text for c in
           make_completer().get_completions(Document("fault dr"), None)}
    assert "never arrives" in got["drop@"]
