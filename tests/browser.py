"""Open an HTML page in headless Chromium: the DOM after its scripts ran, what a probe script read from it, the
errors it raised, and a screenshot. Tests skip (with the reason) only where no browser is installed."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--hide-scrollbars",
)

# Injected first into <head>: every script error, failed resource load (nothing may be fetched) and console.error
# call is recorded into <html data-errors="[…]">, which --dump-dom then shows.
RECORDER = """<script>
(function () {
  var errors = [], root = document.documentElement;
  function record(message) { errors.push(String(message)); root.setAttribute('data-errors', JSON.stringify(errors)); }
  window.addEventListener('error', function (e) {
    if (e.target && e.target !== window) record('failed to load ' + (e.target.src || e.target.href));
    else record('error: ' + e.message + ' (line ' + e.lineno + ')');
  }, true);
  window.addEventListener('unhandledrejection', function (e) { record('unhandled rejection: ' + e.reason); });
  console.error = function () { record('console.error: ' + Array.prototype.join.call(arguments, ' ')); };
  root.setAttribute('data-errors', '[]');
})();
</script>"""


# After the page's scripts: each sortable table's sort state and its rows' sort values in the chosen column, then
# the same after a click on that column's header (which flips the direction).
SORT_PROBE = """
var out = {};
document.querySelectorAll('table.sortable').forEach(function (table) {
  var col = parseInt((table.getAttribute('data-sorted') || '0:asc').split(':')[0], 10);
  function values() {
    return Array.prototype.map.call(table.tBodies[0].rows, function (row) {
      var cell = row.cells[col];
      return cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : null;
    });
  }
  var entry = {sorted: table.getAttribute('data-sorted'), rows: table.tBodies[0].rows.length, before: values()};
  table.tHead.rows[0].cells[col].click();
  entry.clicked = table.getAttribute('data-sorted');
  entry.after = values();
  out[table.id || ('table' + Object.keys(out).length)] = entry;
});
out.hacked = window.hacked === 1;
document.documentElement.setAttribute('data-probe', JSON.stringify(out));
"""


def numbers(values: list[str | None]) -> list[float]:
    return [float(v) for v in values if v is not None]


def check_sorted(entry: dict, direction: str = "asc") -> None:
    """Numbers in order, missing values last; after the click, the other direction (missing still last)."""
    before, after = entry["before"], entry["after"]
    assert before == sorted(before, key=lambda v: v is None) and after == sorted(after, key=lambda v: v is None)
    assert numbers(before) == sorted(numbers(before), reverse=direction == "desc")
    assert numbers(after) == sorted(numbers(after), reverse=direction == "asc")


@dataclass
class Rendered:
    dom: str
    probe: object
    errors: list[str]
    screenshot: Path | None


def browser() -> str:
    """The path of a Chromium-family browser, or skip the test saying how to install one."""
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    pytest.skip("no headless browser found (looked for chromium, google-chrome): `apt-get install chromium`")


def render(
    page: Path, work: Path, *, probe: str = "", screenshot: bool = True, size: tuple[int, int] = (1400, 1800)
) -> Rendered:
    """Load ``page`` with the error recorder and ``probe`` (a script run after the page's own, at the end of the
    body, that stores JSON in ``document.documentElement.dataset.probe``); return the DOM after load, the probe's
    JSON, the recorded errors plus the console errors Chromium logged, and (``screenshot``) a PNG of ``page`` itself."""
    exe = browser()
    work.mkdir(parents=True, exist_ok=True)
    text = page.read_text(encoding="utf-8")
    probed = work / f"probed-{page.name}"
    text = text.replace("<head>", "<head>" + RECORDER, 1)
    if probe:
        text = text.replace("</body>", f"<script>{probe}</script></body>", 1)
    probed.write_text(text, encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [exe, *FLAGS, f"--user-data-dir={work / 'profile'}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    dumped = run("--enable-logging=stderr", "--v=0", "--dump-dom", probed.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    errors = json.loads(html.unescape(_attribute(dom, "data-errors") or '["the error recorder did not run"]'))
    # Chromium logs console messages as "…:CONSOLE(line)] "message", source: …" on stderr.
    errors += [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line and "Uncaught" in line]
    raw_probe = _attribute(dom, "data-probe")
    image = None
    if screenshot:
        image = work / f"{page.stem}.png"
        shot = run(f"--screenshot={image}", f"--window-size={size[0]},{size[1]}", page.as_uri())
        assert shot.returncode == 0 and image.is_file(), shot.stderr[-2000:]
    return Rendered(dom, json.loads(html.unescape(raw_probe)) if raw_probe else None, errors, image)


def _attribute(dom: str, name: str) -> str | None:
    found = re.search(rf'<html[^>]*\s{name}="([^"]*)"', dom)
    return found.group(1) if found else None


def fetches(page_html: str) -> list[str]:
    """Every URL the page would fetch over the network (a self-contained page has none; the SVG namespace is a
    name, not a fetch)."""
    attributes = re.findall(r"""(?:src|href)\s*=\s*["']?((?:https?:)?//[^"' >]+)""", page_html)
    urls = re.findall(r"""(?:url\(|@import)\s*["']?((?:https?:)?//[^)"' ]+)""", page_html)
    return attributes + urls
