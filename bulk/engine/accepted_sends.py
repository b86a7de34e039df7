"""When the accepted requests were sent, over the last minute, in a bounded space.

The pacer measures a quota it is not told by counting, at a 429, the requests the server
let through since the last one, by send time. Kept as one float per request, a minute at
5,000 requests a second was 300,000 floats (some 10 MB, the long job's memory growing for
its first minute) and a sort of them all for each late answer of a 429's cycle. Here the
sends are kept per bin of `RESOLUTION` seconds: a bin holds its first send time exactly
and how many were sent in it, so at a pace of one send per bin or slower (any quota up
to 100/s) nothing is rounded, and above it a count is off by at most the sends of the
bins at its two ends.
"""

from __future__ import annotations

RESOLUTION = 0.01


class AcceptedSends:
    """Send times of accepted requests over the last `window` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        #: bin number -> [first send time in it, sends]; in the order bins were first
        #: seen (nearly time order: an answer arrives at most a round trip late).
        self._bins: dict[int, list[float]] = {}

    def __len__(self) -> int:
        return len(self._bins)

    def add(self, sent: float, now: float) -> None:
        """One more accepted request, sent at `sent`; forget what is older than the window."""
        key = int(sent // RESOLUTION)
        found = self._bins.get(key)
        if found is None:
            self._bins[key] = [sent, 1.0]
        else:
            found[1] += 1
            if sent < found[0]:
                found[0] = sent
        bins, oldest = self._bins, (now - self.window) // RESOLUTION
        while (first := next(iter(bins))) < oldest:
            del bins[first]

    def between(self, start: float, edge: float, *, from_start: bool) -> list[tuple[float, int]]:
        """(first send time, sends) of each bin whose first send is after `start` (at or
        after, `from_start`) and at or before `edge`, in time order."""
        return sorted(
            (at, int(count)) for at, count in self._bins.values()
            if (start <= at if from_start else start < at) and at <= edge
        )
