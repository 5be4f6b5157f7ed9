"""The demo page (web/) in a real Chromium, against `taskapi serve` over real HTTP.

The page is served from another origin than the API (http://localhost:P2 vs
http://127.0.0.1:P1: another host name and port), so every call is a genuine cross-origin
request with a CORS preflight, exactly as from a frontend deployed elsewhere. After each step
the database is read past every policy, as the superuser, to see that the row really changed.

Playwright drives the system Chromium (/usr/bin/chromium, installed by
scripts/install-test-tools.sh); it never downloads a browser.
"""

import functools
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.servers import serving
from tests.support.tokens import JWT_SECRET, bearer, token_for

try:
    from playwright.sync_api import Browser, Page, Request, expect, sync_playwright
except ImportError:
    pytest.skip(
        "the playwright package is missing: pip install -e '.[dev]' (it drives /usr/bin/chromium)",
        allow_module_level=True,
    )

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(
        f"{CHROMIUM} is missing: scripts/install-test-tools.sh installs it as root (apt-get install chromium)",
        allow_module_level=True,
    )

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
# The screenshot in the docs; a run writes it there only when asked (UPDATE_DOCS=1), so that
# `make test` leaves the checkout as it found it.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "demo-page.png"
# Root in a container with no network: no sandbox, no GPU, nothing that phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1100, "height": 800}
# Half an hour off UTC and no daylight saving: a due date read in the wrong zone shows.
TIMEZONE = "Asia/Kolkata"
# A busy machine (two cores, other suites running) can take longer than the 5 s default.
expect.set_options(timeout=15_000)


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # launch() gives every run a fresh temporary profile (user-data dir) and removes it after.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, chromium_sandbox=False, headless=True
        )
        yield browser
        browser.close()


class _QuietStaticFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web_origin() -> Iterator[str]:
    """web/ from a plain static server: another origin than the API's 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietStaticFiles, directory=WEB_DIR))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, timezone_id=TIMEZONE)  # fresh localStorage for every test
    page = context.new_page()
    # Collects what the page's Content-Security-Policy refused, had it refused anything.
    page.add_init_script(
        "window.cspViolations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (event) => window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI));"
    )
    yield page
    context.close()


@pytest.fixture
def requests_seen(page: Page) -> list[Request]:
    seen: list[Request] = []
    page.on("request", lambda request: seen.append(request))  # Playwright needs a function it can tag
    return seen


@contextmanager
def api_server(app_url: str, cwd: Path, **env: str) -> Iterator[tuple[str, list[str]]]:
    """`taskapi serve` on this test's database, as the least-privileged login role.

    Yields the base URL and the server's output: one JSON line per request it answered,
    complete once the block has exited and the server has stopped.
    """
    env = {"DATABASE_URL": app_url, "JWT_SECRET": JWT_SECRET, "LOG_FORMAT": "json", **env}
    with serving(env, cwd) as (base, output):
        yield base, output


TASKS_ROUTE = "/api/{user_id}/tasks"


def answered(output: list[str], method: str, route: str = "any") -> list[int]:
    """From the server's request log: the statuses of its answers to this method (and route)."""
    statuses = []
    for line in "".join(output).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("method") == method and route in ("any", record.get("route")):
            statuses.append(record["status"])
    return statuses


# ---- what a user does -----------------------------------------------------------------------


def open_page(page: Page, url: str, api_base: str, user_id: str) -> None:
    page.goto(url)
    page.get_by_label("API base URL").fill(api_base)
    page.get_by_label("User id").fill(user_id)


def mint_in_browser(page: Page, secret: str) -> None:
    page.get_by_text("Mint a token in the browser").click()
    page.get_by_label("Dev secret (JWT_SECRET)").fill(secret)
    page.get_by_role("button", name="Mint token").click()


def paste_token_and_load(page: Page, user_id: str) -> None:
    page.get_by_label("Token (JWT)").fill(token_for(user_id))
    page.get_by_role("button", name="Load tasks").click()


def add_in_page(page: Page, title: str, description: str = "") -> None:
    form = page.get_by_role("region", name="Add a task")
    form.get_by_label("Title").fill(title)
    form.get_by_label("Description").fill(description)
    form.get_by_role("button", name="Add task").click()


def task_item(page: Page, title: str):
    return page.get_by_test_id("task").filter(has=page.get_by_test_id("task-title").get_by_text(title, exact=True))


def list_item(page: Page, name: str):
    return page.get_by_test_id("list").filter(has=page.get_by_test_id("list-name").get_by_text(name, exact=True))


def error_area(page: Page):
    return page.get_by_role("alert")


def seed(base: str, user_id: str, title: str, **fields) -> dict:
    response = httpx.post(
        f"{base}/api/{user_id}/tasks", json={"title": title, **fields}, headers=bearer(token_for(user_id))
    )
    assert response.status_code == 201, response.text
    return response.json()


def row(admin: psycopg.Connection, task_id: int) -> tuple | None:
    return admin.execute(
        "select user_id, title, description, completed from tasks where id = %s", (task_id,)
    ).fetchone()


def organized(admin: psycopg.Connection, task_id: int) -> tuple | None:
    """A task's list, due date, priority (0 none to 3 high), tags and whether completed_at is set."""
    return admin.execute(
        "select list_id, due_at, priority, tags, completed_at is not null from tasks where id = %s", (task_id,)
    ).fetchone()


def api_calls(requests: list[Request], method: str, collection: str = "") -> list[Request]:
    """The page's own calls to the API with this method (under /tasks or /lists), as the browser sent them."""
    return [
        request
        for request in requests
        if request.method == method and "/api/" in request.url and collection in request.url
    ]


# ---- tests ----------------------------------------------------------------------------------


def test_a_page_on_another_origin_creates_completes_edits_and_deletes(
    page: Page, requests_seen, web_origin, app_url, admin, tmp_path
):
    with api_server(app_url, tmp_path, CORS_ORIGINS=web_origin) as (base, output):
        # A few tasks of the same user, and one of someone else's the page must never show.
        seed(base, "alice", "Write the release notes", description="Changelog, upgrade notes, screenshots")
        booked = seed(base, "alice", "Book the dentist")
        url = f"{base}/api/alice/tasks/{booked['id']}/complete"
        httpx.patch(url, json={"completed": True}, headers=bearer(token_for("alice"))).raise_for_status()
        seed(base, "alice", "Review pull request #42", description="The demo page and its browser test")
        seed(base, "bob", "Bob's private task")

        open_page(page, f"{web_origin}/index.html", base, "alice")
        mint_in_browser(page, JWT_SECRET)
        expect(page.get_by_test_id("task")).to_have_count(3)
        expect(task_item(page, "Book the dentist").get_by_role("checkbox")).to_be_checked()
        expect(page.get_by_text("Bob's private task")).to_have_count(0)

        # Create.
        add_in_page(page, "Buy milk", "2 litres, oat")
        item = task_item(page, "Buy milk")
        expect(item).to_have_count(1)
        expect(item.get_by_test_id("task-description")).to_have_text("2 litres, oat")
        expect(page.get_by_role("status")).to_contain_text('Added "Buy milk"')
        task_id = int(item.get_attribute("data-task-id"))
        assert row(admin, task_id) == ("alice", "Buy milk", "2 litres, oat", False)

        # Complete.
        item.get_by_role("checkbox").check()
        expect(page.get_by_role("status")).to_contain_text('Marked "Buy milk" completed')
        expect(task_item(page, "Buy milk").get_by_role("checkbox")).to_be_checked()
        assert row(admin, task_id) == ("alice", "Buy milk", "2 litres, oat", True)

        # Edit.
        task_item(page, "Buy milk").get_by_role("button", name="Edit").click()
        editor = task_item(page, "Buy milk").get_by_test_id("task-editor")
        editor.get_by_label("Title").fill("Buy oat milk")
        editor.get_by_label("Description").fill("")
        editor.get_by_role("button", name="Save").click()
        expect(task_item(page, "Buy oat milk")).to_have_count(1)
        expect(task_item(page, "Buy milk")).to_have_count(0)
        expect(task_item(page, "Buy oat milk").get_by_role("checkbox")).to_be_checked()
        assert row(admin, task_id) == ("alice", "Buy oat milk", None, True)

        # Delete.
        task_item(page, "Buy oat milk").get_by_role("button", name="Delete").click()
        expect(task_item(page, "Buy oat milk")).to_have_count(0)
        expect(page.get_by_test_id("task")).to_have_count(3)
        assert row(admin, task_id) is None
        assert admin.execute("select count(*) from tasks where user_id = 'bob'").fetchone() == (1,)

    # Authorization is not a simple header: the browser asked the API first, and it said yes.
    preflights = answered(output, "OPTIONS")
    assert preflights and set(preflights) == {200}, preflights
    [post] = api_calls(requests_seen, "POST")
    assert post.response().header_value("access-control-allow-origin") == web_origin
    headers = post.all_headers()
    assert headers["origin"] == web_origin
    assert headers["authorization"].startswith("Bearer ")
    assert len(headers["idempotency-key"]) == 36, "every add carries an Idempotency-Key (a UUID)"
    for request in [
        *api_calls(requests_seen, "PATCH"),
        *api_calls(requests_seen, "PUT"),
        *api_calls(requests_seen, "DELETE"),
    ]:
        assert request.all_headers()["if-match"].startswith('"'), f"{request.method} without If-Match"


def test_lists_due_dates_priorities_and_tags(page: Page, requests_seen, web_origin, app_url, admin, tmp_path):
    with api_server(app_url, tmp_path, CORS_ORIGINS=web_origin) as (base, _):
        overdue_since = datetime.now(UTC) - timedelta(days=2, microseconds=123)
        passport = seed(
            base, "henry", "Renew the passport", due_at=overdue_since.isoformat(), priority="low", tags=["admin"]
        )
        trip = seed(base, "henry", "Plan the trip")
        bobs = httpx.post(f"{base}/api/bob/lists", json={"name": "Bob's list"}, headers=bearer(token_for("bob")))
        assert bobs.status_code == 201, bobs.text

        open_page(page, f"{web_origin}/index.html", base, "henry")
        paste_token_and_load(page, "henry")
        tasks = page.get_by_test_id("task")
        titles = tasks.get_by_test_id("task-title")
        expect(titles).to_have_text(["Plan the trip", "Renew the passport"])
        expect(task_item(page, "Renew the passport").get_by_test_id("task-due")).to_contain_text("(overdue)")
        expect(page.get_by_test_id("list")).to_have_count(0)
        expect(page.get_by_text("Bob's list")).to_have_count(0)

        # Create a list.
        sidebar = page.get_by_role("region", name="Lists", exact=True)
        sidebar.get_by_label("New list").fill("  Groceries ")
        sidebar.get_by_role("button", name="Add list").click()
        groceries = list_item(page, "Groceries")
        expect(groceries.get_by_test_id("list-counts")).to_have_text("0 of 0 open")
        list_id = int(groceries.get_attribute("data-list-id"))
        assert admin.execute("select user_id, name from lists").fetchall() == [
            ("bob", "Bob's list"),
            ("henry", "Groceries"),
        ]

        # A task in it, due at 09:00 in the browser's zone, with a priority and tags.
        form = page.get_by_role("region", name="Add a task")
        form.get_by_label("Title").fill("Buy milk")
        form.get_by_label("List").select_option(label="Groceries")
        form.get_by_label("Due").fill("2030-01-15T09:00")
        form.get_by_label("Priority").select_option("high")
        form.get_by_label("Tags").fill(" errands, Shop ")
        form.get_by_role("button", name="Add task").click()
        milk = task_item(page, "Buy milk")
        expect(milk.get_by_test_id("task-in-list")).to_have_text("Groceries")
        expect(milk.get_by_test_id("task-due")).to_have_text("due 2030-01-15 09:00")
        expect(milk.get_by_test_id("task-priority")).to_have_text("high")
        expect(milk.get_by_test_id("task-tag")).to_have_text(["errands", "Shop"])
        expect(groceries.get_by_test_id("list-counts")).to_have_text("1 of 1 open")
        milk_id = int(milk.get_attribute("data-task-id"))
        due = datetime(2030, 1, 15, 3, 30, tzinfo=UTC)  # 09:00 in Kolkata
        assert organized(admin, milk_id) == (list_id, due, 3, ["errands", "Shop"], False)

        milk.get_by_role("checkbox").check()
        expect(groceries.get_by_test_id("list-counts")).to_have_text("0 of 1 open")
        assert organized(admin, milk_id) == (list_id, due, 3, ["errands", "Shop"], True)

        # The sidebar filters by list.
        groceries.get_by_test_id("list-select").click()
        expect(page.get_by_role("heading", name="Tasks in Groceries")).to_be_visible()
        expect(titles).to_have_text(["Buy milk"])
        sidebar.get_by_role("button", name="No list", exact=True).click()
        expect(titles).to_have_text(["Plan the trip", "Renew the passport"])
        sidebar.get_by_role("button", name="All tasks", exact=True).click()
        expect(titles).to_have_text(["Buy milk", "Plan the trip", "Renew the passport"])

        # Filters: tags (all of, ignoring case), priorities (any of), overdue.
        filters = page.get_by_role("form", name="Filters")
        filters.get_by_label("Tag").fill("ERRANDS")
        filters.get_by_label("Tag").press("Enter")
        expect(titles).to_have_text(["Buy milk"])
        filters.get_by_label("Tag").fill("errands, home")
        filters.get_by_label("Tag").press("Enter")
        expect(page.get_by_test_id("task-count")).to_have_text("No tasks match.")
        filters.get_by_label("Tag").fill("")
        priorities = filters.get_by_role("group", name="Priority")
        priorities.get_by_label("low").check()
        expect(titles).to_have_text(["Renew the passport"])
        priorities.get_by_label("high").check()
        expect(titles).to_have_text(["Buy milk", "Renew the passport"])
        priorities.get_by_label("low").uncheck()
        priorities.get_by_label("high").uncheck()
        expect(tasks).to_have_count(3)
        filters.get_by_label("Overdue").select_option("true")
        expect(titles).to_have_text(["Renew the passport"])
        filters.get_by_label("Overdue").select_option("false")
        expect(titles).to_have_text(["Buy milk", "Plan the trip"])
        filters.get_by_label("Overdue").select_option("")
        expect(tasks).to_have_count(3)

        # Sorts: by due date (undated last both ways) and by priority.
        filters.get_by_label("Sort").select_option("due")
        expect(titles).to_have_text(["Renew the passport", "Buy milk", "Plan the trip"])
        filters.get_by_label("Sort").select_option("-due")
        expect(titles).to_have_text(["Buy milk", "Renew the passport", "Plan the trip"])
        filters.get_by_label("Sort").select_option("-priority")
        expect(titles).to_have_text(["Buy milk", "Renew the passport", "Plan the trip"])
        filters.get_by_label("Sort").select_option("priority")
        expect(titles).to_have_text(["Plan the trip", "Renew the passport", "Buy milk"])

        # Edit: into the list, with a due date, a priority and tags.
        task_item(page, "Plan the trip").get_by_role("button", name="Edit").click()
        editor = task_item(page, "Plan the trip").get_by_test_id("task-editor")
        expect(editor.get_by_label("Priority")).to_have_value("none")
        editor.get_by_label("List").select_option(label="Groceries")
        editor.get_by_label("Due").fill("2030-02-01T18:30")
        editor.get_by_label("Priority").select_option("medium")
        editor.get_by_label("Tags").fill("travel, Family")
        editor.get_by_role("button", name="Save").click()
        expect(task_item(page, "Plan the trip").get_by_test_id("task-tag")).to_have_text(["travel", "Family"])
        expect(task_item(page, "Plan the trip").get_by_test_id("task-priority")).to_have_text("medium")
        expect(groceries.get_by_test_id("list-counts")).to_have_text("1 of 2 open")
        trip_due = datetime(2030, 2, 1, 13, 0, tzinfo=UTC)
        assert organized(admin, trip["id"]) == (list_id, trip_due, 2, ["travel", "Family"], False)

        # An edit that leaves the due date alone keeps it to the microsecond; emptied, it is cleared.
        task_item(page, "Renew the passport").get_by_role("button", name="Edit").click()
        editor = task_item(page, "Renew the passport").get_by_test_id("task-editor")
        expect(editor.get_by_label("Tags")).to_have_value("admin")
        editor.get_by_label("Tags").fill("admin, papers")
        editor.get_by_role("button", name="Save").click()
        expect(task_item(page, "Renew the passport").get_by_test_id("task-tag")).to_have_text(["admin", "papers"])
        assert organized(admin, passport["id"]) == (None, overdue_since, 1, ["admin", "papers"], False)
        task_item(page, "Renew the passport").get_by_role("button", name="Edit").click()
        editor = task_item(page, "Renew the passport").get_by_test_id("task-editor")
        editor.get_by_label("Due").fill("")
        editor.get_by_role("button", name="Save").click()
        expect(task_item(page, "Renew the passport").get_by_test_id("task-due")).to_be_hidden()
        assert organized(admin, passport["id"]) == (None, None, 1, ["admin", "papers"], False)

        # A rename keeps the list's tasks; names are unique per user, ignoring case.
        groceries.get_by_role("button", name="Rename list Groceries").click()
        groceries.get_by_label("Name", exact=True).fill("Shopping")
        groceries.get_by_role("button", name="Save").click()
        shopping = list_item(page, "Shopping")
        expect(shopping.get_by_test_id("list-counts")).to_have_text("1 of 2 open")
        expect(task_item(page, "Buy milk").get_by_test_id("task-in-list")).to_have_text("Shopping")
        assert admin.execute("select name from lists where user_id = 'henry'").fetchall() == [("Shopping",)]

        filters.get_by_label("Sort").select_option("due")  # undated last: the passport has no due date now
        expect(titles).to_have_text(["Buy milk", "Plan the trip", "Renew the passport"])
        page.evaluate("window.scrollTo(0, 0)")
        screenshot = DOCS_SCREENSHOT if os.environ.get("UPDATE_DOCS") == "1" else tmp_path / "demo-page.png"
        page.screenshot(path=screenshot, full_page=True)
        assert screenshot.read_bytes().startswith(b"\x89PNG")

        sidebar.get_by_label("New list").fill("SHOPPING")
        sidebar.get_by_role("button", name="Add list").click()
        expect(error_area(page)).to_contain_text("409 Conflict")
        assert admin.execute("select name from lists where user_id = 'henry'").fetchall() == [("Shopping",)]

        # Delete the selected list: its tasks stay, in no list.
        shopping.get_by_test_id("list-select").click()
        expect(titles).to_have_count(2)
        shopping.get_by_role("button", name="Delete list Shopping").click()
        expect(page.get_by_test_id("list")).to_have_count(0)
        expect(error_area(page)).to_be_hidden()
        expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()
        expect(tasks).to_have_count(3)
        expect(task_item(page, "Buy milk").get_by_test_id("task-in-list")).to_be_hidden()
        sidebar.get_by_role("button", name="No list", exact=True).click()
        expect(tasks).to_have_count(3)
        assert admin.execute("select list_id from tasks where user_id = 'henry'").fetchall() == [(None,)] * 3
        assert admin.execute("select name from lists").fetchall() == [("Bob's list",)]

    # Repeatable filters go once per value; list writes carry their key or their version.
    urls = [request.url for request in api_calls(requests_seen, "GET", "/tasks")]
    assert any("tag=errands&tag=home" in url for url in urls), urls
    assert any("priority=high&priority=low" in url for url in urls), urls
    assert any(f"list_id={list_id}" in url for url in urls) and any("list_id=none" in url for url in urls), urls
    posts = api_calls(requests_seen, "POST", "/lists")
    assert len(posts) == 2 and all(len(post.all_headers()["idempotency-key"]) == 36 for post in posts)
    [rename] = api_calls(requests_seen, "PUT", "/lists")
    [delete] = api_calls(requests_seen, "DELETE", "/lists")
    assert (rename.all_headers()["if-match"], delete.all_headers()["if-match"]) == ('"1"', '"2"')


def test_filters_and_load_more_follow_the_link_header(page: Page, requests_seen, web_origin, app_url, tmp_path):
    with api_server(app_url, tmp_path, CORS_ORIGINS=web_origin) as (base, _):
        for n in range(1, 26):
            task = seed(base, "carol", f"Task {n:02d}")
            if n % 4 == 0:  # 6 completed, 19 pending: neither is a whole page
                url = f"{base}/api/carol/tasks/{task['id']}/complete"
                httpx.patch(url, json={"completed": True}, headers=bearer(token_for("carol"))).raise_for_status()

        open_page(page, f"{web_origin}/index.html", base, "carol")
        paste_token_and_load(page, "carol")
        tasks = page.get_by_test_id("task")
        expect(tasks).to_have_count(20)
        expect(page.get_by_test_id("task-count")).to_have_text("20 tasks shown, more available")
        expect(tasks.first.get_by_test_id("task-title")).to_have_text("Task 25")  # newest first

        page.get_by_role("button", name="Load more").click()
        expect(tasks).to_have_count(25)
        expect(page.get_by_role("button", name="Load more")).to_be_hidden()
        expect(page.get_by_test_id("task-count")).to_have_text("25 tasks shown")
        expect(tasks.last.get_by_test_id("task-title")).to_have_text("Task 01")
        [first_page, second_page] = api_calls(requests_seen, "GET", "/tasks")
        assert "limit=20" in first_page.url and "cursor=" not in first_page.url
        assert "cursor=" in second_page.url, "Load more follows the Link header"

        page.get_by_label("Status").select_option("completed")
        expect(tasks).to_have_count(6)
        for checkbox in tasks.get_by_role("checkbox").all():
            expect(checkbox).to_be_checked()
        page.get_by_label("Status").select_option("pending")
        expect(tasks).to_have_count(19)
        expect(page.get_by_role("button", name="Load more")).to_be_hidden()
        for checkbox in tasks.get_by_role("checkbox").all():
            expect(checkbox).not_to_be_checked()

        # Completing a task under the "pending" filter takes it off the list. A click, not
        # check(): check() waits to see the box checked, and the row may already be gone.
        task_item(page, "Task 25").get_by_role("checkbox").click()
        expect(tasks).to_have_count(18)
        expect(task_item(page, "Task 25")).to_have_count(0)
        done = httpx.get(f"{base}/api/carol/tasks?status=completed&q=Task 25", headers=bearer(token_for("carol")))
        assert [task["title"] for task in done.json()] == ["Task 25"]

        page.get_by_label("Status").select_option("all")
        page.get_by_label("Sort").select_option("title")
        page.get_by_label("Search").fill("task 1")
        page.get_by_label("Search").press("Enter")
        expect(tasks.get_by_test_id("task-title")).to_have_text([f"Task {n}" for n in range(10, 20)])


def test_an_edit_of_a_task_changed_elsewhere_is_refused_and_the_list_reloaded(
    page: Page, requests_seen, web_origin, app_url, admin, tmp_path
):
    with api_server(app_url, tmp_path, CORS_ORIGINS=web_origin) as (base, _):
        task = seed(base, "dave", "Draft the plan")
        assert "version" in task, "the API returns a version for If-Match"

        open_page(page, f"{web_origin}/index.html", base, "dave")
        paste_token_and_load(page, "dave")
        expect(page.get_by_test_id("task")).to_have_count(1)

        # Someone else (another tab, another device) renames it behind the page's back.
        changed = httpx.put(
            f"{base}/api/dave/tasks/{task['id']}",
            json={"title": "Plan, changed elsewhere"},
            headers=bearer(token_for("dave")),
        )
        assert changed.status_code == 200, changed.text

        task_item(page, "Draft the plan").get_by_role("button", name="Edit").click()
        editor = task_item(page, "Draft the plan").get_by_test_id("task-editor")
        editor.get_by_label("Title").fill("Plan, edited in the page")
        editor.get_by_role("button", name="Save").click()
        expect(error_area(page)).to_contain_text("changed elsewhere; the list was reloaded")
        expect(error_area(page)).to_contain_text("412")
        expect(page.get_by_test_id("task-title")).to_have_text(["Plan, changed elsewhere"])
        assert row(admin, task["id"])[1] == "Plan, changed elsewhere", "the stale edit must not be applied"
        [put] = api_calls(requests_seen, "PUT")
        assert put.all_headers()["if-match"] == f'"{task["version"]}"'

        # With the reloaded version the same edit goes through.
        task_item(page, "Plan, changed elsewhere").get_by_role("button", name="Edit").click()
        editor = task_item(page, "Plan, changed elsewhere").get_by_test_id("task-editor")
        editor.get_by_label("Title").fill("Plan, edited in the page")
        editor.get_by_role("button", name="Save").click()
        expect(page.get_by_test_id("task-title")).to_have_text(["Plan, edited in the page"])
        expect(error_area(page)).to_be_hidden()
        assert row(admin, task["id"])[1] == "Plan, edited in the page"


def test_a_retried_add_after_a_lost_answer_creates_one_task(
    page: Page, requests_seen, web_origin, app_url, admin, tmp_path
):
    with api_server(app_url, tmp_path, CORS_ORIGINS=web_origin) as (base, output):
        open_page(page, f"{web_origin}/index.html", base, "erin")
        paste_token_and_load(page, "erin")
        expect(page.get_by_test_id("task-count")).to_have_text("No tasks match.")

        # The request reaches the server, but its answer never reaches the page.
        def lose_the_answer(route):
            route.fetch()
            route.abort("connectionreset")

        page.route(f"{base}/api/erin/tasks", lose_the_answer)
        add_in_page(page, "Pay the rent")
        expect(error_area(page)).to_contain_text("Could not reach the API")
        assert admin.execute("select title from tasks").fetchall() == [("Pay the rent",)]

        page.unroute(f"{base}/api/erin/tasks")
        page.get_by_role("button", name="Add task").click()  # the user tries again
        expect(page.get_by_role("status")).to_contain_text('"Pay the rent" was already added')
        expect(page.get_by_test_id("task")).to_have_count(1)
        assert admin.execute("select title from tasks").fetchall() == [("Pay the rent",)]
    keys = {post.all_headers()["idempotency-key"] for post in api_calls(requests_seen, "POST")}
    assert len(keys) == 1, "the retry reuses the key of the draft"
    assert answered(output, "POST", TASKS_ROUTE) == [201, 201], "both reached the server; the second was a replay"


@pytest.mark.parametrize("cors_origins", [None, "https://app.example.com"], ids=["no-cors-origins", "another-origin"])
def test_an_origin_the_api_does_not_allow_gets_nothing(page: Page, web_origin, app_url, admin, tmp_path, cors_origins):
    env = {"CORS_ORIGINS": cors_origins} if cors_origins else {}
    with api_server(app_url, tmp_path, **env) as (base, output):
        seed(base, "frank", "Visible only to allowed origins")
        open_page(page, f"{web_origin}/index.html", base, "frank")
        paste_token_and_load(page, "frank")
        expect(error_area(page)).to_contain_text("Could not reach the API")
        expect(error_area(page)).to_contain_text(f"this page's origin ({web_origin}) is not in its CORS_ORIGINS")
        expect(page.get_by_test_id("task")).to_have_count(0)

        add_in_page(page, "Smuggled in")
        expect(error_area(page)).to_contain_text("Could not reach the API")
        assert admin.execute("select title from tasks").fetchall() == [("Visible only to allowed origins",)]
    # The browser's preflights reached the API and were refused, so neither the list nor the
    # add was ever sent: the one POST in the log is the test's own seeding.
    preflights = answered(output, "OPTIONS")
    assert len(preflights) >= 2 and all(status >= 400 for status in preflights), preflights
    assert answered(output, "GET", TASKS_ROUTE) == []
    assert answered(output, "POST", TASKS_ROUTE) == [201]


def test_the_page_served_by_the_api_works_under_its_content_security_policy(page: Page, app_url, tmp_path):
    with api_server(app_url, tmp_path, DEMO_PAGE="true") as (base, output):
        response = page.goto(f"{base}/demo/")
        assert response.ok
        csp = response.header_value("content-security-policy")
        assert csp.startswith("default-src 'self'") and "unsafe-inline" not in csp, csp
        # Served by the API itself, the page points at it without being told.
        expect(page.get_by_label("API base URL")).to_have_value(base)
        page.get_by_label("User id").fill("grace")

        mint_in_browser(page, "not-the-servers-secret-but-long-enough-0123456789")
        expect(error_area(page)).to_contain_text("401 Unauthorized: bad signature")
        token = page.get_by_label("Token (JWT)").input_value()
        assert token.count(".") == 2
        assert token not in error_area(page).inner_text(), "the token is never shown in an error"

        page.get_by_label("Dev secret (JWT_SECRET)").fill(JWT_SECRET)
        page.get_by_role("button", name="Mint token").click()
        expect(page.get_by_test_id("task-count")).to_have_text("No tasks match.")
        expect(error_area(page)).to_be_hidden()

        add_in_page(page, "")
        expect(error_area(page)).to_contain_text("422 Unprocessable")
        expect(error_area(page)).to_contain_text("title:")

        add_in_page(page, "Same origin, strict CSP")
        expect(task_item(page, "Same origin, strict CSP")).to_have_count(1)
        assert page.evaluate("window.cspViolations") == []
    assert answered(output, "OPTIONS") == [], "same origin: no CORS preflight"
