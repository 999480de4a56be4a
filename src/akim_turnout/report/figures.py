"""Figure style and byte-stable saving.

PNG output of matplotlib is byte-stable given the same versions; PDF needs its creation date removed. Figures are
saved, closed and then shown from the saved file, so what a reader sees is exactly what is on disk. Every plotting
function first brings its numbers to their stated precision (:mod:`pipeline.outputs`): a PDF writes coordinates
with ten decimals, so a figure drawn from full-precision estimates would differ between machines in the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from akim_turnout.pipeline.outputs import stated, stated_array, stated_frame
from akim_turnout.report.labels import model as model_label

# Okabe & Ito (2008), distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
SEQUENTIAL_CMAP = "cividis"
SIMULATED_MARK = "SIMULATED DATA"


def _stated(values):
    """Numbers to plot at their stated precision: a frame's float columns, an array, a Series or a scalar."""
    if values is None:
        return None
    if isinstance(values, pd.DataFrame):
        return stated_frame(values, whole_as_int=False)
    if isinstance(values, pd.Series):
        return pd.Series(stated_array(values.to_numpy(dtype=float)), index=values.index, name=values.name)
    if isinstance(values, np.ndarray):
        return stated_array(values)
    return float(stated(values))


def apply_style() -> None:
    """House style: colour-blind-safe cycle, readable sizes, deterministic SVG ids."""
    matplotlib.rcParams.update(
        {
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
        }
    )


def mark_simulated(fig: plt.Figure) -> None:
    """Stamp a figure made from simulated data so the label survives when it is copied out of the report."""
    fig.text(
        0.995,
        0.995,
        SIMULATED_MARK,
        ha="right",
        va="top",
        fontsize=8,
        fontweight="bold",
        color="white",
        bbox={"boxstyle": "round,pad=0.3", "facecolor": OKABE_ITO[3], "edgecolor": "none"},
    )


def save_figure(
    fig: plt.Figure, out_dir: str | Path, stem: str, formats: Iterable[str] = ("png", "pdf"), dpi: int = 150
) -> dict[str, Path]:
    """Save ``fig`` as ``out_dir/stem.<format>`` with fixed metadata, close it, and return the paths by format."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in formats:
        metadata = {
            "png": {"Software": None},
            "pdf": {"CreationDate": None, "ModDate": None, "Producer": None},
            "svg": {"Date": None},
        }.get(fmt, {})
        path = out_dir / f"{stem}.{fmt}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=metadata)
        paths[fmt] = path
    plt.close(fig)
    return paths


def plot_turnout_by_region(
    regional, *, turnout="turnout_pct", region="region", highlight_missing_posts=True
) -> plt.Figure:
    """Horizontal bars of final turnout by region, sorted, with the electorate-unweighted median marked."""
    data = _stated(regional).sort_values(turnout, kind="stable")
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


COVERAGE_COLOURS = {
    "published": OKABE_ITO[2],
    "published (rounded)": OKABE_ITO[5],
    "interim only": OKABE_ITO[1],
    "conflict": OKABE_ITO[3],
    "missing": "#DDDDDD",
}


def plot_coverage(coverage, *, region="region", variable="variable", status="status") -> plt.Figure:
    """Heat map of what is published per region and variable (categorical, colour-blind-safe, with a legend)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    states = list(COVERAGE_COLOURS)
    grid = coverage.pivot(index=region, columns=variable, values=status)
    grid = grid[list(coverage[variable].drop_duplicates())]
    codes = grid.apply(lambda col: col.map(states.index)).to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(8.0, 5.2))
    ax.imshow(
        codes,
        cmap=ListedColormap([COVERAGE_COLOURS[s] for s in states]),
        vmin=-0.5,
        vmax=len(states) - 0.5,
        aspect="auto",
    )
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=8)
    ax.set_xticks([x - 0.5 for x in range(1, grid.shape[1])], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, grid.shape[0])], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.spines[:].set_visible(False)
    ax.set_xlabel("variable (published figure)")
    ax.set_ylabel("region (2021 map)")
    ax.legend(
        handles=[Patch(color=COVERAGE_COLOURS[s], label=s) for s in states],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        frameon=False,
        fontsize=8,
        title="status",
        title_fontsize=8,
    )
    return fig


def plot_candidate_mix(regional, *, region="region") -> plt.Figure:
    """Three panels by region: candidates per post, self-nominated share, women share; unpublished values marked."""
    panels = [
        ("cands_per_seat", "candidates per post (count)", 1.0),
        ("self_share", "self-nominated (% of candidates)", 100.0),
        ("women_share", "women (% of candidates)", 100.0),
    ]
    regional = _stated(regional)
    order = regional.sort_values("turnout_pct", kind="stable")[region]
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 4.6), sharey=True)
    for ax, (column, label, scale) in zip(axes, panels, strict=True):
        values = regional.set_index(region).loc[order, column] * scale
        ax.barh(order, values.fillna(0), color=OKABE_ITO[2])
        for y, value in enumerate(values):
            if value != value:  # NaN: not published
                ax.text(0, y, "not published", va="center", fontsize=7, color="#666666")
        ax.set_xlabel(label)
    axes[0].set_ylabel("region (2021 map), by turnout")
    return fig


def plot_not_estimable(what: str, reason: str) -> plt.Figure:
    """A figure that says, in its place, that ``what`` is not estimable and why (a run whose fit cannot be made)."""
    fig, ax = plt.subplots(figsize=(6.6, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{what}\nnot estimable: {reason}", ha="center", va="center", fontsize=9, wrap=True)
    return fig


def plot_turnout_vs_mix(
    regional, fit_curve=None, *, x="cands_per_seat", x_label="candidates per post (count)"
) -> plt.Figure:
    """Regional turnout against a candidate-mix variable, labelled points, optional fitted curve with its CI band."""
    data, fit_curve = _stated(regional).dropna(subset=[x, "turnout_pct"]), _stated(fit_curve)
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    ax.scatter(data[x], data["turnout_pct"], color=OKABE_ITO[0], zorder=3)
    for _, row in data.iterrows():
        ax.annotate(row["region"], (row[x], row["turnout_pct"]), xytext=(4, 3), textcoords="offset points", fontsize=7)
    if fit_curve is not None:
        ax.plot(fit_curve["x"], fit_curve["fit"], color=OKABE_ITO[1], label="fractional logit fit (unweighted)")
        ax.fill_between(
            fit_curve["x"],
            fit_curve["lower"],
            fit_curve["upper"],
            color=OKABE_ITO[1],
            alpha=0.2,
            label="95 % CI (HC3, t)",
        )
        ax.legend(frameon=False, fontsize=8, loc="lower left")
    ax.set_xlabel(x_label)
    ax.set_ylabel("final turnout (% of registered voters)")
    return fig


def plot_leave_one_out(loo, full_estimate: float, *, term_label: str) -> plt.Figure:
    """Coefficient and 95 % CI when each region is left out, against the full-sample estimate."""
    data, full_estimate = _stated(loo).sort_values("estimate", kind="stable"), _stated(full_estimate)
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    y = range(len(data))
    ax.errorbar(
        data["estimate"],
        y,
        xerr=[data["estimate"] - data["ci_lower"], data["ci_upper"] - data["estimate"]],
        fmt="o",
        color=OKABE_ITO[0],
        ecolor=OKABE_ITO[5],
        capsize=2,
    )
    ax.axvline(full_estimate, color=OKABE_ITO[1], linestyle="--", label="all regions")
    ax.axvline(0, color="#888888", linewidth=0.8)
    ax.set_yticks(list(y), data["dropped_region"])
    ax.set_xlabel(f"coefficient of {term_label} (logit scale)")
    ax.set_ylabel("region left out")
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_specification_curve(curve, *, choices, step_label: str = "+0.5 candidates per post") -> plt.Figure:
    """Specification curve: the slope (pp of turnout per ``step_label`` of the predictor, e.g. half a candidate per
    post) and its 95 % CI under each estimable specification, sorted, with the choices it makes marked beneath
    (real data)."""
    data = _stated(curve[curve["estimable"]]).reset_index(drop=True)
    rows = [(dimension, value) for dimension, values in choices.items() for value in values]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(7.4, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 2.4], "hspace": 0.06}
    )
    x = np.arange(1, len(data) + 1)
    colours = [OKABE_ITO[3] if excluded else OKABE_ITO[0] for excluded in data["excludes_zero"]]
    top.vlines(x, data["ci_lower_pp"], data["ci_upper_pp"], color=colours, linewidth=1.4)
    top.scatter(x, data["ame_pp"], color=colours, zorder=3, s=18)
    if "default" in data and data["default"].any():  # the run's default specification, ringed
        chosen = data["default"].to_numpy(dtype=bool)
        top.scatter(x[chosen], data.loc[chosen, "ame_pp"], facecolors="none", edgecolors="black", s=70, zorder=4)
    top.axhline(0, color="#888888", linewidth=0.8)
    number, _, words = step_label.partition(" ")
    head, per, tail = words.rpartition(" per ")  # '+0.5 candidates' / 'per post'; '+0.1' / 'self-nominated share'
    lines = (f"{number} {head}", f"per {tail}") if per else (number, words)
    top.set_ylabel(f"turnout change per {lines[0]}\n{lines[1]} (pp), 95 % CI")
    low, high = top.get_ylim()
    top.set_ylim(low, high + 0.08 * (high - low))
    for xi, n in zip(x, data["n_regions"], strict=True):
        top.text(xi, high + 0.04 * (high - low), f"{int(n)}", ha="center", va="center", fontsize=7, color="#444444")
    top.text(0.3, high + 0.04 * (high - low), "regions:", ha="right", va="center", fontsize=7, color="#444444")
    from matplotlib.lines import Line2D

    top.legend(
        handles=[
            Line2D([], [], color=OKABE_ITO[3], marker="o", label="interval excludes 0"),
            Line2D([], [], color=OKABE_ITO[0], marker="o", label="interval includes 0"),
            *(
                [Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="", label="default")]
                if "default" in data and data["default"].any()
                else []
            ),
        ],
        frameon=False,
        fontsize=7,
        loc="lower right",
    )
    for y, (dimension, value) in enumerate(rows):
        used = data[dimension] == value
        bottom.scatter(x[used], np.full(used.sum(), y), marker="s", s=16, color=OKABE_ITO[7])
        bottom.scatter(x[~used], np.full((~used).sum(), y), marker="s", s=16, color="#DDDDDD")
    bottom.set_yticks(range(len(rows)), [f"{dimension}: {value}" for dimension, value in rows], fontsize=7)
    bottom.invert_yaxis()
    bottom.set_xlabel("specification, sorted by estimate (rank)")
    bottom.set_xticks(x)
    bottom.tick_params(axis="x", labelsize=7)
    return fig


def plot_permutation_null(null, observed: float, *, statistic_label: str) -> plt.Figure:
    """Histogram of the permutation null distribution with the observed statistic."""
    null, observed = _stated(np.asarray(null, dtype=float)), _stated(observed)
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    ax.hist(null, bins=40, color=OKABE_ITO[5], edgecolor="white")
    ax.axvline(observed, color=OKABE_ITO[3], linewidth=2, label=f"observed {observed:.2f}")
    ax.set_xlabel(statistic_label)
    ax.set_ylabel("permutations (count)")
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_coefficients(comparison, *, terms, labels=None, simulated: bool = False, truth=None) -> plt.Figure:
    """Coefficient plot: estimate and 95 % CI of each term under each model, with true values when known."""
    labels = labels or {}
    comparison = _stated(comparison)
    truth = None if truth is None else {term: _stated(value) for term, value in truth.items() if value is not None}
    models_ = list(dict.fromkeys(comparison["model"]))
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 3.6), sharey=True)
    axes = [axes] if len(terms) == 1 else axes
    for ax, term in zip(axes, terms, strict=True):
        rows = comparison[comparison["term"] == term].set_index("model").reindex(models_)
        y = range(len(models_))
        ax.errorbar(
            rows["estimate"],
            y,
            xerr=[rows["estimate"] - rows["ci_lower"], rows["ci_upper"] - rows["estimate"]],
            fmt="o",
            color=OKABE_ITO[0],
            ecolor=OKABE_ITO[5],
            capsize=2,
        )
        if truth is not None and term in truth:
            ax.axvline(truth[term], color=OKABE_ITO[3], linestyle="--", label="value simulated (conditional)")
        ax.axvline(0, color="#888888", linewidth=0.8)
        ax.set_yticks(list(y), [model_label(m) for m in models_])
        ax.set_xlabel(f"{labels.get(term, term)}\n(logit scale)")
    axes[0].set_ylabel("model")
    handles, names = axes[0].get_legend_handles_labels()
    if handles:  # one legend for all panels, above them, clear of the estimates
        fig.legend(handles, names, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0.01, 0.99))
    if simulated:
        mark_simulated(fig)
    return fig


def plot_simulated_turnout(races, published, *, simulated: bool = True) -> plt.Figure:
    """Race turnout by region (box plots) with each region's published turnout marked."""
    published = _stated(published)
    order = published.sort_values("turnout_pct", kind="stable")["region"].tolist()
    turnout = races.assign(turnout_pct=100 * races["voted"] / races["registered"])
    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    groups = [turnout.loc[turnout["region"] == r, "turnout_pct"] for r in order]
    ax.boxplot(groups, orientation="horizontal", tick_labels=order, widths=0.6, flierprops={"markersize": 2})
    ax.scatter(
        published.set_index("region").loc[order, "turnout_pct"],
        range(1, len(order) + 1),
        color=OKABE_ITO[3],
        marker="D",
        zorder=3,
        label="published regional turnout",
    )
    ax.set_xlabel("turnout per race (% of registered voters)")
    ax.set_ylabel("region (2021 map)")
    ax.legend(frameon=False, fontsize=8, loc="lower left")
    if simulated:
        mark_simulated(fig)
    return fig


def plot_size_and_coverage(summary, *, labels, alpha: float = 0.05) -> plt.Figure:
    """Size (rejection of a true zero effect) per method, and 95 % CI coverage per method at every true effect, each
    with its exact (Clopper-Pearson) 95 % Monte Carlo interval. At effect 0 coverage is 1 - size for the Wald
    methods (the same event), so coverage is shown at the non-zero effects."""
    data = _stated(summary).reset_index(drop=True)
    rates = [c for c in data if c.startswith(("rejection", "coverage"))]
    data[rates] = data[rates].astype(float)  # a rate no data set gave (pd.NA) is not drawn
    methods = list(dict.fromkeys(data["method"]))
    names = [labels.get(m, m) for m in methods]
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), sharey=True)
    zero = data[data["effect"] == 0].set_index("method").loc[methods]
    y = np.arange(len(methods))
    axes[0].errorbar(
        100 * zero["rejection"],
        y,
        xerr=[100 * (zero["rejection"] - zero["rejection_low"]), 100 * (zero["rejection_high"] - zero["rejection"])],
        fmt="o",
        color=OKABE_ITO[0],
        ecolor=OKABE_ITO[5],
        capsize=3,
    )
    axes[0].axvline(100 * alpha, color=OKABE_ITO[3], linestyle="--", label=f"nominal {100 * alpha:.0f} %")
    axes[0].set_xlabel("rejection rate at zero effect (size, %)")
    effects = sorted(set(data.loc[data["effect"] != 0, "effect"]), key=abs)
    for k, effect in enumerate(effects):
        rows = data[data["effect"] == effect].set_index("method").reindex(methods)
        offset = (k - (len(effects) - 1) / 2) * 0.18
        axes[1].errorbar(
            100 * rows["coverage"],
            y + offset,
            fmt="o",
            markersize=4,
            capsize=2,
            xerr=[100 * (rows["coverage"] - rows["coverage_low"]), 100 * (rows["coverage_high"] - rows["coverage"])],
            color=OKABE_ITO[(k + 1) % len(OKABE_ITO)],
            label=f"true effect {effect:g}",
        )
    axes[1].axvline(100 * (1 - alpha), color=OKABE_ITO[3], linestyle="--")
    axes[1].set_xlabel("95 % CI coverage of the true value (%)")
    axes[0].set_yticks(y, names)
    axes[0].set_ylabel("inference method")
    # The figure is 9 in wide and shown at the report's column width: legends at 10 pt stay legible there.
    axes[0].legend(frameon=False, fontsize=10)
    axes[1].legend(frameon=False, fontsize=10, loc="lower left")
    mark_simulated(fig)
    return fig


def plot_power_curves(curves, *, labels, alpha: float = 0.05, mde=None) -> plt.Figure:
    """Rejection rate against the true effect for each method, with exact 95 % Monte Carlo intervals; the 80 % line
    marks the minimum detectable effect."""
    curves, mde = _stated(curves), _stated(mde)
    fig, ax = plt.subplots(figsize=(6.6, 4.0))
    for i, (method, curve) in enumerate(curves.groupby("method", sort=False)):
        curve = curve.assign(abs_effect=curve["effect"].abs()).sort_values("abs_effect", kind="stable")
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        ax.plot(
            curve["abs_effect"], 100 * curve["rejection"], marker="o", color=colour, label=labels.get(method, method)
        )
        ax.fill_between(
            curve["abs_effect"], 100 * curve["rejection_low"], 100 * curve["rejection_high"], color=colour, alpha=0.15
        )
    ax.axhline(80, color="#888888", linestyle=":", label="80 % power")
    ax.axhline(100 * alpha, color="#888888", linestyle="--", linewidth=0.8)
    if mde is not None and mde == mde:
        ax.axvline(mde, color=OKABE_ITO[3], linestyle="--", linewidth=1, label=f"MDE of recommended method {mde:.3f}")
    ax.set_xlabel("true effect of the self-nominated share (|logit coefficient|)")
    ax.set_ylabel("rejection rate at 5 % (%)")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False, fontsize=9, loc="lower right")
    mark_simulated(fig)
    return fig


def plot_fingerprint(fingerprint, *, title: str, simulated: bool = True) -> plt.Figure:
    """Klimek et al. (2012) fingerprint: registered-weighted 2-D histogram of turnout against winner share."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    counts = np.ma.masked_equal(_stated(fingerprint.counts.T), 0)
    image = ax.pcolormesh(fingerprint.turnout_edges, fingerprint.share_edges, counts, cmap=SEQUENTIAL_CMAP)
    fig.colorbar(image, ax=ax, label="registered voters in cell (count)")
    ax.set_xlabel("turnout (% of registered voters)")
    ax.set_ylabel("winner's share of valid votes (%)")
    ax.set_title(title, fontsize=9)
    if simulated:
        mark_simulated(fig)
    return fig


def plot_integer_null(result, *, title: str, simulated: bool = True) -> plt.Figure:
    """Monte Carlo null distribution of races at integer turnout percentages, with the observed count."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.hist(
        result.null_counts,
        bins=range(int(result.null_counts.min()), int(result.null_counts.max()) + 2),
        color=OKABE_ITO[5],
        edgecolor="white",
        label="binomial null",
    )
    ax.axvline(
        result.observed,
        color=OKABE_ITO[3],
        linewidth=2,
        label=f"observed {result.observed} (p = {_stated(result.p_value):.3f})",
    )
    ax.set_xlabel(f"races within ±{result.tolerance_pp} pp of an integer turnout (count)")
    ax.set_ylabel("simulations (count)")
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    if simulated:
        mark_simulated(fig)
    return fig


def plot_candidate_distributions(comparison, *, simulated: bool = True) -> plt.Figure:
    """Posts by number of candidates, published (bars) against SIMULATED (points), for each region that publishes
    its distribution (rows of :func:`akim_turnout.study.simulate.published_comparison` named 'posts with k
    candidates'). The match is an identity: the simulator imposes these counts."""
    rows = _stated(comparison)
    rows = rows[rows["quantity"].str.startswith("posts with ")].assign(
        k=lambda f: f["quantity"].str.extract(r"posts with (\d+)", expand=False).astype(int)
    )
    regions = list(dict.fromkeys(rows["region"]))
    fig, axes = plt.subplots(1, max(1, len(regions)), figsize=(7.0, 2.8), sharey=False, squeeze=False)
    for ax, region in zip(axes[0], regions, strict=False):
        part = rows[rows["region"] == region]
        ax.bar(part["k"], part["published"], color=OKABE_ITO[1], alpha=0.7, label="published")
        ax.scatter(part["k"], part["simulated"], color=OKABE_ITO[3], marker="D", zorder=3, label="simulated")
        ax.set_title(region, fontsize=9)
        ax.set_xlabel("candidates per post")
    axes[0][0].set_ylabel("posts (count)")
    axes[0][0].legend(frameon=False, fontsize=7)
    if simulated:
        mark_simulated(fig)
    return fig
