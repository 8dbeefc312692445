"""The README's generated results blocks: text between `<!-- results:NAME -->` and `<!-- /results:NAME -->` is
written by a family's `readme_block(records)` from the committed records, never typed by hand.

    python -m helpers readme            # rewrite every block of README.md from results/
    python -m helpers readme --check    # exit 1 and name the blocks that differ (tests/test_readme.py does this)
"""
from __future__ import annotations

import re
from pathlib import Path


def blocks() -> dict:
    """{block name: function(records of its family) -> markdown}."""
    from . import surgery_study

    return {"seed000": lambda recs: surgery_study.readme_block(
        [r for r in recs if r["notebook"] in surgery_study.NOTEBOOKS])}


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
    from .paths import REPO_ROOT
    from .results import load_records

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
