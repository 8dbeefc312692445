"""The README's generated results blocks: text between `<!-- results:NAME -->` and `<!-- /results:NAME -->` is
written by a family's `readme_block(records)` from the committed records, never typed by hand.

    python -m helpers readme            # rewrite every block of README.md from results/
    python -m helpers readme --check    # exit 1 and name the blocks that differ (tests/test_readme.py does this)
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt

from . import families
from .analysis import select
from .paths import REPO_ROOT
from .results import load_records


def family_block(family: families.Family, records: list[dict]) -> str:
    """A family's README paragraph: its report's own block (`readme_block(records)`, where it writes one), else its
    conclusion lines (the same `report(records).text` the notebook and Analysis print), with the records' profile,
    count and commits. Nothing in it is typed."""
    report = family.report
    if hasattr(report, "readme_block"):
        return report.readme_block(family.records(records))
    recs, profile = select(family.records(records))
    if not recs:
        return f"**{family.title}**: no records yet (`make run NB={family.notebooks[0][:2]}`)."
    text = report.report(recs).text
    plt.close("all")                          # report() draws the figures Analysis shows; not needed here
    commits = sorted({r["provenance"].get("commit", "?")[:7] for r in recs})
    nb = family.notebooks[0]
    head = (f"**{family.title}** ([{nb}](notebooks/{nb}.ipynb), {profile} profile, "
            f"{len(recs)} records from commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}):")
    return "\n".join([head, ""] + [f"- {line}" for line in (text or "no conclusion yet").splitlines() if line.strip()])


def blocks() -> dict:
    """{block name: function(records) -> markdown}, one per family that writes a README block."""
    return {f.readme: (lambda recs, f=f: family_block(f, recs)) for f in families.FAMILIES if f.readme}


def _pattern(name: str):
    return re.compile(rf"(<!-- results:{name} -->\n)(.*?)(<!-- /results:{name} -->)", re.S)


def render(text: str, records: list[dict]) -> tuple[str, list[str]]:
    """(README text with every block regenerated, names of the blocks whose content changed)."""
    changed = []
    for name, fn in blocks().items():
        pat = _pattern(name)
        m = pat.search(text)
        if m is None:
            raise ValueError(f"README has no block '<!-- results:{name} -->' ... '<!-- /results:{name} -->'; "
                             f"allowed blocks: {', '.join(blocks())}")
        body = fn(records).rstrip("\n") + "\n"
        if m.group(2) != body:
            changed.append(name)
        text = text[:m.start(2)] + body + text[m.end(2):]
    return text, changed


def main(check: bool = False, readme: Path | None = None) -> int:
    path = readme or REPO_ROOT / "README.md"
    new, changed = render(path.read_text(), load_records(report=False))
    if check:
        if changed:
            print(f"README blocks out of date with results/: {', '.join(changed)} (run: python -m helpers readme)")
            return 1
        print("README blocks match the records")
        return 0
    path.write_text(new)
    print(f"rewrote {len(changed)} block(s): {', '.join(changed) or 'none changed'}")
    return 0
