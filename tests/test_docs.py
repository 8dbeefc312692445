"""README.md orients in a screen and links out; every relative link in it and in docs/*.md resolves: the file (or
folder) exists and, for `#anchor` links into a markdown file, the heading exists (GitHub's slug rules)."""
import re
from pathlib import Path

import pytest

from helpers.paths import REPO_ROOT

PAGES = [REPO_ROOT / "README.md"] + sorted((REPO_ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")   # [text](target), [![img](x)](y)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
README_MAX_LINES = 150


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    seen, out = {}, set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(1))
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


def links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)                     # code spans are not links
    return [m.group(1) for m in LINK.finditer(text)]


def broken(path: Path) -> list[str]:
    """The page's relative links that do not resolve, each with why."""
    out = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):      # http:, https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            out.append(f"{target}: no file {dest.relative_to(REPO_ROOT) if dest.is_relative_to(REPO_ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{target}: no heading #{anchor} in {dest.name}")
    return out


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(path):
    assert broken(path) == []


def test_the_link_pattern_finds_the_readmes_links():
    assert len(links(REPO_ROOT / "README.md")) >= 20


def test_readme_is_at_most_150_lines():
    n = len((REPO_ROOT / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail to docs/ (at most {README_MAX_LINES})"


def test_every_docs_page_is_linked_from_the_readme():
    targets = {t.partition("#")[0] for t in links(REPO_ROOT / "README.md")}
    assert {f"docs/{p.name}" for p in PAGES[1:]} <= targets


def test_the_checker_catches_a_broken_file_and_anchor(tmp_path):
    (tmp_path / "b.md").write_text("# Seed 002: the `looped` model's run\n\n## Notes\n\n## Notes\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#seed-002-the-looped-models-run) [ok](b.md#notes-1) [ok](#top) [x](https://x.y/z)\n"
                    "[gone](c.md) [bad](b.md#nope)\n\n# Top\n\n```\n[not a link](nowhere.md)\n```\n")
    assert [b.split(":")[0] for b in broken(page)] == ["c.md", "b.md#nope"]
