"""A camera's timeline against a glitching clock: which frame moves it forward, which waits.

A frame captured at or before the last applied one is late (vision/live/rules.py): it cannot go
through the tracker or the clocks. So one frame stamped far ahead of its neighbours would move the
camera's timeline to its time, and every true frame after it would be late until the true time
caught up with it: a camera back-filling yesterday's footage, with one frame stamped three hours
ahead (still in the past of the service's clock, so a plausible time), was silenced for three
hours, its dwell rules standing still. One frame cannot tell a clock glitch from a real gap (the
camera offline for an hour and back); the frame after it can. Hence the rule (`judge`), on capture
times only, with `jump_s` = the camera's `dwell.jump_s`:

- the first frame a camera ever sends (no last applied frame) is applied;
- a frame at or before the last applied one is late, as before;
- a frame more than `jump_s` after the last applied one is held: not applied yet;
- the next frame settles it:
  - within `jump_s` after the last applied frame: it continues the old timeline, so the held
    frame was a clock glitch: dropped (counted), and this frame applied;
  - after the held frame: time went on from it, so it was a real gap: the held frame is applied
    first, then this frame is judged against it (applied, or held in turn when it jumps again);
    a real gap costs one frame of latency, nothing more;
  - at the held frame's time exactly: late (a repeat, e.g. a retried upload of the held frame,
    proves nothing about the clock; the held frame keeps waiting);
  - between the two (more than `jump_s` after the last applied frame, before the held one):
    neither timeline goes on; the held frame is dropped and this one held instead (a glitch
    stamped on the first frame after a real gap costs that frame only);
  - at or before the last applied frame: late, and the held frame keeps waiting.

What it costs: a jump of at most `jump_s` is applied at once (it cannot be told from a camera's
normal pace), so a glitch just under `jump_s` still makes up to `jump_s` of true frames late; a
camera whose frames come further apart than `jump_s` has each frame applied one frame late. Set
`jump_s` above the longest regular interval of a camera's frames, and as low as that allows.

A held frame lives in memory only (serve/cases/cameras.py): the saved state knows the last applied
frame, so after a restart the first frame is judged against that, exactly as before the restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FrameStep = Literal["apply", "hold", "late"]
HeldStep = Literal["apply", "drop"]


@dataclass(frozen=True)
class Verdict:
    """What to do with a frame, and first with the frame held before it (None: leave it waiting)."""

    frame: FrameStep
    held: HeldStep | None = None
    reason: str = ""  # why the frame is held; empty when it is not
    settled: str = ""  # why the frame held before it is applied or dropped; empty when neither


def judge(at: float, last_at: float | None, held_at: float | None, jump_s: float) -> Verdict:
    """The rule of the module's docstring for a frame captured at `at` (seconds), with the last applied
    frame at `last_at` and the frame held now at `held_at` (None: none)."""
    if last_at is None:  # nothing to be ahead of (a held frame always has a last applied one)
        return Verdict("apply")
    if held_at is not None and at > held_at:
        then = judge(at, held_at, None, jump_s)  # the held frame is applied first: this one follows it
        gap = at - held_at
        return Verdict(
            then.frame, "apply", then.reason, f"the next frame came {gap:.1f} s after it: a real gap"
        )
    if at <= last_at or at == held_at:
        return Verdict("late")
    ahead = at - last_at
    if ahead <= jump_s:
        if held_at is None:
            return Verdict("apply")
        return Verdict(
            "apply",
            "drop",
            settled=f"the next frame came {ahead:.1f} s after the last applied one: a clock glitch",
        )
    reason = (
        f"{ahead:.1f} s after the last applied frame (dwell.jump_s {jump_s:g} s): applied when the next "
        "frame follows it, dropped when the next frame goes on from the last applied one"
    )
    if held_at is None:
        return Verdict("hold", None, reason)
    return Verdict(
        "hold",
        "drop",
        reason,
        f"the next frame ({ahead:.1f} s after the last applied one) came before it: neither timeline went on",
    )
