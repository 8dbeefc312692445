"""The generated text of README.md and docs/results.md: text between `<!-- results:NAME -->` and
`<!-- /results:NAME -->` is written from the committed records, never typed by hand.

- docs/results.md: one block per family that writes one (`Family.readme`: seed000 ... seed004), the family's
  report's `readme_block(records)` where it has one, else its conclusion lines.
- README.md: the `headlines` block, a table with one line per family (every family of `families.FAMILIES`): the
  family report's own `headline(records)` where it words one (06: the preference beside the answer loss it cost),
  else one line of its conclusion (or of its `readme_block`), picked by its opening words in `HEADLINES` (else the
  first), cut to its first sentence without its long parenthesised asides (the statistics stay in docs/results.md).

    python -m helpers readme            # rewrite every block of README.md and docs/results.md from results/
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

README = "README.md"
RESULTS_PAGE = "docs/results.md"

# The line that carries each family's main comparison, by its opening words in the family's conclusion (or
# readme_block) text, and a label put before it where the line alone would not say what it compares. A family whose
# report words it differently falls back to its first conclusion line: the table stays generated, only less apt.
HEADLINES = {
    "baselines": ("from scratch:", ""),
    "surgery": ("Each variant vs the original", ""),
    "compression": ("b. ", ""),
    "looped": ("at k = 2d:", ""),
    "pretraining": ("best ", "batch x accumulation at equal time: "),
}
HEADLINE_CHARS = 240          # a headline longer than this (after the cuts) ends at a clause boundary with " ..."
ASIDE_CHARS = 15              # parenthesised asides this long or longer are dropped from a headline; "(n=5)" stays


def family_block(family: families.Family, records: list[dict]) -> str:
    """A family's results paragraph (docs/results.md): its report's own block (`readme_block(records)`, where it
    writes one), else its conclusion lines (the same `report(records).text` the notebook and Analysis print), with the
    records' profile, count and commits. Nothing in it is typed."""
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
    head = (f"**{family.title}** ([{nb}](../notebooks/{nb}.ipynb), {profile} profile, "
            f"{len(recs)} records from commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}):")
    return "\n".join([head, ""] + [f"- {line}" for line in (text or "no conclusion yet").splitlines() if line.strip()])


# ------------------------------------------------------------------------------------------------ headlines
def _drop_asides(line: str) -> str:
    """The line without its parenthesised asides of ASIDE_CHARS characters or more (nested ones included)."""
    out, stack = [], []
    for ch in line:
        if ch == "(":
            stack.append(len(out))
        out.append(ch)
        if ch == ")" and stack:
            start = stack.pop()
            if len(out) - start >= ASIDE_CHARS:
                del out[start:]
    text = "".join(out)
    text = re.sub(r"\s+([,;:.])", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def shorten(line: str, limit: int = HEADLINE_CHARS) -> str:
    """One conclusion line as one table cell: no bullet or section letter ("b. "), no long asides, its first
    sentence, at most `limit` characters (cut at a clause), first letter capitalised, `|` escaped."""
    line = re.sub(r"^[a-z]\. ", "", line.strip().lstrip("-").strip())
    line = _drop_asides(line)
    line = re.split(r"(?<![.\s][a-z]\.)(?<=[.!?])\s+(?=[A-Za-z])", line)[0]     # not after "i.e.", "s.e."
    if len(line) > limit:
        cut = max(line.rfind("; ", 0, limit), line.rfind(", ", 0, limit))
        line = line[:cut if cut > limit // 2 else line.rfind(" ", 0, limit)].rstrip(",;: ") + " ..."
    return (line[:1].upper() + line[1:]).replace("|", "\\|")


def _lines(family: families.Family, records: list[dict]) -> tuple[list[str], str | None]:
    """(the family's conclusion lines, then its readme_block's bullets; the profile they are of)."""
    recs, profile = select(family.records(records))
    if not recs:
        return [], None
    lines = (family.report.report(recs).text or "").splitlines()
    plt.close("all")
    if hasattr(family.report, "readme_block"):
        lines += [ln[2:] for ln in family.report.readme_block(family.records(records)).splitlines()
                  if ln.startswith("- ")]
    return [ln.strip() for ln in lines if ln.strip()], profile


def headline(family: families.Family, records: list[dict]) -> str:
    """The family's one line for README.md's table (see HEADLINES), or how to make records where there are none."""
    lines, profile = _lines(family, records)
    if not lines:
        return f"no records yet (`make run NB={family.notebooks[0][:2]}`)"
    if hasattr(family.report, "headline"):     # a family that words its own line (from its records)
        recs, _ = select(family.records(records))
        return family.report.headline(recs) + ("" if profile == "local" else f" *({profile} profile)*")
    opening, label = HEADLINES.get(family.package, ("", ""))
    line = next((ln for ln in lines if opening and ln.startswith(opening)), lines[0])
    text = shorten(line)
    if label:                                 # "Sigmoid DPO on ...", "Batch x accumulation ...: best ..."
        text = (label + (text if text[1:2].isupper() else text[:1].lower() + text[1:]))
        text = text[:1].upper() + text[1:]
    return text + ("" if profile == "local" else f" *({profile} profile)*")


def github_slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headlines_block(records: list[dict]) -> str:
    """README.md's table: each family, its notebooks, its package and its headline from the records."""
    out = ["| family | notebooks | code | headline (from the committed records) |", "|---|---|---|---|"]
    for f in families.FAMILIES:
        name = (f"[{f.title}]({RESULTS_PAGE}#{github_slug(f.title)})" if f.readme else f.title)
        nbs = ", ".join(f"[{nb[:2]}](notebooks/{nb}.ipynb)" for nb in f.notebooks)
        out.append(f"| {name} | {nbs} | [`helpers/{f.package}`](helpers/{f.package}/__init__.py) | "
                   f"{headline(f, records)} |")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ the pages
def blocks() -> dict:
    """{block name: function(records) -> markdown} of docs/results.md, one per family that writes a block."""
    return {f.readme: (lambda recs, f=f: family_block(f, recs)) for f in families.FAMILIES if f.readme}


def pages() -> dict:
    """{page, relative to the repository: {block name: function(records) -> markdown}}: every generated block."""
    return {README: {"headlines": headlines_block}, RESULTS_PAGE: blocks()}


def _pattern(name: str):
    return re.compile(rf"(<!-- results:{name} -->\n)(.*?)(<!-- /results:{name} -->)", re.S)


def render(text: str, records: list[dict], page_blocks: dict | None = None,
           page: str = RESULTS_PAGE) -> tuple[str, list[str]]:
    """(the page's text with every block regenerated, names of the blocks whose content changed). `page_blocks`
    defaults to docs/results.md's family blocks."""
    page_blocks = blocks() if page_blocks is None else page_blocks
    changed = []
    for name, fn in page_blocks.items():
        pat = _pattern(name)
        m = pat.search(text)
        if m is None:
            raise ValueError(f"{page} has no block '<!-- results:{name} -->' ... '<!-- /results:{name} -->'; "
                             f"allowed blocks: {', '.join(page_blocks)}")
        body = fn(records).rstrip("\n") + "\n"
        if m.group(2) != body:
            changed.append(name)
        text = text[:m.start(2)] + body + text[m.end(2):]
    return text, changed


def main(check: bool = False, root: Path | None = None) -> int:
    root = root or REPO_ROOT
    records = load_records(report=False)
    texts, stale = {}, []
    for page, page_blocks in pages().items():        # every page rendered before any is written
        texts[page], changed = render((root / page).read_text(), records, page_blocks, page)
        stale += [f"{page}: {name}" for name in changed]
    if check:
        if stale:
            print(f"generated blocks out of date with results/: {', '.join(stale)} (run: python -m helpers readme)")
            return 1
        print(f"the generated blocks of {' and '.join(texts)} match the records")
        return 0
    for page, text in texts.items():
        (root / page).write_text(text)
    print(f"rewrote {len(stale)} block(s): {', '.join(stale) or 'none changed'}")
    return 0
