"""A scroll view that follows its newest line until the user scrolls back."""
from __future__ import annotations

from textual.scroll_view import ScrollView


class FollowTail(ScrollView):
    follow = True        # keep the newest line in view until the user looks back

    def _to_end(self) -> None:
        if self.follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def on_resize(self, _event) -> None:
        self.call_after_refresh(self._to_end)

    def on_mouse_scroll_up(self, _event) -> None:
        self.follow = False

    def on_mouse_scroll_down(self, _event) -> None:
        self.call_after_refresh(self._at_end)

    def _at_end(self) -> None:
        self.follow = self.scroll_y >= self.max_scroll_y
