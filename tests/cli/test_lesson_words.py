"""A lesson's words fit both front ends: how to act (the command, the app's key) is
added by each (`colo learn`: "your turn, type: …"; the app: "(key …)"), so a beat's
own text names neither; `colo learn` in a terminal said "k with the primary selected"."""
import re

from colo_tui.commands.lessons import LESSONS


def test_no_beat_tells_a_key_or_to_type_it():
    for lesson in LESSONS:
        for beat in lesson.beats:
            assert "type it" not in beat.say, (lesson.name, beat.say)
            assert not re.search(r"\([a-z](?:\)|,| with| then)|select it with", beat.say), \
                (lesson.name, beat.say)
            if beat.do is not None:
                assert beat.key, (lesson.name, beat.say)    # the app's way, said by the app
