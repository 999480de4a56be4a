"""Figure style and byte-stable saving.

PNG output of matplotlib is byte-stable given the same versions; PDF needs its creation date removed. Figures are
saved, closed and then shown from the saved file, so what a reader sees is exactly what is on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib
import matplotlib.pyplot as plt

# Okabe & Ito (2008), distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
SEQUENTIAL_CMAP = "cividis"
SIMULATED_MARK = "SIMULATED DATA"


def apply_style() -> None:
    """House style: colour-blind-safe cycle, readable sizes, deterministic SVG ids."""
    matplotlib.rcParams.update({
        "axes.prop_cycle": matplotlib.cycler(color=list(OKABE_ITO)),
        "image.cmap": SEQUENTIAL_CMAP,
        "figure.figsize": (7.0, 4.2),
        "figure.dpi": 100,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "font.size": 10,
        "svg.hashsalt": "akim-turnout",
        "pdf.compression": 6,
    })


def mark_simulated(fig: plt.Figure) -> None:
    """Stamp a figure made from simulated data so the label survives when it is copied out of the report."""
    fig.text(0.995, 0.995, SIMULATED_MARK, ha="right", va="top", fontsize=8, fontweight="bold",
             color="white", bbox=dict(boxstyle="round,pad=0.3", facecolor=OKABE_ITO[3], edgecolor="none"))


def save_figure(fig: plt.Figure, out_dir: str | Path, stem: str, formats: Iterable[str] = ("png", "pdf"), dpi: int = 150) -> dict[str, Path]:
    """Save ``fig`` as ``out_dir/stem.<format>`` with fixed metadata, close it, and return the paths by format."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in formats:
        metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None, "Producer": None},
                    "svg": {"Date": None}}.get(fmt, {})
        path = out_dir / f"{stem}.{fmt}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=metadata)
        paths[fmt] = path
    plt.close(fig)
    return paths


def plot_turnout_by_region(regional, *, turnout="turnout_pct", region="region", highlight_missing_posts=True) -> plt.Figure:
    """Horizontal bars of final turnout by region, sorted, with the electorate-unweighted median marked."""
    data = regional.sort_values(turnout)
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    ax.barh(data[region], data[turnout], color=OKABE_ITO[0])
    for y, value in enumerate(data[turnout]):
        ax.text(value + 0.5, y, f"{value:.1f}", va="center", fontsize=8)
    median = data[turnout].median()
    ax.axvline(median, color=OKABE_ITO[1], linestyle="--", linewidth=1.2, label=f"median of regions {median:.1f} %")
    ax.set_xlim(0, 100)
    ax.set_xlabel("final turnout (% of registered voters)")
    ax.set_ylabel("region (2021 map)")
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    return fig


COVERAGE_COLOURS = {"published": OKABE_ITO[2], "published (rounded)": OKABE_ITO[5], "interim only": OKABE_ITO[1],
                    "conflict": OKABE_ITO[3], "missing": "#DDDDDD"}


def plot_coverage(coverage, *, region="region", variable="variable", status="status") -> plt.Figure:
    """Heat map of what is published per region and variable (categorical, colour-blind-safe, with a legend)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    states = list(COVERAGE_COLOURS)
    grid = coverage.pivot(index=region, columns=variable, values=status)
    grid = grid[[c for c in coverage[variable].drop_duplicates()]]
    codes = grid.apply(lambda col: col.map(states.index)).to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(8.0, 5.2))
    ax.imshow(codes, cmap=ListedColormap([COVERAGE_COLOURS[s] for s in states]), vmin=-0.5, vmax=len(states) - 0.5, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=8)
    ax.set_xticks([x - 0.5 for x in range(1, grid.shape[1])], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, grid.shape[0])], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.spines[:].set_visible(False)
    ax.set_xlabel("variable (published figure)")
    ax.set_ylabel("region (2021 map)")
    ax.legend(handles=[Patch(color=COVERAGE_COLOURS[s], label=s) for s in states], loc="upper left",
              bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8, title="status", title_fontsize=8)
    return fig
