"""Ingest: loading, validating and tidying the published figures in ``data/raw`` (the ``ingest`` stage).

Raw data are long tables of published figures (one row per figure, each with a source and its quote). ``load_raw``
reads and checks them all, collecting every problem before failing; ``build_processed`` turns the checked figures
into wide tables per unit without imputing anything: a derived value is NaN wherever one of its inputs is. Later
stages read the processed tables through :mod:`akim_turnout.data.processed`. ``python -m akim_turnout.data data/raw
[--audit]`` checks a data folder (:mod:`akim_turnout.data.audit`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from akim_turnout.data.processed import ROUND_2021, ratio
from akim_turnout.data.regions import RegionIndex, build_region_index, to_2021_map
from akim_turnout.data.validation import (
    DataValidationError,
    Problem,
    Table,
    check_columns,
    check_cross_fields,
    check_fields,
    check_foreign_key,
    check_provenance,
    check_unique,
    conflict_record_problems,
    read_table,
    stored_copy_record_problems,
)

RAW_DIR = "data/raw"  # the published figures (never written by the pipeline)
DATAPACKAGE = "datapackage.json"
FIGURE_TABLES = ("national", "regional", "race_figures")
# Figures that count parts of a whole at the same stage: (part, whole).
PART_OF = [
    (f"{stage}_{part}", stage)
    for stage in ("cands_nominated", "cands_registered", "cands_on_ballot")
    for part in ("party", "self", "women", "men")
] + [("votes_cast", "voters_on_rolls"), ("votes_cast_interim", "voters_on_rolls"), ("winners_women", "posts")]
# Regional figures that add up to the national figure of the same round.
ADDITIVE = (
    "posts",
    "cands_nominated",
    "cands_registered",
    "cands_registered_party",
    "cands_registered_self",
    "cands_registered_women",
    "voters_on_rolls",
    "polling_stations",
)


@dataclass(frozen=True)
class RawData:
    """Every raw table as checked text rows plus pandas frames with canonical region names."""

    tables: Mapping[str, Table]
    frames: Mapping[str, pd.DataFrame]
    regions: RegionIndex
    remainders: pd.DataFrame


def read_datapackage(raw_dir: Path) -> dict[str, dict[str, Any]]:
    """Resources of ``datapackage.json`` by name; DataValidationError when it is missing or not valid JSON."""
    label = label_of(raw_dir, DATAPACKAGE)
    try:
        with open(Path(raw_dir) / DATAPACKAGE, encoding="utf-8") as handle:
            package = json.load(handle)
    except FileNotFoundError:
        raise DataValidationError(
            [Problem(label, 0, "-", "missing-file", "the data package description is missing")]
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataValidationError(
            [Problem(label, getattr(error, "lineno", 0), "-", "json", f"not valid JSON: {error}")]
        ) from None
    return {resource["name"]: resource for resource in package["resources"]}


def label_of(raw_dir: str | Path, path: str) -> str:
    """How messages name a file: the folder as the user gave it, joined with the file's path (data/raw/regional.csv)."""
    return os.path.join(str(raw_dir), path)


def read_all(raw_dir: str | Path, resources: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Table], list[Problem]]:
    """Read and check every resource against its own schema (columns, cells, primary key)."""
    tables, problems = {}, []
    for name, resource in resources.items():
        path = Path(raw_dir) / resource["path"]
        label = label_of(raw_dir, resource["path"])
        if not path.is_file():
            problems.append(Problem(label, 0, "-", "missing-file", "file listed in datapackage.json does not exist"))
            continue
        table, read_problems = read_table(path, label)
        problems += read_problems
        if table is None:
            continue
        schema = resource["schema"]
        column_problems = check_columns(table, schema)
        problems += column_problems
        if any(p.rule == "missing-column" for p in column_problems):
            continue
        problems += check_fields(table, schema)
        if schema.get("primaryKey"):
            key = schema["primaryKey"]
            problems += check_unique(table, [key] if isinstance(key, str) else list(key))
        tables[name] = table
    return tables, problems


def _key_values(table: Table, column: str) -> set[str]:
    return {row.values[column].strip() for row in table.rows}


def check_references(
    tables: Mapping[str, Table], resources: Mapping[str, Mapping[str, Any]], regions: RegionIndex
) -> list[Problem]:
    """Foreign keys from datapackage.json; region names through the alias index."""
    problems = []
    region_file = tables["region_names"].name if "region_names" in tables else "region_names.csv"
    for name, table in tables.items():
        for foreign in resources[name]["schema"].get("foreignKeys", []):
            fields = foreign["fields"]
            column = fields if isinstance(fields, str) else fields[0]
            target = foreign["reference"]["resource"]
            if column == "region" or target == "region_names" or target not in tables:
                continue
            target_field = foreign["reference"]["fields"]
            target_field = target_field if isinstance(target_field, str) else target_field[0]
            optional = not any(
                f["name"] == column and f.get("constraints", {}).get("required")
                for f in resources[name]["schema"]["fields"]
            )
            problems += check_foreign_key(
                table, column, _key_values(tables[target], target_field), tables[target].name, optional=optional
            )
        if "region" in table.header and name != "region_names":
            for row in table.rows:
                value = row.values["region"].strip()
                if value and regions.resolve(value) is None:
                    problems.append(
                        Problem(
                            table.name,
                            row.line,
                            "region",
                            "known-region",
                            f"unknown region name {value!r} (accepted spellings are listed in {region_file})",
                        )
                    )
    return problems


def check_figures(tables: Mapping[str, Table]) -> list[Problem]:
    """Figure rows: a source, a known variable, a value in the variable's type and range, one primary per key."""
    variables = (
        {row.values["variable"].strip(): row.values for row in tables["variables"].rows}
        if "variables" in tables
        else {}
    )
    variables_file = tables["variables"].name if "variables" in tables else "variables.csv"
    problems = []
    for name in FIGURE_TABLES:
        if name not in tables:
            continue
        table = tables[name]
        for row in table.rows:
            problems += _check_figure_row(table.name, row.line, row.values, variables, variables_file)
        key = {"national": ["round_id"], "regional": ["round_id", "region"], "race_figures": ["race_id"]}[name]
        primary = Table(
            table.name, table.header, tuple(r for r in table.rows if r.values.get("role", "").strip() == "primary")
        )
        problems += check_unique(primary, [*key, "variable", "as_of"], rule="one-primary-value")
    return problems


def check_figure_provenance(tables: Mapping[str, Table]) -> list[Problem]:
    """Quote stating the number, English gloss and derivation of every figure row
    (``validation.provenance_problems``)."""
    languages = (
        {row.values["source_id"].strip(): row.values["language"].strip() for row in tables["sources"].rows}
        if "sources" in tables
        else {}
    )
    return [
        problem for name in FIGURE_TABLES if name in tables for problem in check_provenance(tables[name], languages)
    ]


def _check_figure_row(
    file: str, line: int, values: Mapping[str, str], variables: Mapping[str, Mapping[str, str]], variables_file: str
) -> list[Problem]:
    problems = []
    if not values.get("source_id", "").strip():
        problems.append(
            Problem(
                file,
                line,
                "source_id",
                "has-source",
                "figure has no source: every figure needs a source_id from sources.csv",
            )
        )
    variable = values.get("variable", "").strip()
    if variable not in variables:
        return problems + [
            Problem(file, line, "variable", "known-variable", f"'{variable}' is not listed in {variables_file}")
        ]
    spec, text = variables[variable], values.get("value", "").strip()
    try:
        value = float(text)
    except ValueError:
        return problems + [Problem(file, line, "value", "type", f"'{text}' is not a number")]
    if spec.get("value_type", "").strip() == "integer" and not float(value).is_integer():
        problems.append(Problem(file, line, "value", "type", f"{variable} must be a whole number, got {text}"))
    for bound, rule, compare in (("min", "minimum", value.__lt__), ("max", "maximum", value.__gt__)):
        limit = spec.get(bound, "").strip()
        if limit and compare(float(limit)):
            word = "below" if rule == "minimum" else "above"
            problems.append(
                Problem(
                    file,
                    line,
                    "value",
                    rule,
                    f"{variable} = {text} is {word} the {rule} {limit} {spec.get('unit', '')}".rstrip(),
                )
            )
    return problems


def figures_frame(tables: Mapping[str, Table], regions: RegionIndex) -> pd.DataFrame:
    """All figure rows in one long frame with level, canonical region, race identity and line numbers."""
    units = (
        {row.values["race_id"].strip(): row.values for row in tables["race_units"].rows}
        if "race_units" in tables
        else {}
    )
    records = []
    for level, name in zip(("national", "regional", "race"), FIGURE_TABLES, strict=True):
        if name not in tables:
            continue
        for row in tables[name].rows:
            record = {key: value.strip() for key, value in row.values.items()}
            record["value_text"] = record.get("value", "")
            unit = units.get(record.get("race_id", ""), {})
            region_text = record.get("region") or unit.get("region", "").strip()
            record.update(
                level=level,
                file=tables[name].name,
                line=row.line,
                round_id=record.get("round_id") or unit.get("round_id", "").strip(),
                region=(regions.resolve(region_text) or region_text) if region_text else "",
            )
            records.append(record)
    frame = pd.DataFrame.from_records(records)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame


def check_consistency(figures: pd.DataFrame) -> list[Problem]:
    """Within a unit and stage: a part never exceeds its whole (votes <= voters, party <= registered, ...)."""
    primary = figures[figures["role"] == "primary"]
    unit_key = ["level", "round_id", "region", "race_id"] if "race_id" in primary else ["level", "round_id", "region"]
    primary = primary.assign(race_id=primary.get("race_id", pd.Series("", index=primary.index)).fillna(""))
    problems = []
    for _, unit in primary.groupby(unit_key, dropna=False):
        latest = unit.drop_duplicates("variable", keep="last").set_index("variable")
        for part, whole in PART_OF:
            if part in latest.index and whole in latest.index and latest.at[part, "value"] > latest.at[whole, "value"]:
                row = latest.loc[part]
                problems.append(
                    Problem(
                        row["file"],
                        int(row["line"]),
                        "value",
                        "part-not-above-whole",
                        f"{part} = {row['value']:g} exceeds {whole} = {latest.at[whole, 'value']:g} of the same unit",
                    )
                )
        parts = [v for v in ("cands_registered_party", "cands_registered_self") if v in latest.index]
        if len(parts) == 2 and "cands_registered" in latest.index:
            total = latest.loc[parts, "value"].sum()
            if total != latest.at["cands_registered", "value"]:
                row = latest.loc["cands_registered_self"]
                problems.append(
                    Problem(
                        row["file"],
                        int(row["line"]),
                        "value",
                        "parts-add-up",
                        f"party {latest.at[parts[0], 'value']:g} + self {latest.at[parts[1], 'value']:g} "
                        f"!= registered {latest.at['cands_registered', 'value']:g}",
                    )
                )
    return problems


def regional_remainders(figures: pd.DataFrame, regions: RegionIndex) -> tuple[pd.DataFrame, list[Problem]]:
    """Per round and additive variable: national total, sum of known regions, the remainder and who is missing.

    Where every region is known the sum must equal the national total; otherwise it must not exceed it. For 2021 the
    regional values are those of ``regional_table`` (so posts published only as parts count).
    """
    primary = figures[(figures["role"] == "primary") & (figures["as_of"].fillna("") == "")]
    national = primary[primary["level"] == "national"].set_index(["round_id", "variable"])["value"]
    later = primary[
        (primary["level"] == "regional") & (primary["round_id"] != ROUND_2021) & primary["variable"].isin(ADDITIVE)
    ]
    wide_2021 = regional_table(figures, regions).melt(id_vars="region", value_vars=list(ADDITIVE), var_name="variable")
    regional = pd.concat([wide_2021.dropna(subset=["value"]).assign(round_id=ROUND_2021), later], ignore_index=True)
    lines = primary[primary["level"] == "regional"].groupby(["round_id", "variable"])[["file", "line"]].last()
    regional_files = figures.loc[figures["level"] == "regional", "file"]
    regional_file = regional_files.iloc[0] if len(regional_files) else "regional.csv"
    rows, problems = [], []
    for (round_id, variable), group in regional.groupby(["round_id", "variable"]):
        if (round_id, variable) not in national.index:
            continue
        total, known = national[(round_id, variable)], group["value"].sum()
        missing = sorted(set(regions.regions_of_map("2021")) - set(group["region"])) if round_id == ROUND_2021 else []
        rows.append(
            {
                "round_id": round_id,
                "variable": variable,
                "national": total,
                "known_regions": len(group),
                "sum_known": known,
                "remainder": total - known,
                "missing_regions": "; ".join(missing),
            }
        )
        file, line = lines.loc[(round_id, variable)] if (round_id, variable) in lines.index else (regional_file, 0)
        if known > total:
            problems.append(
                Problem(
                    file,
                    int(line),
                    "value",
                    "regional-sum",
                    f"{variable}: regions sum to {known:g}, above the national total {total:g} for {round_id}",
                )
            )
        elif round_id == ROUND_2021 and not missing and known != total:
            problems.append(
                Problem(
                    file,
                    int(line),
                    "value",
                    "regional-sum",
                    f"{variable}: all regions known but they sum to {known:g}, not the national {total:g}",
                )
            )
    return pd.DataFrame(rows), problems


def load_raw(raw_dir: str | Path) -> RawData:
    """Read and check every raw table; raise DataValidationError listing all problems at once.

    Messages name files through ``raw_dir`` as given (``data/raw/regional.csv:5``, ``/tmp/copy/regional.csv:5``).
    """
    resources = read_datapackage(raw_dir)
    tables, problems = read_all(raw_dir, resources)
    if "region_names" not in tables:
        raise DataValidationError(
            problems
            or [Problem(label_of(raw_dir, "region_names.csv"), 0, "-", "missing-file", "region names are required")]
        )
    regions = build_region_index(row.values for row in tables["region_names"].rows)
    problems += check_references(tables, resources, regions)
    problems += check_figures(tables)
    if "stored_copy_check" in tables and "sources" in tables:
        problems += stored_copy_record_problems(tables["sources"], tables["stored_copy_check"])
    provenance = check_figure_provenance(tables)  # never blocks the checks below, so all problems come at once
    if problems:
        raise DataValidationError(problems + provenance)
    figures = figures_frame(tables, regions)
    problems += provenance
    problems += check_consistency(figures)
    problems += check_cross_fields(figures.to_dict("records"))
    remainders, sum_problems = regional_remainders(figures, regions)
    problems += sum_problems
    if "conflict_search" in tables:
        search = tables["conflict_search"]
        problems += conflict_record_problems(
            ((row.line, row.values) for row in search.rows), figures.to_dict("records"), search.name
        )
    if problems:
        raise DataValidationError(problems)
    frames = {name: pd.DataFrame([row.values for row in table.rows]) for name, table in tables.items()}
    frames["figures"] = figures
    return RawData(tables, frames, regions, remainders)


# ---------------------------------------------------------------------------------------------------------------
# Processed tables: wide per unit, nothing imputed.

# Candidate stages used for the regional candidate count, in order of preference (kind, variable prefix).
CANDIDATE_STAGES = (("registered", "cands_registered"), ("on ballot", "cands_on_ballot"))
COVERAGE_VARIABLES = (
    "turnout_pct",
    "posts",
    "cands_registered",
    "cands_on_ballot",
    "cands_registered_party",
    "cands_registered_self",
    "cands_registered_women",
    "voters_on_rolls",
    "votes_cast",
    "polling_stations",
)


def _final_first(as_of: pd.Series) -> pd.Series:
    """Sort key putting dated snapshots in date order and undated (final) figures last."""
    return as_of.fillna("").replace("", "9999")


def pivot_primary(figures: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per unit, one column per variable: the primary value (the latest snapshot where several)."""
    primary = figures[figures["role"] == "primary"].assign(_order=lambda f: _final_first(f["as_of"]))
    latest = primary.sort_values([*keys, "variable", "_order"]).drop_duplicates([*keys, "variable"], keep="last")
    wide = latest.pivot(index=keys, columns="variable", values="value")
    precision = latest.pivot(index=keys, columns="variable", values="precision").add_suffix("_precision")
    keep = [c for c in precision.columns if (precision[c].dropna() != "exact").any()]
    wide.columns.name = None
    return wide.join(precision[keep]).reset_index()


def _posts_sources(rows: pd.DataFrame) -> dict[str, str]:
    """Per region, how its final posts figure came about: 'published total' or 'derived (sum: ...)'."""
    posts = rows[(rows["role"] == "primary") & (rows["variable"] == "posts") & (rows["as_of"].fillna("") == "")]
    return {
        row.region: "published total" if row.basis != "derived" else f"derived ({row.derived_from})"
        for row in posts.itertuples()
    }


def _candidate_counts(wide: pd.DataFrame) -> pd.DataFrame:
    """cands, cands_party, cands_self and cands_kind from one stage per region.

    The stage is the first of registered / on ballot whose party and self-nominated split is published; where no
    stage has a split, the first stage with a total. Total and split thus always come from the same stage.
    """
    columns = lambda prefix: [prefix, f"{prefix}_party", f"{prefix}_self"]
    get = lambda column: wide[column] if column in wide else pd.Series(np.nan, index=wide.index)
    out = pd.DataFrame(
        {"cands": np.nan, "cands_party": np.nan, "cands_self": np.nan, "cands_kind": "missing"}, index=wide.index
    )
    for needs_split in (True, False):
        for kind, prefix in CANDIDATE_STAGES:
            total, party, self_ = (get(c) for c in columns(prefix))
            usable = (
                (out["cands_kind"] == "missing")
                & total.notna()
                & (party.notna() & self_.notna() if needs_split else True)
            )
            out.loc[usable, ["cands", "cands_party", "cands_self"]] = np.column_stack([total, party, self_])[
                usable.to_numpy()
            ]
            out.loc[usable, "cands_kind"] = kind
    return out


def regional_table(figures: pd.DataFrame, regions: RegionIndex, round_id: str = ROUND_2021) -> pd.DataFrame:
    """The 2021 regional table: all 14 regions, published values and derived shares (NaN where inputs are)."""
    rows = figures[(figures["level"] == "regional") & (figures["round_id"] == round_id)]
    wide = pivot_primary(rows, ["region"]).set_index("region")
    wide = wide.reindex(regions.regions_of_map("2021")).rename_axis("region").reset_index()
    for column in COVERAGE_VARIABLES:
        if column not in wide:
            wide[column] = np.nan
    wide["posts_source"] = wide["region"].map(_posts_sources(rows)).fillna("missing")
    wide = wide.join(_candidate_counts(wide))
    wide["cands_women"] = wide["cands_registered_women"]
    wide["turnout_share"] = wide["turnout_pct"] / 100
    wide["cands_per_seat"] = ratio(wide["cands"], wide["posts"])
    wide["self_share"] = ratio(wide["cands_self"], wide["cands_party"] + wide["cands_self"])
    wide["women_share"] = ratio(wide["cands_registered_women"], wide["cands_registered"])
    wide["turnout_from_counts_pct"] = 100 * ratio(wide["votes_cast"], wide["voters_on_rolls"])
    return wide


def national_table(figures: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """One row per round with its published national figures."""
    wide = pivot_primary(figures[figures["level"] == "national"], ["round_id"])
    return rounds.merge(wide, on="round_id", how="right")


def race_table(figures: pd.DataFrame, race_units: pd.DataFrame, regions: RegionIndex) -> pd.DataFrame:
    """One row per race or district aggregate, with turnout and winner share computed where published counts allow."""
    rows = figures[figures["level"] == "race"]
    wide = pivot_primary(rows, ["race_id"])
    units = race_units.assign(region=race_units["region"].map(lambda r: regions.resolve(r) or r))
    races = units.merge(wide, on="race_id", how="left")
    races["region_2021_map"] = races["region"].map(to_2021_map)
    for column in ("voters_on_rolls", "votes_cast", "votes_winner", "votes_against_all", "cands_on_ballot"):
        if column not in races:
            races[column] = np.nan
    races["turnout_from_counts_pct"] = 100 * ratio(races["votes_cast"], races["voters_on_rolls"])
    candidate_votes = [
        c for c in ("votes_winner", "votes_candidate_2", "votes_candidate_3", "votes_candidate_4") if c in races
    ]
    published = races[candidate_votes].notna().sum(axis=1)
    complete = (published == races["cands_on_ballot"]) & races["votes_against_all"].notna()
    valid = races[candidate_votes].sum(axis=1, min_count=1) + races["votes_against_all"]
    races["winner_share_pct"] = (100 * ratio(races["votes_winner"], valid)).where(complete)
    return races


def coverage_table(figures: pd.DataFrame, regional: pd.DataFrame, round_id: str = ROUND_2021) -> pd.DataFrame:
    """Per 2021 region and variable: published, published (rounded), interim only, conflict, or missing."""
    rows = figures[(figures["level"] == "regional") & (figures["round_id"] == round_id)]
    conflicts = set(
        map(tuple, rows.loc[rows["role"].isin(["alternative", "rejected"]), ["region", "variable"]].to_numpy())
    )
    interim = set(map(tuple, rows.loc[rows["variable"].str.contains("interim"), ["region", "variable"]].to_numpy()))
    records = []
    for _, region_row in regional.iterrows():
        region = region_row["region"]
        for variable in COVERAGE_VARIABLES:
            value = region_row.get(variable)
            precision = region_row.get(f"{variable}_precision")
            if (region, variable) in conflicts:
                status = "conflict"
            elif pd.notna(value):
                status = "published (rounded)" if isinstance(precision, str) and precision != "exact" else "published"
            elif (region, variable.replace("_pct", "_interim_pct")) in interim or (
                region,
                f"{variable}_interim",
            ) in interim:
                status = "interim only"
            else:
                status = "missing"
            records.append({"region": region, "variable": variable, "status": status, "value": value})
    return pd.DataFrame(records)


def coverage_counts(frames: Mapping[str, pd.DataFrame], value_columns: Mapping[str, list[str]]) -> pd.DataFrame:
    """Filled cells / total cells per processed table, over the listed value columns."""
    records = []
    for name, columns in value_columns.items():
        frame = frames[name][[c for c in columns if c in frames[name]]]
        records.append({"table": name, "filled": int(frame.notna().sum().sum()), "total": int(frame.size)})
    counts = pd.DataFrame(records)
    counts["filled_pct"] = 100 * counts["filled"] / counts["total"]
    return counts


def sources_table(raw: RawData) -> pd.DataFrame:
    """Sources with the number of figures each backs."""
    figures = raw.frames["figures"]
    backed = figures.groupby("source_id").size().rename("figures_backed")
    return (
        raw.frames["sources"]
        .merge(backed, left_on="source_id", right_index=True, how="left")
        .fillna({"figures_backed": 0})
    )


def build_processed(raw: RawData) -> dict[str, pd.DataFrame]:
    """Every processed table, keyed by output name."""
    figures = raw.frames["figures"].merge(
        raw.frames["sources"][["source_id", "url", "published"]], on="source_id", how="left"
    )
    regional = regional_table(figures, raw.regions)
    return {
        "figures": figures.drop(columns=["file", "value_text"]).rename(columns={"line": "raw_line"}),
        "regional_2021": regional,
        "national": national_table(figures, raw.frames["rounds"]),
        "races": race_table(figures, raw.frames["race_units"], raw.regions),
        "coverage_2021": coverage_table(figures, regional),
        "sources": sources_table(raw),
        "regional_remainders": raw.remainders,
    }


def write_processed(tables: Mapping[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write each table as Parquet and CSV (for spreadsheets)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        frame = frame.reset_index(drop=True)
        frame.to_parquet(out_dir / f"{name}.parquet", index=False)
        frame.to_csv(out_dir / f"{name}.csv", index=False, lineterminator="\n")
        written += [out_dir / f"{name}.parquet", out_dir / f"{name}.csv"]
    return written
