"""Canonical region names: one English name per region, Russian and Kazakh spellings accepted on input."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Regions created in 2022 and the 2021 region each was split from (used to compare rounds on the 2021 map).
PARENT_2021 = {"Abai": "East Kazakhstan", "Zhetysu": "Almaty", "Ulytau": "Karaganda"}
# Words that mean "region" and do not distinguish names ("Almaty oblast" = "Almaty region" = "Almaty").
_REGION_WORDS = r"\b(region|oblast|oblysy|oblys|область|облысы|обл\.?)\b"


def normalise_name(name: str) -> str:
    """Case-, space-, dash- and 'region'-insensitive form of a name, for matching only."""
    text = unicodedata.normalize("NFC", name).casefold().replace("ё", "е")
    text = re.sub(_REGION_WORDS, " ", text)
    text = re.sub(r"[\s\-–—_.]+", " ", text)
    return text.strip()


@dataclass(frozen=True)
class RegionIndex:
    """Look-up from any accepted spelling to the canonical English name."""

    canonical: frozenset[str]
    by_spelling: Mapping[str, str]
    map_of: Mapping[str, str]

    def resolve(self, name: str) -> str | None:
        """The canonical name for ``name``, or None when it is not a known spelling."""
        return self.by_spelling.get(normalise_name(name))

    def regions_of_map(self, year: str) -> list[str]:
        return sorted(region for region, map_year in self.map_of.items() if map_year == year)


def build_region_index(rows: Iterable[Mapping[str, str]]) -> RegionIndex:
    """Index rows of ``region_names.csv`` (region, map, name_ru, name_kk, aliases)."""
    by_spelling: dict[str, str] = {}
    map_of: dict[str, str] = {}
    for row in rows:
        region = row["region"].strip()
        map_of[region] = str(row.get("map", "")).strip()
        spellings = [region, row.get("name_ru", ""), row.get("name_kk", ""), *str(row.get("aliases", "")).split(";")]
        for spelling in spellings:
            if spelling and spelling.strip():
                by_spelling.setdefault(normalise_name(spelling), region)
    return RegionIndex(frozenset(map_of), by_spelling, map_of)


def to_2021_map(region: str) -> str:
    """The 2021 region a (possibly 2022-map) region belonged to."""
    return PARENT_2021.get(region, region)
