"""Helpers for Analysis.ipynb: it reads only results/ (through load_runs) and shows one section per family."""
from __future__ import annotations

FAMILIES = {
    "00_data_and_baselines": "Data, tokenizers and baselines",
    "01_attention_lowrank": "Pythia low-rank surgery: attention (seed 000, exps 1-8, 25, 26)",
    "02_mlp_lowrank": "Pythia low-rank surgery: MLP (seed 000, exps 9-11, 22, 23)",
    "03_partial_layers": "Pythia low-rank surgery: partial layers (seed 000, exps 12-21, 24)",
    "04_lowrank_compression": "Low-rank compression of a pretrained model (seed 001)",
    "05_looped_transformer": "Looped transformer, in-context learning (seed 002)",
}


def family(df, notebook: str, profile: str | None = None):
    """The records of one notebook (optionally one profile), or None with a 'not run yet' line printed."""
    sub = df[df["notebook"] == notebook] if len(df) else df
    if profile is not None and len(sub):
        sub = sub[sub["profile"] == profile]
    if not len(sub):
        print(f"{FAMILIES.get(notebook, notebook)}: not run yet" + (f" in the {profile} profile" if profile else "")
              + f" (no records under results/{notebook}/).")
        return None
    return sub


def pick_profile(df, preferred: tuple = ("full", "local", "tiny")) -> str | None:
    """The most meaningful profile that has records: full, else local, else tiny."""
    have = set(df["profile"]) if len(df) else set()
    return next((p for p in preferred if p in have), None)


def provenance_table(df):
    """One row per run: where, when, with what code, how long and how much memory."""
    if not len(df):
        print("no records yet: run `make run`")
        return df
    cols = ["notebook", "experiment", "variant", "profile", "seed", "status", "provenance.commit", "provenance.dirty",
            "provenance.device", "provenance.wall_s", "provenance.peak_mem_mb", "provenance.tokens_per_s", "created"]
    out = df[[c for c in cols if c in df.columns]].copy()
    if "provenance.commit" in out:
        out["provenance.commit"] = out["provenance.commit"].astype(str).str[:8]
    return out.sort_values(["notebook", "experiment", "variant", "seed"]).reset_index(drop=True)


def metric_columns(df, prefix: str = "metrics.") -> list[str]:
    return [c for c in df.columns if c.startswith(prefix) and df[c].notna().any()]


def unflatten(metrics: dict, depth: int = 2):
    """{"en.test.words": 5, ...} -> DataFrame indexed by (en, test) with a `words` column (inverse of flatten_rows)."""
    import pandas as pd

    rows = {}
    for key, value in metrics.items():
        parts = key.split(".", depth)
        if len(parts) == depth + 1:
            rows.setdefault(tuple(parts[:depth]), {})[parts[depth]] = value
    return pd.DataFrame.from_dict(rows, orient="index")


def latest(sub, experiment: str):
    """The newest record (as a Series) of one experiment in a family's records, or None."""
    rows = sub[sub["experiment"] == experiment]
    return None if not len(rows) else rows.sort_values("created").iloc[-1]


def group_metrics(row, prefix: str = "metrics.") -> dict:
    return {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix) and v == v and v is not None}
