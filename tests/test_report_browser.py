"""report.html renders in headless Chromium: the estimates table and every figure are on the page, and the page
raises no error in the browser's console.

A copy of the page gets a collector script first in ``<head>`` (``window.onerror``, unhandled rejections and
``console.error``/``console.warn``) and a reporter last in ``<body>`` that writes what it collected, and whether
each image decoded, into the DOM; ``chromium --headless --dump-dom`` prints that DOM. The browser's own log
(``--enable-logging=stderr``) must hold no console line either. A screenshot is kept in the test's ``tmp_path``
(its path is printed; run with ``-s`` to see it). Skipped when Chromium is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import causalcts
from causalcts.workflows import analyze, parse_spec

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
# No skip: a missing browser fails the test (`.ci/run` installs Debian's chromium; locally: apt-get install chromium).


@pytest.fixture(autouse=True)
def _need_chromium():
    if CHROMIUM is None:
        pytest.fail("headless Chromium is not installed (apt-get install chromium): the report cannot be rendered")


RAW = ["team", "week", "developers", "crs_merged", "deployments", "rollbacks", "interventions", "pages",
       "oncall_builders", "ai_share", "dev_cost"]  # fmt: skip

COLLECT = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push("error: " + (e.message || e.type)); }, true);
window.addEventListener("unhandledrejection", function (e) { window.__errors.push("rejection: " + e.reason); });
["error", "warn"].forEach(function (k) {
  var orig = console[k];
  console[k] = function () { window.__errors.push(k + ": " + Array.from(arguments).join(" ")); };
});
</script>"""

REPORT = """<script>
var imgs = Array.from(document.images).map(function (i) {
  return {alt: i.alt, ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth};
});
var out = document.createElement("pre");
out.id = "__browser_check";
out.textContent = JSON.stringify({errors: window.__errors, images: imgs});
document.body.appendChild(out);
</script>"""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-extensions", "--virtual-time-budget=5000"]  # fmt: skip


class _Tables(HTMLParser):
    """Rows of the table with a given id, from the dumped DOM."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    causalcts.simulate(60, 12, seed=7).data[RAW].to_csv(folder / "rollout.csv", index=False)
    spec = parse_spec({"name": "Browser check", "data": "rollout.csv", "entity": "team", "time": "week",
                       "treatment": "ai_share", "outcomes": ["cr_velocity"], "controls": ["rollback_rate"],
                       "methods": ["within", "bias-corrected", "diff-gmm"]}, base=folder)[0]  # fmt: skip
    res = analyze(spec, folder / "report", progress=False)
    html = (res.out_dir / "report.html").read_text()
    page = folder / "checked.html"
    page.write_text(html.replace("<head>", "<head>\n" + COLLECT, 1).replace("</body>", REPORT + "\n</body>", 1))
    dump = subprocess.run([CHROMIUM, *FLAGS, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    shot = folder / "report.png"
    subprocess.run([CHROMIUM, *FLAGS, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, text=True, timeout=120)  # fmt: skip
    print(f"\nScreenshot of the rendered report: {shot}")
    return {"results": res.results, "dom": dump.stdout, "log": dump.stderr, "shot": shot, "code": dump.returncode}


def _check(dom: str) -> dict:
    found = re.search(r'<pre id="__browser_check">(.*?)</pre>', dom, re.S)
    assert found, "the reporter script did not run: the page's scripts are blocked or the DOM was not dumped"
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text)


def test_chromium_renders_the_page(rendered):
    assert rendered["code"] == 0, rendered["log"][-2000:]
    assert "<h1>Browser check</h1>" in rendered["dom"]


def test_estimates_table_is_on_the_page(rendered):
    parser = _Tables("estimates-cr-velocity")
    parser.feed(rendered["dom"])
    header, *rows = parser.rows
    assert header == ["method", "term", "estimate", "std. error", "lower", "upper"]
    estimates = rendered["results"]["outcomes"]["cr_velocity"]["estimates"]
    assert len(rows) == len(estimates)
    assert [float(r[2]) for r in rows] == pytest.approx([e["estimate"] for e in estimates], rel=1e-3)  # 4 digits


def test_every_figure_is_displayed(rendered):
    images = _check(rendered["dom"])["images"]
    assert len(images) == len(rendered["results"]["figures"]) >= 6
    assert all(i["ok"] and i["width"] > 100 for i in images), images


def test_the_console_shows_no_errors(rendered):
    assert _check(rendered["dom"])["errors"] == []
    console = [ln for ln in rendered["log"].splitlines() if ":CONSOLE" in ln]
    assert console == []


def test_screenshot_is_kept(rendered):
    shot: Path = rendered["shot"]
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a blank page of that size compresses to a few kB
