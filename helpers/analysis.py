"""Reading records (torch-free, for Analysis.ipynb and every family's `<family>_report`): pick a family's records,
turn rows of them into DataFrames (`frame`), and a `Report` that a family's `report()` fills with tables, figures
and a conclusion, all computed from records by the same functions the notebook uses. The family registry that maps
notebooks to their reports is helpers.families.

Which records: a family's records of the most meaningful profile that has any (full, else local, else tiny). Run
ids depend only on what determines a result, so one (experiment, variant, seed) has one record per config; if a
family holds several configs of the same run (someone ran with OVERRIDES), the report says so and uses the newest.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

PROFILE_ORDER = ("full", "gpu-small", "local", "tiny")


def pick_profile(records: list[dict], preferred: tuple = PROFILE_ORDER) -> str | None:
    have = {r["profile"] for r in records}
    return next((p for p in preferred if p in have), None)


def select(records: list[dict], profile: str | None = None) -> tuple[list[dict], str | None]:
    """The records of one profile (default: pick_profile), one per (experiment, variant, seed)."""
    profile = profile or pick_profile(records)
    mine = sorted((r for r in records if r["profile"] == profile), key=lambda r: r.get("created", ""))
    chosen, seen = {}, {}
    for r in mine:
        key = (r["experiment"], r["variant"], r["seed"])
        seen.setdefault(key, set()).add(r["run_id"])
        chosen[key] = r
    dups = {k: v for k, v in seen.items() if len(v) > 1}
    if dups:
        warnings.warn(f"{len(dups)} run(s) are recorded under several configs ({sorted(dups)[:3]} ...): showing the "
                      "newest of each; delete the others or keep experiments apart with LAB_RESULTS", stacklevel=2)
    return list(chosen.values()), profile


def by_experiment(records: list[dict]) -> dict[str, list[dict]]:
    """{experiment: records sorted by (variant, seed)}."""
    out = {}
    for r in sorted(records, key=lambda r: (r["experiment"], r["variant"], r["seed"])):
        out.setdefault(r["experiment"], []).append(r)
    return out


@dataclass
class Report:
    """One family's section of Analysis.ipynb: built from its records, shown with `show()`."""

    title: str
    all_records: list[dict] = field(repr=False)
    profile: str | None = None
    tables: dict = field(default_factory=dict)      # {caption: DataFrame}
    figures: dict = field(default_factory=dict)     # {caption: matplotlib Figure}
    text: str = ""                                  # the conclusion, generated from the records

    def __post_init__(self):
        self.records, self.profile = select(self.all_records, self.profile)

    def table(self, caption: str, frame) -> None:
        if frame is not None and len(frame):
            self.tables[caption] = frame

    def figure(self, caption: str, fig) -> None:
        self.figures[caption] = fig
        plt.close(fig)   # shown by show(), not by the notebook's inline backend at creation

    def show(self) -> None:
        if not self.records:
            print(f"{self.title}: not run yet (no records).")
            return
        print(f"{self.title}: profile {self.profile}, {len(self.records)} records")
        for caption, fig in self.figures.items():
            print(caption)
            display(fig)
        for caption, frame in self.tables.items():
            print(caption)
            display(frame.round(4) if hasattr(frame, "round") else frame)
        if self.text:
            print("What the records say:\n" + self.text)


def frame(rows, index=None) -> pd.DataFrame:
    """The one way records become a table: a list of row dicts (or a {name: value} mapping, as one 'value'
    column) -> DataFrame, indexed by `index` (a column or a list of columns) when given; empty rows -> an empty
    frame."""
    if isinstance(rows, dict):
        return pd.Series(rows).to_frame("value")
    rows = list(rows)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    return df.set_index(index) if index is not None else df


RECORD_KEYS = {"run_id", "metrics", "tables", "curves"}      # a dict with any of these is one record


def records_of(records) -> list[dict]:
    """A section's records as a list, whether it came as {(variant, seed): record}, a list, or one record."""
    if isinstance(records, dict) and RECORD_KEYS & set(records):
        return [records]
    return list(records.values()) if isinstance(records, dict) else list(records)


def ladder(metrics: dict) -> dict[int, float]:
    """{n: cross-entropy} of a record's n-gram ladder (helpers.pretrain.ngram_ladder; {} in records made before it)."""
    return {int(n): ce for n, ce in (metrics.get("ngram_ce") or {}).items()}


def one(records) -> dict:
    """The record of a one-record section, given as {(variant, seed): record} (what sections return) or itself."""
    recs = records_of(records)
    if len(recs) != 1:
        raise ValueError(f"expected the one record of a section, got {len(recs)}")
    return recs[0]


def provenance_table(records: list[dict]) -> pd.DataFrame:
    """One row per run: where, when, with what code, how long and how much memory."""
    rows = [{"notebook": r["notebook"], "experiment": r["experiment"], "variant": r["variant"],
             "profile": r["profile"], "seed": r["seed"], "status": r["status"],
             "commit": str(r["provenance"].get("commit"))[:8], "dirty": r["provenance"].get("dirty"),
             "device": r["provenance"].get("device"), "wall_s": r["provenance"].get("wall_s"),
             "peak_mem_mb": r["provenance"].get("peak_mem_mb"), "created": r.get("created")} for r in records]
    if not rows:
        print("no records yet: run `make run`")
        return pd.DataFrame()
    return frame(rows).sort_values(["notebook", "experiment", "variant", "seed"]).reset_index(drop=True)
