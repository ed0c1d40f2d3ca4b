"""One exception hierarchy with a user-error marker, and the shape rules it keeps:
no dialect-name comparisons and no exception names matched as strings."""
import pathlib
import re

import pytest

from protocol import errors
from protocol.errors import ColoError, is_user_error

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_testbed_error_is_marked_and_builtin_input_errors_count():
    import colo_tui.cli.export  # noqa: F401  (ExportError joins the hierarchy)
    import colo_tui.commands.parser  # noqa: F401
    import protocol.drivers.node  # noqa: F401
    import protocol.drivers.qmp  # noqa: F401
    import protocol.guest.mirror  # noqa: F401
    import protocol.migration.stream  # noqa: F401
    import protocol.record.pcap  # noqa: F401
    subs = list(_subclasses(ColoError))
    assert {"NodeError", "QmpError", "ExportError", "FaultSpecError", "StreamError",
            "PcapError", "MirrorError", "CommandError"} <= {c.__name__ for c in subs}
    for cls in subs:
        assert cls.user_error is True, cls
    assert is_user_error(errors.FaultSpecError("x"))
    assert is_user_error(FileNotFoundError(2, "No such file", "f"))
    assert is_user_error(ValueError("bad number"))
    assert not is_user_error(RuntimeError("a bug"))
    assert not is_user_error(AttributeError("a bug"))


def test_a_subclass_can_opt_out_of_the_marker():
    class Internal(ColoError):
        user_error = False
    assert not is_user_error(Internal("x"))


def test_the_repl_reports_user_errors_and_flags_bugs():
    from colo_tui.commands.handlers import error_text

    class P:
        name, line = "save", "save x"
    assert error_text(P, errors.RecordingError("'truncated'")) == "save: truncated"
    assert error_text(P, KeyError("side")).startswith("save: ")
    assert "internal error" in error_text(P, AttributeError("nope"))


def _sources():
    for top in ("protocol", "colo_tui"):
        yield from (ROOT / top).rglob("*.py")


@pytest.mark.parametrize("pattern,what", [
    (r"""(dialect|\bd)(\.name)?\s*[!=]=\s*["'](qemu|v11|prototype)["']""",
     "a dialect compared by name (use a capability flag on the Dialect)"),
    (r"""__name__\s*(==|!=|in)\s*[("']""", "a class matched by its name as a string"),
])
def test_no_source_matches_names_as_strings(pattern, what):
    rx = re.compile(pattern)
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in _sources()
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if rx.search(line) and "__main__" not in line]
    assert not hits, f"{what}: {hits}"
