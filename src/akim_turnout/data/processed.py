"""Reading what earlier stages wrote: the processed tables of the published figures, and other stages' data frames.

Every stage reads through :func:`read_frame`, so the test-only input perturbation (:data:`akim_turnout.pipeline.paths.
PERTURB_ENV`) reaches every float a stage reads. The frames of real race rows a race-level fit needs, and the hover
text of the report's regional table, are built here from the processed tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from akim_turnout.pipeline.paths import PERTURB_ENV, stage_inputs

ROUND_2021 = "2021-07-25_rural"


def ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, NaN where either is missing or the denominator is 0."""
    return numerator.astype(float) / denominator.astype(float).where(denominator > 0)


def read_processed(name: str, processed_dir: str | Path | None = None) -> pd.DataFrame:
    """The processed table ``name`` as every later stage reads it: ``<processed_dir>/<name>.parquet``, by default
    from the ingest stage's data folder of the pipeline."""
    folder = Path(processed_dir) if processed_dir is not None else stage_inputs("ingest").data
    return read_frame(folder / f"{name}.parquet")


def read_frame(path: str | Path) -> pd.DataFrame:
    """A Parquet data frame written by an earlier stage (perturbed only under the test switch
    :data:`akim_turnout.pipeline.paths.PERTURB_ENV`)."""
    frame = pd.read_parquet(path)
    size = os.environ.get(PERTURB_ENV, "").strip()
    return perturb_floats(frame, float(size)) if size else frame


def perturb_floats(frame: pd.DataFrame, relative: float) -> pd.DataFrame:
    """A copy with every finite, non-whole float multiplied by ``1 +- relative`` (sign alternating by row and column).

    Whole numbers (counts stored as floats because of missing values) are left alone: they are exact on every machine.
    """
    out = frame.copy()
    for position, column in enumerate(out.columns):
        if not pd.api.types.is_float_dtype(out[column]):
            continue
        values = out[column].to_numpy(dtype=float, copy=True)
        signs = np.where((np.arange(len(values)) + position) % 2 == 0, 1.0, -1.0)
        change = np.isfinite(values) & (values != np.round(values))
        values[change] *= 1 + relative * signs[change]
        out[column] = values
    return out


def regional_cell_sources(
    figures: pd.DataFrame, sources: pd.DataFrame, regional: pd.DataFrame, round_id: str = ROUND_2021
) -> pd.DataFrame:
    """Hover text for the cells of the regional table: where each published number comes from.

    Same index as ``regional``; columns ``turnout_pct``, ``posts``, ``cands``, ``voters_on_rolls`` (the figure's
    publisher, date, verbatim quote, English gloss and URL, or how a derived figure was derived) and
    ``cands_per_seat``, ``self_share``, ``women_share`` (the published counts they are computed from).
    """
    primary = figures[
        (figures["level"] == "regional")
        & (figures["round_id"] == round_id)
        & (figures["role"] == "primary")
        & (figures["as_of"].fillna("") == "")
    ].set_index(["region", "variable"])
    publishers = sources.set_index("source_id")["publisher"]

    def cite(region: str, variable: str) -> str:
        if (region, variable) not in primary.index:
            return ""
        row = primary.loc[(region, variable)]
        row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
        if row.get("basis") == "derived":
            return f"derived: {row.get('derived_from', '')}"
        gloss = f" ({row['quote_en']})" if isinstance(row.get("quote_en"), str) and row["quote_en"] else ""
        return (
            f"{publishers.get(row['source_id'], row['source_id'])}, {row['published']}: "
            f"\u201c{row['quote']}\u201d{gloss} {row['url']}"
        )

    titles = pd.DataFrame(index=regional.index)
    stage = regional["cands_kind"].map({"registered": "cands_registered", "on ballot": "cands_on_ballot"})
    for column in ("turnout_pct", "posts", "voters_on_rolls"):
        titles[column] = [cite(region, column) for region in regional["region"]]
    titles["cands"] = [
        cite(region, variable) if isinstance(variable, str) else ""
        for region, variable in zip(regional["region"], stage, strict=True)
    ]
    titles.loc[regional["posts_source"].astype(str).str.startswith("derived"), "posts"] = regional["posts_source"]
    titles["cands_per_seat"] = np.where(regional["cands_per_seat"].notna(), "computed: candidates / posts", "")
    titles["self_share"] = np.where(
        regional["self_share"].notna(), "computed: self-nominated / (party + self-nominated)", ""
    )
    titles["women_share"] = np.where(regional["women_share"].notna(), "computed: women / registered candidates", "")
    return titles


def race_model_frame(races: pd.DataFrame) -> pd.DataFrame:
    """Real races in the simulator's column names, with what is published; nothing imputed.

    ``voted`` is the final count where published, else final turnout x exact electorate (flagged in
    ``voted_source``); candidate variables use on-ballot counts, else registered ones.
    """
    single = races[races["scope"] == "race"].copy()
    exact = single.get("voters_on_rolls_precision", pd.Series(np.nan, index=single.index)).fillna("exact") == "exact"
    frame = pd.DataFrame({"race_id": single["race_id"], "round_id": single["round_id"], "region": single["region"]})
    frame["registered"] = single["voters_on_rolls"].where(exact)
    from_turnout = (single["turnout_pct"] / 100 * frame["registered"]).round()
    frame["voted"] = single["votes_cast"].combine_first(from_turnout)
    frame["voted_source"] = np.where(
        single["votes_cast"].notna(),
        "published count",
        np.where(from_turnout.notna(), "final turnout x electorate", "missing"),
    )
    get = lambda column: single[column] if column in single else pd.Series(np.nan, index=single.index)
    frame["n_candidates"] = get("cands_on_ballot").combine_first(get("cands_registered"))
    frame["n_self"] = get("cands_on_ballot_self").combine_first(get("cands_registered_self"))
    frame["self_share"] = ratio(frame["n_self"], frame["n_candidates"])
    frame["n_women"] = get("cands_on_ballot_women").combine_first(get("cands_registered_women"))
    frame["any_woman"] = (frame["n_women"] > 0).astype(float).where(frame["n_women"].notna())
    return frame.reset_index(drop=True)


def race_readiness(frame: pd.DataFrame, needed: list[str]) -> pd.DataFrame:
    """Per round: how many real races have each input a race-level fit needs, and how many have all of them; the
    rounds with most races first, rounds with as many races in order of their id (a stable sort: numpy's default
    quicksort orders ties differently on different CPUs)."""
    rows = []
    for round_id, group in frame.groupby("round_id"):
        counts = {f"with {column}": int(group[column].notna().sum()) for column in needed}
        usable = group.dropna(subset=needed)
        rows.append(
            {
                "round_id": round_id,
                "races": len(group),
                **counts,
                "usable": len(usable),
                "regions among usable": usable["region"].nunique(),
            }
        )
    return pd.DataFrame(rows).sort_values("races", ascending=False, ignore_index=True, kind="stable")
