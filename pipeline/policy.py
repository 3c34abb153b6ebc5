"""What every event-time step agrees on: the window and how long it stays open.

The brief's folders are per minute of event time. A minute is complete when
the watermark passes its end (its files are written then); it stays open for
`allowed_lateness_s` more, during which late events are added at once as late
files (batched by `late_firing_delay_s` of processing time); events later
still (far late) are not dropped: they go to their folder after it is read
back. The minute files use this object today; later event-time steps
(per-minute metrics, sessions) take the same one, so a window never closes
at a different moment in BigQuery than in the files.
"""

from __future__ import annotations

from dataclasses import dataclass

from apache_beam.utils.timestamp import Duration


@dataclass(frozen=True)
class LatenessPolicy:
    allowed_lateness_s: int = 180
    late_firing_delay_s: int = 10
    window_s: int = 60  # the brief's minute folders

    @property
    def allowed_lateness(self) -> Duration:
        return Duration(seconds=self.allowed_lateness_s)

    def window_start_us(self, event_time_us: int) -> int:
        size = self.window_s * 1_000_000
        return event_time_us - event_time_us % size
