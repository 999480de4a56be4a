"""Building blocks of the HTML report: escaped tables, numbered figures with alt text, export without code.

Every string that comes from data passes through ``html.escape`` (pandas ``to_html`` escapes cells too), so a
region called ``<script>`` shows as text. Images are embedded as base64, so the report opens offline.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TEMPLATE_DIR = Path(__file__).parent / "templates"
SIMULATED_BADGE = '<span class="akim-badge">SIMULATED</span>'


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Numbering:
    """Numbers figures and tables in order of first mention, so text can reference them before they appear."""

    figures: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)

    @classmethod
    def in_order(cls, figures: Iterable[str] = (), tables: Iterable[str] = ()) -> Numbering:
        """Numbering fixed in advance, in order of appearance, whatever order the text cites them in."""
        return cls({k: i + 1 for i, k in enumerate(figures)}, {k: i + 1 for i, k in enumerate(tables)})

    def _number(self, registry: dict[str, int], key: str) -> int:
        return registry.setdefault(key, len(registry) + 1)

    def fig(self, key: str) -> str:
        """A link to figure ``key``: 'Figure N'."""
        return f'<a href="#fig-{escape(key)}">Figure {self._number(self.figures, key)}</a>'

    def tab(self, key: str) -> str:
        return f'<a href="#tab-{escape(key)}">Table {self._number(self.tables, key)}</a>'

    def figure_number(self, key: str) -> int:
        return self._number(self.figures, key)

    def table_number(self, key: str) -> int:
        return self._number(self.tables, key)


def figure_html(
    png: str | Path, *, key: str, caption: str, alt: str, numbering: Numbering, simulated: bool = False
) -> str:
    """A numbered <figure> with the PNG embedded, alt text and caption (trusted prose, escaped anyway)."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    number = numbering.figure_number(key)
    badge = f"{SIMULATED_BADGE} " if simulated else ""
    css = "akim-figure akim-simulated" if simulated else "akim-figure"
    return (
        f'<figure class="{css}" id="fig-{escape(key)}">'
        f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}"/>'
        f"<figcaption>{badge}<b>Figure {number}.</b> {escape(caption)}</figcaption></figure>"
    )


def format_cell(value: object, float_format: str = "{:,.2f}") -> str:
    """A table cell as printed: missing as an en dash, integers with thousands separators, floats by
    ``float_format``, anything else as text."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA or value == "":
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return float_format.format(float(value))
    return str(value)


NUMERIC_CLASS = ' class="num"'
_NUMBER = re.compile(r"^(< )?-?[\d,]+(\.\d+)?$")


def _is_numeric_column(values: pd.Series) -> bool:
    """Whether every non-empty cell of a column is a number (then it is right-aligned)."""
    present = [v for v in values if not (v is None or v == "" or (isinstance(v, float) and v != v))]
    return bool(present) and all(
        isinstance(v, (int, float, np.integer, np.floating)) or (isinstance(v, str) and _NUMBER.match(v))
        for v in present
    )


def table_html(
    frame: pd.DataFrame,
    *,
    key: str,
    caption: str,
    numbering: Numbering,
    simulated: bool = False,
    float_format: str = "{:,.2f}",
    cell_titles: pd.DataFrame | None = None,
) -> str:
    """A numbered table with every header and cell escaped; column names should carry their units, e.g.
    'turnout (%)'. ``cell_titles`` (same index and columns as ``frame``, or a subset of the columns) gives a cell
    its hover text, e.g. the source and quote of a published figure."""
    number = numbering.table_number(key)
    badge = f"{SIMULATED_BADGE} " if simulated else ""
    numeric = {column: _is_numeric_column(frame[column]) for column in frame.columns}
    head = "".join(f"<th{NUMERIC_CLASS if numeric[column] else ''}>{escape(column)}</th>" for column in frame.columns)
    rows = []
    for index, row in frame.iterrows():
        cells = []
        for column in frame.columns:
            title = None
            if cell_titles is not None and column in cell_titles.columns:
                title = cell_titles.at[index, column]
            attribute = f' title="{escape(title)}"' if isinstance(title, str) and title else ""
            attribute += NUMERIC_CLASS if numeric[column] else ""
            cells.append(f"<td{attribute}>{escape(format_cell(row[column], float_format))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    wrapper = "akim-simulated" if simulated else ""
    return (
        f'<div class="{wrapper}"><table class="akim-table" id="tab-{escape(key)}">'
        f"<caption>{badge}<b>Table {number}.</b> {escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def links_html(urls: Iterable[str]) -> str:
    """Escaped links for a source list."""
    return " ; ".join(f'<a href="{escape(u.strip())}">{escape(u.strip())}</a>' for u in urls if u.strip())


def banner_html(text: str) -> str:
    return f'<div class="akim-banner akim-simulated">{SIMULATED_BADGE} {escape(text)}</div>'


def toc_html(sections: Mapping[str, str]) -> str:
    """Table of contents linking to section anchors (anchor -> title)."""
    items = "".join(f'<li><a href="#{escape(anchor)}">{escape(title)}</a></li>' for anchor, title in sections.items())
    return f'<nav class="akim-toc"><h2 id="contents">Contents</h2><ol>{items}</ol></nav>'


def heading_html(anchor: str, title: str, level: int = 2) -> str:
    return f'<h{level} id="{escape(anchor)}">{escape(title)}</h{level}>'


def export_html(executed_notebook: str | Path, out_html: str | Path, title: str) -> Path:
    """Export an executed notebook to HTML with no code, no prompts and no network-loaded scripts."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(executed_notebook, as_version=4)
    notebook.metadata["title"] = title
    exporter = HTMLExporter(
        template_name="akim_report",
        extra_template_basedirs=[str(TEMPLATE_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    from nbconvert.preprocessors import TagRemovePreprocessor

    # Cells tagged "notebook-only" explain the notebook to someone running it; readers of the report do not need them.
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={"notebook-only"}), enabled=True)
    body, _ = exporter.from_notebook_node(notebook)
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(body, encoding="utf-8")
    return out_html


REPORT_TEMPLATES = TEMPLATE_DIR / "sections"


def _plain_text(text: object) -> str:
    """Text to pass to a building block that escapes it: a Markup string (rendered by a template, so already
    escaped) is unescaped first, so nothing is escaped twice."""
    from markupsafe import Markup

    return text.unescape() if isinstance(text, Markup) else str(text)


def template_environment(numbering: Numbering):
    """The Jinja2 environment of the report's templates (``templates/sections/``).

    Autoescape is on: every value a template prints is escaped (a region called ``<script>`` shows as text) unless it
    comes from one of the building blocks, which are the globals ``fig``, ``tab`` (links 'Figure N', 'Table N'),
    ``figure``, ``table``, ``heading``, ``banner``, ``links``, ``toc``, ``figure_number`` and ``table_number``.
    The filter ``fmt`` formats a number by a format spec (``{{ x | fmt(",.0f") }}``); undefined names are errors.
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from markupsafe import Markup

    def markup(function):
        return lambda *args, **kwargs: Markup(function(*args, **kwargs))

    def figure(png, *, caption, alt, **kwargs):
        return figure_html(png, caption=_plain_text(caption), alt=_plain_text(alt), numbering=numbering, **kwargs)

    def table(frame, *, caption, **kwargs):
        return table_html(frame, caption=_plain_text(caption), numbering=numbering, **kwargs)

    env = Environment(
        loader=FileSystemLoader(str(REPORT_TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )
    env.globals.update(
        fig=markup(numbering.fig),
        tab=markup(numbering.tab),
        figure_number=numbering.figure_number,
        table_number=numbering.table_number,
        figure=markup(figure),
        table=markup(table),
        heading=markup(heading_html),
        banner=markup(banner_html),
        links=markup(links_html),
        toc=markup(toc_html),
    )
    env.filters["fmt"] = lambda value, spec: format(value, spec)
    return env


def render_section(name: str, context: Mapping[str, object], numbering: Numbering) -> str:
    """One section of the report: ``templates/sections/<name>.html.j2`` rendered with ``context``."""
    return template_environment(numbering).get_template(f"{name}.html.j2").render(**context)


KEY_PACKAGES = (
    "python",
    "pandas",
    "numpy",
    "statsmodels",
    "matplotlib",
    "seaborn",
    "papermill",
    "nbconvert",
    "dvc",
    "pyarrow",
    "scipy",
    "joblib",
)


def package_versions(names: Iterable[str] = KEY_PACKAGES) -> pd.DataFrame:
    """Installed versions of the packages the analysis depends on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    rows = []
    for name in names:
        try:
            rows.append((name, platform.python_version() if name == "python" else version(name)))
        except PackageNotFoundError:
            rows.append((name, "not installed"))
    return pd.DataFrame(rows, columns=["package", "version"])


def stage_input_hashes(root: str | Path, stage: str = "report") -> pd.DataFrame:
    """Every input of ``stage`` (its ``deps`` in dvc.yaml) with its MD5, as DVC hashes it.

    Files: the MD5 of their content. Folders written by an earlier stage: the MD5 that stage's entry in dvc.lock
    records (DVC writes each stage's entry as soon as the stage has run). Other folders: each file separately.
    The report shows exactly these, so everything it shows is something it depends on.
    """
    import hashlib

    import yaml

    root = Path(root)
    deps = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage]["deps"]
    lock = root / "dvc.lock"
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}) if lock.is_file() else {}
    produced = {
        out["path"]: out.get("md5", "")
        for name, entry in stages.items()
        if name != stage
        for out in entry.get("outs", [])
    }
    md5 = lambda path: hashlib.md5(path.read_bytes()).hexdigest()  # noqa: E731
    rows = []
    for dep in deps:
        path = root / dep
        if dep in produced:
            rows.append((dep, produced[dep]))
        elif path.is_dir():
            rows += [(str(f.relative_to(root)), md5(f)) for f in sorted(path.rglob("*")) if f.is_file()]
        else:
            rows.append((dep, md5(path)))
    return pd.DataFrame(rows, columns=["input", "MD5"])


def main(argv: list[str] | None = None) -> int:
    """``python -m akim_turnout.report EXECUTED.ipynb OUT.html [TITLE]``: export the report notebook.

    The browser-tab title is TITLE, by default ``report.title`` of params.yaml (the report's own heading).
    """
    import sys

    from akim_turnout.pipeline.parameters import stage_params

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3) or args[0] in ("-h", "--help"):
        print("usage: python -m akim_turnout.report EXECUTED.ipynb OUT.html [TITLE]", file=sys.stderr)
        return 2
    export_html(args[0], args[1], args[2] if len(args) == 3 else stage_params("report")["title"])
    return 0
