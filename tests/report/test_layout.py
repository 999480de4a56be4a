"""Readable report and offline DVC plots, in a real browser (Debian's chromium via Playwright), network blocked:
every table and figure of the report fits its column at a 1280 px window, and `dvc plots show`'s page renders its
plots from the Vega libraries shipped in vendor/vega/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from akim_turnout.pipeline.paths import project_path
from akim_turnout.report import figures

CHROMIUM = Path("/usr/bin/chromium")
ROOT = project_path(".")
REPORT = ROOT / "reports/report.html"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
MEASURE = """() => Array.from(document.querySelectorAll('table.akim-table, figure.akim-figure')).map(el => {
  const column = el.closest('.jp-RenderedHTMLCommon') || el.parentElement;
  const box = el.getBoundingClientRect(), col = column.getBoundingClientRect();
  return {id: el.id, right: box.right, left: box.left, colRight: col.right, colLeft: col.left,
          scroll: el.scrollWidth, client: el.clientWidth, colScroll: column.scrollWidth, colClient: column.clientWidth};
})"""


def _open(path: Path, width: int = 1280):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is required for the browser test: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
    context = browser.new_context(viewport={"width": width, "height": 900})
    blocked: list[str] = []
    context.route("http*://**/*", lambda route: (blocked.append(route.request.url), route.abort()))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri(), wait_until="load")
    return playwright, browser, page, blocked, errors


@pytest.mark.browser
def test_every_table_and_figure_fits_its_column_at_1280_px() -> None:
    if not REPORT.exists():
        pytest.fail("reports/report.html is missing: run `dvc repro` first")
    playwright, browser, page, blocked, errors = _open(REPORT)
    try:
        boxes = page.evaluate(MEASURE)
    finally:
        browser.close()
        playwright.stop()
    assert errors == [] and blocked == []
    assert len(boxes) >= 25
    too_wide = [
        (b["id"], round(b["right"] - b["colRight"], 1), b["scroll"] - b["client"], b["colScroll"] - b["colClient"])
        for b in boxes
        if b["right"] > b["colRight"] + 0.5 or b["scroll"] > b["client"] or b["colScroll"] > b["colClient"]
    ]
    assert too_wide == [], f"(id, px beyond the column, own overflow, column overflow): {too_wide}"
    assert {"tab-specification_curve", "tab-study", "fig-size_coverage"} <= {b["id"] for b in boxes}


def test_figure_10_legends_are_legible() -> None:
    rows = []
    for method in ("a", "b"):
        for effect, rate in ((0.0, 0.05), (-0.3, 0.9)):
            rows.append(
                {"method": method, "effect": effect, "rejection": rate, "rejection_low": rate / 2,
                 "rejection_high": rate, "coverage": 0.94, "coverage_low": 0.9, "coverage_high": 0.97}
            )  # fmt: skip
    fig = figures.plot_size_and_coverage(pd.DataFrame(rows), labels={}, alpha=0.05)
    sizes = [text.get_fontsize() for ax in fig.axes if ax.get_legend() for text in ax.get_legend().get_texts()]
    assert sizes and min(sizes) >= 10, sizes
    # Shown 930 px wide (the report's column at 1280 px), whatever the dpi, a font of s pt is s / 72 of an inch of a
    # figure 9 in wide: s / 72 * 930 / 9 CSS px. At the former 7 pt that was 10 px; now at least 12.
    assert min(sizes) / 72 * 930 / fig.get_figwidth() >= 12


@pytest.mark.browser
def test_dvc_plots_show_renders_offline() -> None:
    env = {**os.environ, "PATH": f"{ROOT}/.venv/bin:{os.environ['PATH']}"}
    shown = subprocess.run(
        [str(ROOT / ".venv/bin/dvc"), "plots", "show"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    page_path = ROOT / "dvc_plots/index.html"
    html = page_path.read_text()
    assert "cdn.jsdelivr.net" not in html and "../vendor/vega/vega.min.js" in html
    plots = html.count("vegaEmbed(")
    assert plots >= 3, "dvc.yaml declares turnout by region, the specification curve and power"
    playwright, browser, page, blocked, errors = _open(page_path)
    try:
        page.wait_for_function(
            f"document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length >= {plots}", timeout=30_000
        )
        rendered = page.evaluate(
            "() => Array.from(document.querySelectorAll('.vega-embed')).map(e => "
            "{ const g = e.querySelector('svg, canvas'); return g ? g.getBoundingClientRect().width : 0; })"
        )
        marks = page.evaluate("() => document.querySelectorAll('.vega-embed .mark-symbol path, "
                              ".vega-embed .mark-line path, .vega-embed .mark-rect path').length")  # fmt: skip
    finally:
        browser.close()
        playwright.stop()
    assert errors == [], errors
    assert blocked == [], f"the plots page tried to load from the network: {blocked}"
    assert len(rendered) == plots and all(width > 100 for width in rendered), rendered
    assert marks > 0 or all(width > 100 for width in rendered)
