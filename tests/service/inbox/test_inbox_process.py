"""The inbox in real server processes: nothing acknowledged is lost when the server is killed, and the web page works
in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from service.inbox.db import normalise_url
from service.inbox.tables import Item
from tests.service.conftest import posts, running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def stored_ids(database_url: str) -> set[str]:
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            return set(connection.execute(select(Item.id)).scalars())
    finally:
        engine.dispose()


def test_a_killed_server_loses_nothing_it_acknowledged(model_dir: Path, database_url: str) -> None:
    acknowledged: list[str] = []
    stop = threading.Event()

    def ingest_forever(worker: int, url: str) -> None:
        batch_number = 0
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                batch = posts(5, start=1000 * worker + 5 * batch_number)
                for post in batch:
                    post["id"] = f"w{worker}-{batch_number}-{post['id']}"
                batch_number += 1
                try:
                    response = http.post("/v1/inbox/posts", json={"posts": batch})
                except httpx.TransportError:
                    return  # the server is gone: this request was never acknowledged
                if response.status_code in (200, 201):
                    acknowledged.extend(post["id"] for post in batch)

    env = {"TRIAGE_MODEL": str(model_dir), "TRIAGE_DATABASE_URL": database_url}
    with running_server(env) as server:
        workers = [threading.Thread(target=ingest_forever, args=(n, server.url)) for n in range(4)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.process.kill()  # SIGKILL mid-ingest: no shutdown handler runs
        server.process.wait(timeout=30)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert len(acknowledged) >= 100
    assert set(acknowledged) <= stored_ids(database_url)
    with running_server(env) as restarted:  # the database opens again (migrations are a no-op) and serves them
        item = httpx.get(f"{restarted.url}/v1/inbox/{acknowledged[-1]}")
    assert item.status_code == 200 and item.json()["status"] == "open"


@pytest.fixture
def chromium() -> str:
    if not (Path(CHROMIUM).is_file() and shutil.which(CHROMIUM)):
        message = f"Debian's chromium is not installed at {CHROMIUM} (`make test` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    return CHROMIUM


@pytest.mark.browser
def test_the_inbox_page_resolves_and_corrects_items(model_dir: Path, chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    database_url = f"sqlite:///{tmp_path}/inbox.sqlite3"
    env = {"TRIAGE_MODEL": str(model_dir), "TRIAGE_DATABASE_URL": database_url}
    with running_server(env) as server:
        created = httpx.post(f"{server.url}/v1/inbox/posts", json={"posts": posts(5)}).json()["created"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{server.url}/inbox")
                rows = page.locator("tbody#items tr")
                expect(rows).to_have_count(5)
                first = rows.first
                first_id = first.get_attribute("data-id")
                first.locator("select").select_option("suggestion")
                first.get_by_role("button", name="Correct").click()
                expect(page.locator("#status")).to_contain_text("intent corrected to suggestion")
                first.get_by_role("button", name="Responded").click()
                expect(rows).to_have_count(4)
                expect(page.locator(f'tbody#items tr[data-id="{first_id}"]')).to_have_count(0)
                page.reload()  # gone for good, not just from this page
                expect(rows).to_have_count(4)
            finally:
                browser.close()
        item = httpx.get(f"{server.url}/v1/inbox/{first_id}").json()
        exported = httpx.get(f"{server.url}/v1/inbox/export").text
    assert first_id in created
    assert item["status"] == "responded" and item["resolved_by"] == "anonymous"
    assert '"intent": "suggestion"' in exported and first_id in exported
