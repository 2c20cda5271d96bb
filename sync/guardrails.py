"""Guardrails: is a planned sync change small enough to apply without a human?

A sync that would remove or add too large a share of the synced members, shrink the
segment below its minimum size, or replace a non-empty membership with an empty one
is *blocked*: nothing is applied and the reasons are recorded (architecture §6). Ratio rules
compare with the membership currently synced, so they do not apply to a first sync.
"""

from __future__ import annotations

from dataclasses import dataclass

from project.sync import SyncSettings


@dataclass(frozen=True)
class Verdict:
    """The guardrail verdict: ``ok`` when no rule is broken, else the ``reasons``."""

    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no guardrail is broken."""
        return not self.reasons

    def text(self) -> str:
        """One line: 'pass' or the reasons joined by '; '."""
        return "pass" if self.ok else "; ".join(self.reasons)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%".replace(".0%", "%")


def check_guardrails(
    settings: SyncSettings, *, current: int, target: int, added: int, removed: int
) -> Verdict:
    """Check a planned change of ``current`` synced members into ``target`` members.

    >>> s = SyncSettings(max_removed_ratio=0.5)
    >>> check_guardrails(s, current=100, target=40, added=0, removed=60).text()
    '60 of 100 synced members (60%) would be removed, more than max_removed_ratio 50%'
    >>> check_guardrails(s, current=0, target=40, added=40, removed=0).ok
    True
    """
    reasons: list[str] = []
    if target == 0 and current > 0 and not settings.allow_empty_replace:
        reasons.append(
            f"an empty snapshot would replace {current} synced members "
            "(allow_empty_replace is false)"
        )
    if target < settings.min_size:
        reasons.append(f"the snapshot has {target} members, below min_size {settings.min_size}")
    if current > 0:
        limit = settings.max_removed_ratio
        if limit is not None and removed / current > limit:
            reasons.append(
                f"{removed} of {current} synced members ({_pct(removed / current)}) would be "
                f"removed, more than max_removed_ratio {_pct(limit)}"
            )
        limit = settings.max_added_ratio
        if limit is not None and added / current > limit:
            reasons.append(
                f"{added} members would be added to {current} ({_pct(added / current)}), "
                f"more than max_added_ratio {_pct(limit)}"
            )
    return Verdict(tuple(reasons))
