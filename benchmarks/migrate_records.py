"""Migrate run records of schema 1 to schema 2 in place, and re-key records whose run id was made by an older
hashing rule or names a renamed op (kept for anyone holding records made before a change).

Renamed: seed 000's MLP op "lora" (a low-rank replacement of both MLP Linears, not a LoRA adapter) is "factorize"
since the family split; its records' descriptions are rewritten and re-keyed, results untouched.

Schema 2 adds `tables` and `config_hash`, and run ids hash only what determines a result (helpers.results:
EXECUTION_KEYS are left out), so a migrated record gets the id a rerun of its config would get today. Nothing about
the result changes: metrics, curves, params and provenance are kept as recorded (provenance gains `migrated_from`,
the old run id). Records whose result cannot be migrated faithfully (the notebooks' own, whose tables changed shape)
are better regenerated with `make run`; pass --drop-notebook-records to delete those of notebooks 00-05 other than
the regime search's.

    python benchmarks/migrate_records.py [--root results] [--drop-notebook-records]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from helpers.paths import results_dir
from helpers.results import SCHEMA_VERSION, config_hash, run_id, validate, write_record

KEEP_EXPERIMENTS = {"regime"}   # notebook records whose shape did not change
# records now keyed by part of their notebook's config: (notebook, experiment) -> the keys kept (with the profile)
NARROWED = {("05_looped_transformer", "regime"): ("model", "train")}


def narrow(rec: dict) -> dict:
    """A record's config cut to what its point is now keyed by (seed 002's regime points: model and train)."""
    keep = NARROWED.get((rec["notebook"], rec["experiment"]))
    if keep and set(rec["config"]) - {"profile", *keep}:
        rec["config"] = {k: v for k, v in rec["config"].items() if k in ("profile", *keep)}
    return rec


RENAMED_OPS = {"mlp lora ": "mlp factorize "}      # in seed 000's "surgery" and "stand_in" descriptions


def rename_ops(rec: dict) -> dict:
    for key in ("surgery", "stand_in"):
        text = rec["config"].get(key)
        if isinstance(text, str):
            for old, new in RENAMED_OPS.items():
                text = text.replace(old, new)
            rec["config"][key] = text
    return rec


def migrate(root: Path, drop_notebook_records: bool = False) -> dict:
    counts = {"migrated": 0, "dropped": 0, "current": 0}
    for path in sorted(root.glob("*/*.json")):
        rec = rename_ops(narrow(json.loads(path.read_text())))
        if (rec.get("schema_version") == SCHEMA_VERSION
                and rec["run_id"] == run_id(rec["variant"], rec["config"], rec["seed"])):
            counts["current"] += 1
            continue
        if drop_notebook_records and path.parent.name != "benchmarks" and rec["experiment"] not in KEEP_EXPERIMENTS:
            path.unlink()
            counts["dropped"] += 1
            continue
        old = rec["provenance"].get("migrated_from", rec["run_id"])
        rec.update(schema_version=SCHEMA_VERSION, run_id=run_id(rec["variant"], rec["config"], rec["seed"]),
                   config_hash=config_hash(rec["config"]))
        rec.setdefault("tables", {})
        rec["provenance"]["migrated_from"] = old
        validate(rec)
        new = write_record(rec, root)
        if new != path:
            path.unlink()
        counts["migrated"] += 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--drop-notebook-records", action="store_true")
    args = ap.parse_args()
    print(migrate(args.root or results_dir(), args.drop_notebook_records))


if __name__ == "__main__":
    main()
