"""README.md's results blocks are generated from the committed records (python -m helpers readme)."""
import pytest

from helpers import readme
from helpers.paths import REPO_ROOT
from helpers.results import load_records


def test_committed_readme_blocks_are_what_the_records_give():
    text = (REPO_ROOT / "README.md").read_text()
    new, changed = readme.render(text, load_records(report=False))
    assert not changed, f"README blocks {changed} differ from results/: run `python -m helpers readme`"
    assert new == text


def test_render_rewrites_only_inside_the_markers(monkeypatch):
    monkeypatch.setattr(readme, "blocks", lambda: {"seed000": lambda recs: f"{len(recs)} records"})
    text = "before\n<!-- results:seed000 -->\nstale typed figure 0.42\n<!-- /results:seed000 -->\nafter\n"
    new, changed = readme.render(text, [{}, {}])
    assert new == "before\n<!-- results:seed000 -->\n2 records\n<!-- /results:seed000 -->\nafter\n"
    assert changed == ["seed000"] and readme.render(new, [{}, {}])[1] == []
    with pytest.raises(ValueError, match="README has no block '<!-- results:seed000 -->'.*allowed blocks: seed000"):
        readme.render("no markers here", [])
