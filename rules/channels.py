"""Channel adapters: how a due message leaves kequn (pluggable).

An adapter is anything with ``send(message) -> None`` that raises on failure
(:class:`Adapter`). Shipped:

* :class:`FileSink`: appends one JSON line per message to ``<folder>/<channel>.jsonl``;
* :class:`Webhook`: POSTs the message as JSON to a URL; any non-2xx answer or network
  error is a failure (the dispatcher retries, bounded).

:func:`adapters_for` maps every channel to one adapter; a deployment may register its
own per channel (an SMS gateway, a WeChat API...).
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from project.rule import CHANNELS


def delivery_key(rule: str, customer_id: int, event_key: str, action_no: int) -> str:
    """The idempotency key adapters get for a message: the same for the same rule,
    customer, event and action whatever database or run wrote it (24 hex digits of
    MD5('<rule>|<customer_id>|<event_key>'), a colon, the action's number in its branch;
    the message id of kequn's first outbox)."""
    order = hashlib.md5(f"{rule}|{customer_id}|{event_key}".encode()).hexdigest()[:24]
    return f"{order}:{action_no}"


@dataclass(frozen=True)
class Message:
    """One message to deliver."""

    message_id: int
    channel: str
    customer_id: int
    text: str
    send_at: datetime
    rule: str
    delivery_key: str
    """The idempotency key (:func:`delivery_key`)."""

    def payload(self) -> dict[str, object]:
        """The JSON body an adapter sends."""
        data = asdict(self)
        data["send_at"] = self.send_at.isoformat()
        return data


class Adapter(Protocol):
    """Delivers one message; raises (any exception) when it could not."""

    def send(self, message: Message) -> None: ...


class DeliveryError(Exception):
    """A channel refused or could not take a message."""


class FileSink:
    """Appends each message as a JSON line to ``<folder>/<channel>.jsonl``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        """Append the message (one ``write`` of one line, flushed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps(message.payload(), ensure_ascii=False) + "\n"
        with self._lock, open(self.folder / f"{message.channel}.jsonl", "a",
                              encoding="utf-8") as out:
            out.write(line)


class Webhook:
    """POSTs each message as JSON to ``url``; non-2xx or a network error raises."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url = url
        self.timeout_s = timeout_s

    def send(self, message: Message) -> None:
        """One POST; raises DeliveryError unless the answer is 2xx."""
        body = json.dumps(message.payload(), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Idempotency-Key": message.delivery_key})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"webhook answered {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(f"webhook unreachable: {exc}") from exc
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook answered {status}")


def adapters_for(default: Adapter, overrides: Mapping[str, Adapter] | None = None
                 ) -> dict[str, Adapter]:
    """An adapter for every channel: ``overrides`` where given, else ``default``."""
    chosen = dict(overrides or {})
    return {channel: chosen.get(channel, default) for channel in CHANNELS}
