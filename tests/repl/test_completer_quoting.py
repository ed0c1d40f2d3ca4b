"""Tab completion of a file name with a space in it. The completer split the line on
spaces: `replay my` completed to `replay my recs/`, two words, and Tab then offered
nothing (a quoted `replay "my recs/` nothing either); the parser reads shlex words, so
the name must be inserted quoted and a quoted word completed."""
import os

import pytest

pytest.importorskip("prompt_toolkit")
from prompt_toolkit.completion import CompleteEvent  # noqa: E402
from prompt_toolkit.document import Document  # noqa: E402

from colo_tui.commands.parser import parse  # noqa: E402
from colo_tui.repl.completer import make_completer  # noqa: E402


def _after_tab(text: str) -> list[str]:
    """The line as it reads after each completion offered for `text` is taken."""
    done = []
    for c in make_completer().get_completions(Document(text), CompleteEvent()):
        done.append(text[:len(text) + c.start_position] + c.text)
    return done


@pytest.fixture
def folder(tmp_path, monkeypatch):
    (tmp_path / "my recs").mkdir()
    (tmp_path / "my recs" / "a b.colo.jsonl").write_text("")
    (tmp_path / "plain.colo.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_name_with_a_space_is_inserted_quoted(folder):
    assert _after_tab("replay my") == ["replay 'my recs/"]     # (open: the name follows)
    line = _after_tab("replay 'my recs/")
    assert line == ["replay 'my recs/a b.colo.jsonl'"]
    assert parse(line[0]).args["file"] == os.path.join("my recs", "a b.colo.jsonl")


@pytest.mark.parametrize("typed", ['replay "my recs/a', "replay my\\ recs/", "replay 'my r"])
def test_a_quoted_or_escaped_word_completes(folder, typed):
    (line,) = _after_tab(typed)
    assert line.startswith("replay 'my recs/")       # a folder's quote is left open
    assert _after_tab(line) == ["replay 'my recs/a b.colo.jsonl'"]


def test_plain_words_are_not_quoted(folder):
    assert _after_tab("replay pl") == ["replay plain.colo.jsonl"]
    assert _after_tab("fault drop@vmstate-rec") == ["fault drop@vmstate-received"]
    assert _after_tab("record start plain.colo.jsonl f") == ["record start plain.colo.jsonl force"]
