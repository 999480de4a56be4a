"""The rendered report in a real browser (Debian's chromium via Playwright), with every network request blocked."""

from __future__ import annotations

from pathlib import Path

import pytest

from akim_turnout.data import processed as data
from akim_turnout.pipeline.parameters import stage_params
from akim_turnout.pipeline.paths import project_path

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
REPORT = project_path("reports/report.html")
SCREENSHOT = project_path("reports/report-screenshot.png")
TABLE_SCREENSHOTS = project_path("reports/table-screenshots")
# Flags for a root, offline, headless machine: no sandbox, no background calls to Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXPECTED_SECTIONS = [
    "Contents",
    "Summary",
    "Data and coverage",
    "Turnout by region and candidate mix",
    "Regional model (real data)",
    "Race-level models (simulated races)",
    "Method validation (simulation study)",
    "Diagnostics (election forensics)",
    "Later rounds (real races, descriptive)",
    "Limitations",
    "How to reproduce",
    "Provenance",
]


@pytest.fixture(scope="module")
def page():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is required for the browser test: apt-get install chromium")
    if not REPORT.exists():
        pytest.fail("reports/report.html is missing: run `dvc repro` (make test does) first")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        blocked: list[str] = []
        context.route("http*://**/*", lambda route: (blocked.append(route.request.url), route.abort()))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(REPORT.as_uri(), wait_until="load")
        page.wait_for_function("Array.from(document.images).every(img => img.complete)")
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.blocked, page.errors = blocked, errors
        yield page
        browser.close()


def test_report_opens_offline_without_page_errors(page) -> None:
    assert page.errors == []
    assert page.blocked == [], f"the report tried to load from the network: {page.blocked}"


def test_every_image_is_embedded_and_loaded(page) -> None:
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(img => [img.src.slice(0, 22), img.naturalWidth])")
    assert widths, "the report has no images"
    assert all(src.startswith("data:image/png") and width > 0 for src, width in widths), widths


def test_images_have_alt_text_and_numbered_captions(page) -> None:
    alts = page.eval_on_selector_all("figure img", "imgs => imgs.map(img => img.alt)")
    captions = page.eval_on_selector_all("figure figcaption", "els => els.map(e => e.innerText)")
    assert alts and all(len(alt) > 20 for alt in alts)
    assert [c.split(".")[0].split("Figure ")[-1] for c in captions] == [str(i + 1) for i in range(len(captions))]


def test_no_code_is_visible(page) -> None:
    assert page.locator(".jp-CodeCell .jp-InputArea").count() == 0
    assert "import " not in page.inner_text("body")


def test_expected_sections_and_key_numbers_are_present(page) -> None:
    headings = page.eval_on_selector_all("h1, h2, h3", "hs => hs.map(h => h.innerText.trim())")
    for section in EXPECTED_SECTIONS:
        assert any(section in heading for heading in headings), f"section {section!r} missing from {headings}"
    national = data.read_processed("national").set_index("round_id").loc[data.ROUND_2021]
    regional = data.read_processed("regional_2021")
    text = page.inner_text("body")
    for number in (
        f"{national['posts']:,.0f}",
        f"{national['cands_registered']:,.0f}",
        f"{regional['turnout_pct'].min():.1f}",
        f"{regional['turnout_pct'].max():.1f}",
    ):
        assert number in text, f"key number {number} not in the report"


def test_internal_links_resolve(page) -> None:
    targets = page.eval_on_selector_all("a[href^='#']", "links => links.map(a => a.getAttribute('href').slice(1))")
    assert targets, "the report has no table of contents or figure references"
    missing = [t for t in targets if page.locator(f"[id='{t}']").count() != 1]
    assert not missing, f"links without a unique target: {missing}"


def test_simulated_material_is_visibly_marked(page) -> None:
    simulated_captions = page.eval_on_selector_all(
        "figcaption, caption",
        "els => els.filter(e => e.innerText.includes('SIMULATED')).map(e => !!e.querySelector('.akim-badge'))",
    )
    assert len(simulated_captions) >= 8 and all(simulated_captions), simulated_captions
    banners = page.locator(".akim-banner .akim-badge")
    assert banners.count() >= 2, "simulated sections open with a banner"


def test_report_stays_small(page) -> None:
    assert REPORT.stat().st_size < 5_000_000


def test_every_figure_and_table_is_referenced_from_the_text(page) -> None:
    anchors = page.eval_on_selector_all("figure[id], table[id]", "els => els.map(e => e.id)")
    cited = set(page.eval_on_selector_all("a[href^='#']", "links => links.map(a => a.getAttribute('href').slice(1))"))
    assert anchors and not [a for a in anchors if a not in cited]


def test_tab_title_is_the_report_title(page) -> None:
    assert page.title() == stage_params("report")["title"]


def test_published_figures_show_their_source_and_quote_on_hover(page) -> None:
    cells = page.eval_on_selector_all("#tab-regional td[title]", "tds => tds.map(td => [td.innerText, td.title])")
    akmola_turnout = [title for text, title in cells if text == "75.5"]
    assert akmola_turnout and "Ақмола облысы – 75,5%" in akmola_turnout[0] and "https://" in akmola_turnout[0]
    assert len(cells) >= 40


def test_no_interval_or_effect_from_a_fit_that_is_not_estimable(page) -> None:
    rows = page.eval_on_selector_all(
        "#tab-regional_models tbody tr, #tab-regional_ames tbody tr",
        "trs => trs.map(tr => Array.from(tr.children).map(td => td.innerText))",
    )
    hidden = [row for row in rows if any(cell.startswith("not estimable") for cell in row)]
    assert hidden, "the two-predictor regional fit (3 residual df) is not estimable"
    for row in hidden:
        assert row.count("–") >= 4, row


def test_no_table_or_figure_is_wider_than_the_page(page) -> None:
    width = page.evaluate("document.documentElement.clientWidth")
    too_wide = page.eval_on_selector_all(
        "table, figure, img",
        f"els => els.filter(e => e.getBoundingClientRect().right > {width} + 1)"
        ".map(e => e.id || e.closest('[id]')?.id || e.tagName)",
    )
    assert too_wide == [], f"wider than the page ({width} px): {too_wide}"
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_each_table_has_a_screenshot_within_the_page(page) -> None:
    """One PNG per table in reports/table-screenshots/ (what a reader sees), each no wider than the page."""
    width = page.evaluate("document.documentElement.clientWidth")
    TABLE_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ids = page.eval_on_selector_all("table.akim-table", "tables => tables.map(t => t.id)")
    assert len(ids) >= 10
    page.evaluate(
        "() => document.querySelectorAll('details:not([open])').forEach(d => { d.open = true; d.dataset.shot = 1; })"
    )
    try:
        for table_id in ids:
            table = page.locator(f"#{table_id}")
            box = table.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (table_id, box)
            table.screenshot(path=str(TABLE_SCREENSHOTS / f"{table_id}.png"))
            assert (TABLE_SCREENSHOTS / f"{table_id}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        page.evaluate("() => document.querySelectorAll('details[data-shot]').forEach(d => { d.open = false; })")


def test_text_cells_align_left_and_numbers_right(page) -> None:
    aligned = page.eval_on_selector_all(
        "#tab-race_comparison tbody tr:first-child td",
        "tds => tds.map(td => [td.innerText, getComputedStyle(td).textAlign])",
    )
    assert aligned[0] == ["binomial GLM, cluster-robust", "left"] and aligned[1] == ["log(candidates)", "left"]
    assert all(align == "right" for _, align in aligned[2:]), aligned
    header = page.eval_on_selector_all("#tab-regional thead th", "ths => ths.map(th => getComputedStyle(th).textAlign)")
    assert header[0] == "left" and header[1] == "right"
