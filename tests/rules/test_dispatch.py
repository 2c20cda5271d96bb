"""Delivering the touch outbox: each message once under concurrent dispatchers, bounded
retries logged, opt-outs suppress, the file sink and the HTTP webhook (rules/dispatch.py)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rules.channels import FileSink, Message, Webhook, adapters_for, delivery_key
from rules.dispatch import dispatch, opt_out, outbox_counts
from serving.db import ServingDB, connect
from tests.rules.conftest import write_orders

NOW = datetime(2026, 3, 11, 3, 0)


def enqueue(db: ServingDB, n: int, *, channel: str = "sms", due: datetime = NOW,
            prefix: str = "m") -> list[str]:
    """``n`` acting orders of rule ``r`` (customers 0..n-1, events ``<prefix><i>``), one
    message each; returns the messages' delivery keys."""
    orders = write_orders(db, "r", due.date(),
                          [(i, f"{prefix}{i}", "act", None, "then", 0) for i in range(n)])
    with db.transaction():
        message = int(db.scalar("SELECT coalesce(max(message_id), 0) FROM touch_outbox")) + 1
        db.executemany(
            "INSERT INTO touch_outbox (message_id, order_id, action_no, rule, channel, "
            "customer_id, text, send_at, send_day, state, attempts) "
            "VALUES (?, ?, 1, 'r', ?, ?, ?, ?, ?, 'pending', 0)",
            [(message + i, orders[i], channel, i, f"hello {i}", due, due.date())
             for i in range(n)])
    return [delivery_key("r", i, f"{prefix}{i}", 1) for i in range(n)]


class Recorder:
    """An adapter that records deliveries (thread-safe) and can fail on demand."""

    def __init__(self, fail: int = 0):
        self.sent: list[str] = []
        self.fail = fail
        self.lock = threading.Lock()

    def send(self, message: Message) -> None:
        with self.lock:
            if self.fail:
                self.fail -= 1
                raise ConnectionError("gateway down")
            self.sent.append(message.delivery_key)


def test_concurrent_dispatchers_deliver_each_message_once(db: ServingDB, serving_url: str
                                                          ) -> None:
    ids = enqueue(db, 300)
    enqueue(db, 5, due=NOW + timedelta(hours=1), prefix="later")
    recorder = Recorder()
    reports = []

    def worker(n: int) -> None:
        handle = connect(serving_url)
        try:
            reports.append(dispatch(handle, adapters_for(recorder), now=NOW, batch=7,
                                    worker=f"w{n}"))
        finally:
            handle.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(recorder.sent) == sorted(ids)  # each due message once, none early
    assert Counter(recorder.sent).most_common(1)[0][1] == 1
    assert sum(r.sent for r in reports) == 300
    assert outbox_counts(db) == {("sms", "pending"): 5, ("sms", "sent"): 300}
    assert db.scalar("SELECT count(*) FROM touch_attempts WHERE ok = 1") == 300


def test_failures_retry_with_backoff_then_fail_and_are_logged(db: ServingDB) -> None:
    (message,) = enqueue(db, 1)
    flaky = Recorder(fail=10)
    first = dispatch(db, adapters_for(flaky), now=NOW, max_attempts=3)
    assert (first.retried, first.sent) == (1, 0)
    again = dispatch(db, adapters_for(flaky), now=NOW)  # backing off: not due yet
    assert again.claimed == 0
    later = NOW
    for _ in range(2):
        later += timedelta(minutes=10)
        dispatch(db, adapters_for(flaky), now=later, max_attempts=3)
    row = db.fetchone("SELECT state, attempts, last_error FROM touch_outbox")
    assert row == ("failed", 3, "ConnectionError: gateway down")
    attempts = db.fetchall("SELECT attempt, ok, detail FROM touch_attempts ORDER BY attempt")
    assert [(a, bool(ok)) for a, ok, _ in attempts] == [(1, False), (2, False), (3, False)]
    assert dispatch(db, adapters_for(flaky), now=later + timedelta(hours=1)).claimed == 0
    assert flaky.sent == [] and message


def test_a_recovered_channel_delivers_on_retry(db: ServingDB) -> None:
    keys = enqueue(db, 2)
    flaky = Recorder(fail=1)
    dispatch(db, adapters_for(flaky), now=NOW)
    dispatch(db, adapters_for(flaky), now=NOW + timedelta(minutes=5))
    assert sorted(flaky.sent) == sorted(keys)
    assert outbox_counts(db) == {("sms", "sent"): 2}


def test_opt_outs_suppress(db: ServingDB) -> None:
    m = enqueue(db, 3)
    opt_out(db, 1, "sms")  # pending ones at once
    n = enqueue(db, 3, prefix="n")
    recorder = Recorder()
    report = dispatch(db, adapters_for(recorder), now=NOW)
    assert sorted(recorder.sent) == sorted([m[0], m[2], n[0], n[2]])
    assert report.suppressed == 1  # n1 found at claim time
    assert outbox_counts(db) == {("sms", "sent"): 4, ("sms", "suppressed"): 2}


def test_the_file_sink_writes_one_json_line_per_message(db: ServingDB, tmp_path: Path) -> None:
    enqueue(db, 2, channel="push")
    dispatch(db, adapters_for(FileSink(tmp_path / "sink")), now=NOW)
    lines = (tmp_path / "sink" / "push.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["hello 0", "hello 1"]


@pytest.fixture
def webhook_server():
    """A local HTTP server recording POSTed JSON; answers 500 to customer 1."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ok = body["customer_id"] != 1
            if ok:
                received.append({**body, "key": self.headers["Idempotency-Key"]})
            self.send_response(200 if ok else 500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/touch", received
    server.shutdown()
    server.server_close()


def test_the_webhook_posts_json_and_a_non_2xx_is_a_failure(db: ServingDB,
                                                           webhook_server) -> None:
    url, received = webhook_server
    keys = enqueue(db, 3, channel="wechat")
    report = dispatch(db, adapters_for(Webhook(url, timeout_s=5)), now=NOW, max_attempts=1)
    assert (report.sent, report.failed) == (2, 1)
    assert sorted((r["customer_id"], r["channel"], r["key"]) for r in received) == [
        (0, "wechat", keys[0]), (2, "wechat", keys[2])]
    assert all(r["key"] == r["delivery_key"] for r in received)
    assert "500" in db.scalar("SELECT last_error FROM touch_outbox WHERE state = 'failed'")


def test_an_unreachable_webhook_is_a_logged_failure(db: ServingDB) -> None:
    enqueue(db, 1)
    report = dispatch(db, adapters_for(Webhook("http://127.0.0.1:9/x", timeout_s=1)), now=NOW)
    assert report.retried == 1 and "unreachable" in report.errors[0]
