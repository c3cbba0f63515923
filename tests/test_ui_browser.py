"""`repost ui` in a real Chromium (Playwright's Python package, driving Debian's chromium:
no browser is downloaded). Flows are recorded by a real `repost record` from a real client
to a real upstream that counts what reaches it; the page is the one `repost ui` serves.

One browser for the module; each test opens its own page.
"""

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from .helpers import RecordingProxy, post_flow, store_flows, wait_for
from .ui_harness import UiServer
from .upstream import StreamScript, Upstream

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
pytest.importorskip("playwright", reason="Playwright's Python package is in the test extra: pip install -e '.[test]'")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Scene:
    """A recording proxy, an upstream that counts, `repost ui` on the same database."""

    def __init__(self, folder: Path, confdir: Path):
        self.db = folder / "ui.db"
        self.upstream = Upstream().start()
        self.proxy = RecordingProxy(self.db, confdir, env={"REPOST_KEY_FILE": os.environ.get("REPOST_KEY_FILE", str(folder / "key"))})
        self.client = httpx.Client(proxy=self.proxy.url, trust_env=False, timeout=10)
        self.ui = UiServer(self.db)

    def send(self, path: str, **kw) -> httpx.Response:
        """A POST through the recording proxy; returns once the client has the response."""
        return self.client.post(f"{self.upstream.url}{path}", **kw)

    def recorded(self, n: int) -> None:
        from .helpers import count_flows

        wait_for(lambda: count_flows(self.db) >= n, 10, what=f"{n} flows recorded")

    def stop(self) -> None:
        self.client.close()
        self.ui.stop()
        self.proxy.stop()
        self.upstream.stop()


@pytest.fixture(scope="module")
def scene(tmp_path_factory, confdir):
    s = Scene(tmp_path_factory.mktemp("ui-browser"), confdir)
    s.upstream.set_stream(StreamScript(["Hello", " from", " a", " recorded", " stream", "."], deadline=0.06))
    s.send("/create", json={"item": "book", "qty": 2})
    s.send("/create", json={"item": "lamp", "qty": 1})
    s.send("/pay", json={"amount": 5}, headers={"Idempotency-Key": "key-1"})
    s.send("/v1/chat/completions", json={"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    s.send("/orders/search", json={"q": "red"}, headers={"X-Http-Method-Override": "GET"})
    s.recorded(5)
    yield s
    s.stop()


def open_page(browser, scene, path: str = "/"):
    page = browser.new_page(viewport={"width": 1400, "height": 800})
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(scene.ui.url.replace("/?", f"{path}?") if path != "/" else scene.ui.url)
    page.wait_for_selector("#rows tr.flow")
    page.problems = problems
    return page


def ids_shown(page) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all("#rows tr.flow", "rows => rows.map(r => r.dataset.id)")]


def test_the_page_loads_with_the_token_and_is_refused_without(browser, scene):
    page = browser.new_page()
    refused = page.goto(scene.ui.base + "/")
    assert refused.status == 403
    assert page.locator("#rows").count() == 0
    page.close()
    page = open_page(browser, scene)
    assert "token=" not in page.url  # the token left the address bar
    assert len(ids_shown(page)) >= 5
    assert page.problems == []
    page.close()


def test_filter_by_path_and_by_a_mitmproxy_expression(browser, scene):
    page = open_page(browser, scene)
    page.fill("input[name=path]", "/create")
    page.press("input[name=path]", "Enter")
    page.wait_for_function("() => [...document.querySelectorAll('#rows tr.flow td.path')].every(td => td.textContent.startsWith('/create'))"
                           " && document.querySelectorAll('#rows tr.flow').length === 2")  # fmt: skip
    page.fill("input[name=path]", "")
    page.fill("#filter-expr", "~bq lamp")
    page.press("#filter-expr", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#rows tr.flow').length === 1")
    page.click("#rows tr.flow")
    page.wait_for_selector("#detail-pane .tree")
    assert "lamp" in page.inner_text("#detail-pane")
    page.close()


def test_open_a_flow_with_the_keyboard(browser, scene):
    page = open_page(browser, scene)
    newest = ids_shown(page)[0]
    page.keyboard.press("j")
    page.wait_for_selector(f"#detail-pane[data-flow='{newest}']")
    page.keyboard.press("j")
    page.wait_for_selector(f"#detail-pane[data-flow='{ids_shown(page)[1]}']")
    page.keyboard.press("k")
    page.wait_for_selector(f"#detail-pane[data-flow='{newest}']")
    text = page.inner_text("#detail-pane")
    assert "request" in text and "response" in text and "/orders/search" in text
    assert "X-Http-Method-Override" in text
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"
    page.close()


def test_a_stream_shows_its_events_on_a_timeline_with_the_assembled_text(browser, scene):
    page = open_page(browser, scene)
    page.fill("input[name=path]", "/v1/chat/completions")
    page.press("input[name=path]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#rows tr.flow').length === 1")
    page.click("#rows tr.flow")
    page.wait_for_selector("#timeline .tick")
    assert page.inner_text("#timeline .assembled") == "Hello from a recorded stream."
    assert page.locator("#timeline .tick").count() == 7  # six words and [DONE]
    page.close()


def test_a_flow_recorded_while_the_page_is_open_appears_within_a_second(browser, scene):
    page = open_page(browser, scene)
    page.wait_for_selector("#live.on")
    before = set(ids_shown(page))
    response = scene.send("/create", json={"item": "live"})
    answered = time.monotonic()
    assert response.status_code == 201
    page.wait_for_function(
        "(known) => [...document.querySelectorAll('#rows tr.flow')].some(r => !known.includes(Number(r.dataset.id)))",
        arg=list(before), timeout=5000,
    )  # fmt: skip
    elapsed = time.monotonic() - answered
    assert elapsed < 1.0, f"the new flow appeared {elapsed:.2f} s after its response"
    assert ids_shown(page)[0] not in before  # at the top, newest first
    page.close()


def test_compare_two_flows(browser, scene):
    page = open_page(browser, scene)
    page.fill("input[name=path]", "/create")
    page.press("input[name=path]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#rows tr.flow').length >= 2")
    boxes = page.locator("#rows tr.flow input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#compare-picked")
    page.wait_for_selector("#diff-result table.diff")
    text = page.inner_text("#diff-result")
    assert "request.body.item" in text and "response.body.id" in text
    page.fill("#compare-form textarea[name=ignore]", "id\ncreated\nitem\nitems\nqty")
    page.click("#compare-form button[type=submit]")
    page.wait_for_function("() => !document.querySelector('#diff-result').textContent.includes('response.body.id')")
    page.close()


def _open_replay(page, path: str) -> int:
    page.fill("input[name=path]", path)
    page.press("input[name=path]", "Enter")
    page.wait_for_function("(p) => [...document.querySelectorAll('#rows tr.flow td.path')].every(td => td.textContent === p)", arg=path)
    page.click("#rows tr.flow >> nth=-1")  # the oldest: the recorded one, not a replay
    flow_id = int(page.get_attribute("#rows tr.flow >> nth=-1", "data-id"))
    page.wait_for_selector(f"#detail-pane[data-flow='{flow_id}']")
    page.click("#replay-open")
    page.wait_for_selector("#replay-plan[data-safety]")
    return flow_id


def test_replay_a_safe_flow_and_see_it_land(browser, scene):
    page = open_page(browser, scene)
    flow_id = _open_replay(page, "/pay")
    assert page.get_attribute("#replay-plan", "data-safety") == "keyed"
    assert page.is_hidden("#replay-confirm")
    before = scene.upstream.count("/pay")
    page.click("#replay-send")
    page.wait_for_selector("#replay-outcome")
    assert "201" in page.inner_text("#replay-outcome")
    assert scene.upstream.count("/pay") == before + 1
    page.click("#replay-close")
    # The replay is pushed into the list, marked as a replay of the flow.
    page.wait_for_function("(id) => [...document.querySelectorAll('#rows tr.flow')].some(r => r.textContent.includes('↺ ' + id))", arg=flow_id)
    page.close()


def test_an_unsafe_replay_sends_nothing_until_confirmed(browser, scene):
    page = open_page(browser, scene)
    flow_id = _open_replay(page, "/create")
    assert page.get_attribute("#replay-plan", "data-safety") == "unsafe"
    assert "non-idempotent" in page.inner_text("#replay-plan")
    before = scene.upstream.count("/create")
    page.click("#replay-send")  # no confirmation typed
    page.wait_for_selector("#replay-result .warn")
    page.fill("#replay-confirm-input", str(flow_id + 1000))  # another flow's id
    page.click("#replay-send")
    page.wait_for_function("() => document.querySelector('#replay-result').textContent.includes('nothing sent')")
    assert scene.upstream.count("/create") == before
    page.fill("#replay-confirm-input", str(flow_id))
    page.click("#replay-send")
    page.wait_for_selector("#replay-outcome")
    assert scene.upstream.count("/create") == before + 1
    page.close()


def test_recorded_script_never_runs(browser, scene, tmp_path):
    """A body, headers and a URL carrying script, in every place the page shows them."""
    probe = Upstream().start()
    hit = f"{probe.url}/pwned"
    payloads = [
        f"<img src=x onerror=\"window.__pwned=1;fetch('{hit}')\">",
        f"</script><script>window.__pwned=2;fetch('{hit}')</script>",
        f"javascript:window.__pwned=3;fetch('{hit}')",
        f"<svg onload=\"window.__pwned=4\"></svg>",
    ]
    evil = " ".join(payloads)
    flows = [
        post_flow(
            url="http://127.0.0.1:9/x%3Cimg%20src=x%20onerror=window.__pwned=5%3E?next=javascript:window.__pwned=6",
            body=json.dumps({"comment": evil}).encode(), headers={**JSON, "X-Evil": evil, "Referer": payloads[2]},
            response_body=evil.encode(), response_headers={"content-type": "text/html", "Link": f"<{payloads[2]}>"},
        ),
        post_flow(url="http://127.0.0.1:9/svg", body=b"x", response_body=evil.encode(), response_headers={"content-type": "image/svg+xml"}),
        post_flow(url="http://127.0.0.1:9/form", body=f"a={evil}".encode(), headers={"content-type": "application/x-www-form-urlencoded"},
                  response_body=f"data: {evil}\n\n".encode(), response_headers={"content-type": "text/event-stream"}),
    ]  # fmt: skip
    ids = store_flows(scene.db, flows)
    page = open_page(browser, scene)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for flow_id in ids:
        page.wait_for_selector(f"#rows tr.flow[data-id='{flow_id}']")
        page.click(f"#rows tr.flow[data-id='{flow_id}']")
        page.wait_for_selector(f"#detail-pane[data-flow='{flow_id}']")
        assert "onerror" in page.inner_text("#detail-pane")  # shown, as text
        for kind in ("curl", "httpie", "python"):
            page.click(f"text=Copy as {kind}")
        page.click("#replay-open")
        page.wait_for_selector("#replay-plan[data-safety]")
        page.click("#replay-close")
    page.goto(f"{scene.ui.base}/#compare/{ids[0]}/{ids[1]}")
    page.wait_for_selector("#diff-result table.diff")
    page.wait_for_timeout(300)  # a payload that ran would have run by now: give it the chance
    assert page.evaluate("window.__pwned") is None
    assert probe.count("/pwned") == 0
    assert dialogs == []
    # Nothing recorded became markup: no element but the page's own, no link but ours.
    assert page.eval_on_selector_all("a[href^='javascript'], script:not([src='/static/app.js']), svg, iframe, object", "n => n.length") == 0
    assert page.eval_on_selector_all("img", "imgs => imgs.filter(i => !i.getAttribute('src').startsWith('/api/')).length") == 0
    page.close()
    probe.stop()


def test_screenshots(browser, scene, tmp_path):
    """The README's pictures, taken by this browser (REPOST_SCREENSHOTS=1 writes docs/screenshots)."""
    folder = SCREENSHOTS if os.environ.get("REPOST_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, scene)
    page.click("#rows tr.flow >> text=/pay >> nth=-1")
    page.wait_for_selector("#detail-pane .tree")
    page.screenshot(path=str(folder / "list.png"))
    page.fill("input[name=path]", "/v1/chat/completions")
    page.press("input[name=path]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#rows tr.flow').length === 1")
    page.click("#rows tr.flow")
    page.wait_for_selector("#timeline .tick")
    page.locator("#timeline").evaluate("t => t.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(folder / "stream.png"))
    page.fill("input[name=path]", "/create")
    page.press("input[name=path]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#rows tr.flow').length >= 2")
    boxes = page.locator("#rows tr.flow input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#compare-picked")
    page.wait_for_selector("#diff-result table.diff")
    page.screenshot(path=str(folder / "compare.png"))
    for name in ("list", "stream", "compare"):
        assert (folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()
