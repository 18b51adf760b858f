"""View in browser runs a marketer's template: it renders in at most VIEW_THREADS threads, a
render that never ends is cut off with a 503, and the other routes keep answering meanwhile."""

from __future__ import annotations

import threading

import pytest
from api_world import SECRET, World
from fastapi.testclient import TestClient

from newsletter import tokens
from newsletter.api.routes import tracking as routes


def test_slow_views_use_a_bounded_pool_and_the_server_keeps_answering(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release, inside, peak = threading.Semaphore(0), threading.Event(), [0], [0]
    lock = threading.Lock()

    def stuck_render(*args: object, **kwargs: object) -> str:
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        entered.release()
        release.wait(timeout=30)
        with lock:
            inside[0] -= 1
        return "<p>late</p>"

    monkeypatch.setattr(routes.record, "message_html", stuck_render)
    monkeypatch.setattr(routes, "VIEW_SECONDS", 20.0)
    path = f"/v/{tokens.sign_view(secret_key=SECRET, message_id=world.message_id)}"
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(client.get(path).status_code))
        for _ in range(routes.VIEW_THREADS + 4)
    ]
    for thread in threads:
        thread.start()
    for _ in range(routes.VIEW_THREADS):
        assert entered.acquire(timeout=20)
    assert client.get("/healthz").status_code == 200  # while every view thread is busy
    pixel = f"/t/o/{tokens.sign_open(secret_key=SECRET, message_id=world.message_id)}.gif"
    assert client.get(pixel).status_code == 200
    assert inside[0] == routes.VIEW_THREADS  # the others wait for a view thread
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * len(threads) and peak[0] == routes.VIEW_THREADS


def test_a_render_past_the_view_limit_answers_503(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def never(*args: object, **kwargs: object) -> str:
        release.wait(timeout=30)
        return "<p>too late</p>"

    monkeypatch.setattr(routes.record, "message_html", never)
    monkeypatch.setattr(routes, "VIEW_SECONDS", 0.2)
    path = f"/v/{tokens.sign_view(secret_key=SECRET, message_id=world.message_id)}"
    response = client.get(path)
    release.set()
    assert response.status_code == 503 and "Something went wrong" in response.text
