"""Alerts: tell someone when a sync is blocked, a blocking check fails or a run fails.

An :class:`Alert` is posted as JSON to the configured webhook
(``Settings.alert_webhook_url``, env ``KEQUN_ALERT_WEBHOOK_URL``; empty: alerts off). The
body carries a one-line ``text`` (what chat webhooks display) and the structured fields::

    {"kind": "sync_blocked", "title": "...", "reason": "...", "link": "http://.../runs/ID",
     "run_id": "...", "job": "...", "business_day": "2026-03-31", "asset": "sync/wake_up",
     "text": "[kequn] sync_blocked: ... — http://.../runs/ID"}

Dagster decides *when* (a run failure sensor, :mod:`dagster_project.alerts`); this module
only shapes and sends.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import asdict, dataclass

KINDS = ("sync_blocked", "check_failed", "run_failed")


@dataclass(frozen=True)
class Alert:
    """One notification: what happened, why, and where to look."""

    kind: str
    """``sync_blocked``, ``check_failed`` or ``run_failed``."""
    title: str
    reason: str
    link: str
    run_id: str = ""
    job: str = ""
    business_day: str = ""
    asset: str = ""

    @property
    def text(self) -> str:
        """One line for a chat channel.

        >>> Alert("run_failed", "run of daily_build failed", "boom", "http://ui/runs/1").text
        '[kequn] run of daily_build failed: boom — http://ui/runs/1'
        """
        return f"[kequn] {self.title}: {self.reason} — {self.link}"

    def payload(self) -> dict[str, str]:
        """The JSON body sent to the webhook."""
        return {**asdict(self), "text": self.text}


def run_link(ui_url: str, run_id: str) -> str:
    """The address of a run in the Dagster UI.

    >>> run_link("http://127.0.0.1:3000/", "abc")
    'http://127.0.0.1:3000/runs/abc'
    """
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def send_alert(url: str, alert: Alert, *, timeout_s: float = 10.0) -> int:
    """POST ``alert`` as JSON to ``url``; returns the HTTP status.

    Raises OSError (urllib's errors included) when the webhook cannot be reached or answers
    with an error, so the caller (a sensor tick) fails visibly and retries.
    """
    request = urllib.request.Request(
        url, data=json.dumps(alert.payload(), ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return int(response.status)
