"""The schema of a run directory's stream_offsets.json (msgspec validates it).

    {"t0": 1795641542.9, "primary_to_secondary": [[0, 1795641542.93], [31, …]],
     "secondary_to_primary": [[0, 1795641543.04], …]}

Each pair is [stream offset, pcap time of the segment that starts there]; every
key is optional, unknown keys are ignored.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

Offset = Annotated[int, msgspec.Meta(ge=0, le=1 << 62)]
#: seconds; finite and within any plausible clock (the year 2286 is 1e10)
Seconds = Annotated[float, msgspec.Meta(ge=-1e12, le=1e12)]


class StreamOffsets(msgspec.Struct, frozen=True):
    SHAPE = ('{"t0": number, "primary_to_secondary": [[offset, time], ...], '
             '"secondary_to_primary": [[offset, time], ...]}')

    t0: Seconds | None = None
    primary_to_secondary: list[tuple[Offset, Seconds]] = []
    secondary_to_primary: list[tuple[Offset, Seconds]] = []
