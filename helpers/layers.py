"""Layer selections, shared by the surgery ops (seed 000) and the compression targets (seed 001).

  "all"      every layer
  "after:k"  layers >= k (the first k keep the original)
  "a-b"      an inclusive range;  "i,j,..." and mixes such as "0-3,7"
Indices are 0-based. `map_layers` moves a selection written for a deep model onto a shallower stand-in by depth
fraction.
"""
from __future__ import annotations

import re


def parse_layers(sel: str, n_layers: int) -> list[int]:
    """'all' | 'after:k' | 'a-b' | 'i,j' (and mixes) -> sorted 0-based indices, validated against n_layers."""
    sel = str(sel).strip()
    if sel == "all":
        return list(range(n_layers))
    m = re.fullmatch(r"after:(\d+)", sel)
    if m:
        k = int(m.group(1))
        if k >= n_layers:
            raise ValueError(f"layer selection '{sel}': keeping the first {k} layers leaves nothing to change in a "
                             f"{n_layers}-layer model; use after:k with 0 <= k < {n_layers}")
        return list(range(k, n_layers))
    out = set()
    for part in sel.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"bad layer selection '{sel}'; allowed: 'all', 'after:k', 'a-b', 'i,j,...'")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise ValueError(f"bad layer range '{part.strip()}' in '{sel}': the end is before the start")
        if b >= n_layers:
            raise ValueError(f"layer index {b} in '{sel}' is out of range: the model has {n_layers} layers "
                             f"(valid indices 0-{n_layers - 1})")
        out.update(range(a, b + 1))
    return sorted(out)


def _ranges(idx: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    out, start = [], None
    for i, j in enumerate(idx):
        if start is None:
            start = j
        if i + 1 == len(idx) or idx[i + 1] != j + 1:
            out.append(f"{start}" if start == j else f"{start}-{j}")
            start = None
    return ",".join(out)


def map_layers(sel: str, full_layers: int, layers: int) -> str:
    """A layer selection written for a `full_layers`-deep model, mapped by depth fraction onto a `layers`-deep
    stand-in (the identity when the depths agree).

      after:k   the first k layers keep the original -> the first max(1, round(k * layers / full_layers)) do (a
                kept prefix never vanishes; it keeps at least one layer free of the op, at most layers - 1)
      a-b, i,j  stand-in layer j is selected when the full-depth layer at its centre, floor((j + 0.5) * full /
                layers), is; a selection that catches no centre takes the stand-in layer holding its middle
    e.g. 24 -> 6 layers: after:1, after:2, after:3 -> after:1; after:6 -> after:2; 12-18 -> 3-4; 20-23 -> 5."""
    if layers == full_layers or str(sel).strip() == "all":
        return sel
    if not 1 <= layers <= full_layers:
        raise ValueError(f"a stand-in of {layers} layers cannot map selections of a {full_layers}-layer model; "
                         f"allowed: 1-{full_layers} layers")
    m = re.fullmatch(r"after:(\d+)", str(sel).strip())
    if m:
        k = int(m.group(1))
        parse_layers(sel, full_layers)        # validates k against the full depth
        return f"after:{0 if k == 0 else min(layers - 1, max(1, round(k * layers / full_layers)))}"
    chosen = set(parse_layers(sel, full_layers))
    idx = [j for j in range(layers) if int((j + 0.5) * full_layers / layers) in chosen]
    if not idx:
        middle = sum(chosen) / len(chosen)
        idx = [min(layers - 1, int((middle + 0.5) * layers / full_layers))]
    return _ranges(idx)
