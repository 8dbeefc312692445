"""The generated blocks of README.md (the one-line-per-family headline table) and docs/results.md (every family's
results) are what the committed records give (python -m helpers readme)."""
import pytest

from helpers import families, readme
from helpers.paths import REPO_ROOT
from helpers.results import load_records


@pytest.mark.parametrize("page", sorted(readme.pages()))
def test_committed_blocks_are_what_the_records_give(page):
    text = (REPO_ROOT / page).read_text()
    new, changed = readme.render(text, load_records(report=False), readme.pages()[page], page)
    assert not changed, f"{page} blocks {changed} differ from results/: run `python -m helpers readme`"
    assert new == text


def test_the_readme_table_has_one_line_per_family():
    text = (REPO_ROOT / readme.README).read_text()
    block = text.split("<!-- results:headlines -->\n")[1].split("<!-- /results:headlines -->")[0]
    rows = block.strip().splitlines()[2:]
    assert len(rows) == len(families.FAMILIES)
    for f, row in zip(families.FAMILIES, rows):
        assert f.title in row and f"helpers/{f.package}" in row and row.count("|") - row.count("\\|") == 5


def test_render_rewrites_only_inside_the_markers(monkeypatch):
    monkeypatch.setattr(readme, "blocks", lambda: {"seed000": lambda recs: f"{len(recs)} records"})
    text = "before\n<!-- results:seed000 -->\nstale typed figure 0.42\n<!-- /results:seed000 -->\nafter\n"
    new, changed = readme.render(text, [{}, {}])
    assert new == "before\n<!-- results:seed000 -->\n2 records\n<!-- /results:seed000 -->\nafter\n"
    assert changed == ["seed000"] and readme.render(new, [{}, {}])[1] == []
    with pytest.raises(ValueError, match="docs/results.md has no block '<!-- results:seed000 -->'.*allowed blocks: "
                                         "seed000"):
        readme.render("no markers here", [])
    head = {"headlines": lambda recs: "| table |"}
    with pytest.raises(ValueError, match="README.md has no block '<!-- results:headlines -->'"):
        readme.render(text, [], head, "README.md")


def test_shorten_keeps_one_sentence_without_long_asides():
    line = ("b. at 20% fewer parameters, whiten raises the loss by +0.486 nats (95% paired bootstrap [+0.400, +0.563]; "
            "teacher 3.702) (n=3). Plain SVD scores 16.17, i.e. worse | than a guess.")
    assert readme.shorten(line) == "At 20% fewer parameters, whiten raises the loss by +0.486 nats (n=3)."
    long = "x: " + "; ".join(f"cell {i} 1.2{i}" for i in range(40))
    out = readme.shorten(long, limit=100)
    assert len(out) <= 104 and out.endswith(" ...") and readme.shorten("a | b") == "A \\| b"
    assert readme.github_slug("Looped transformer, in-context learning (seed 002)") == \
        "looped-transformer-in-context-learning-seed-002"


def test_main_check_names_the_stale_blocks(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(readme, "pages", lambda: {readme.README: {"headlines": lambda recs: "| table |"},
                                                  readme.RESULTS_PAGE: {"seed002": lambda recs: "results"}})
    (tmp_path / "docs").mkdir()
    (tmp_path / readme.README).write_text("<!-- results:headlines -->\n| table |\n<!-- /results:headlines -->\n")
    page = tmp_path / readme.RESULTS_PAGE
    page.write_text("<!-- results:seed002 -->\ntyped 0.1\n<!-- /results:seed002 -->\n")
    assert readme.main(check=True, root=tmp_path) == 1
    assert "docs/results.md: seed002" in capsys.readouterr().out and "typed" in page.read_text()
    assert readme.main(root=tmp_path) == 0 and readme.main(check=True, root=tmp_path) == 0
    assert page.read_text() == "<!-- results:seed002 -->\nresults\n<!-- /results:seed002 -->\n"


def test_the_dpo_headline_says_degraded_unless_a_run_meets_all_four_criteria():
    """06's one line must not report a preference that rose alone: from the committed records (every DPO run
    displaced its chosen answers) it says "DPO degraded the model at this scale" with each run's label and figures,
    and no "met" on the preference; with one run made to meet all four it names that run instead. Breakages caught:
    a headline on the preference alone, a label from the preference only."""
    from helpers import families
    from helpers.sft import report as R

    recs = families.family("06_sft_dpo").records(load_records(report=False))
    pairs = next(r for r in recs if r["experiment"] == "d_pairs")
    sft0 = next(r for r in recs if r["experiment"] == "sft" and r["variant"] == "baseline" and r["seed"] == 0)
    rows = R.dpo_rows([r for r in recs if r["experiment"] == "dpo"], pairs, sft0)
    line = R.headline(recs)
    if all(r["median chosen change"] < 0 for r in rows):        # every run displaced its chosen answers
        assert "DPO degraded the model at this scale: no run of" in line and "displacement" in line
        assert "met all four" not in line and line.count(": met") == 1            # SFT's target only
    # one DPO run whose log-probs, answers and loss equal the SFT model's plus a preference flip on every pair: the
    # chosen answer gains, nothing else moves, so it meets all four
    import copy

    good = copy.deepcopy(next(r for r in recs if r["experiment"] == "dpo"))
    ref = pairs["tables"]["ref.heldout"]
    good["tables"]["logps.heldout"] = [{"chosen": x["chosen"] + 1.0, "rejected": min(x["rejected"], x["chosen"]) - 1}
                                       for x in ref]
    good["tables"]["test_rows"], good["tables"]["answers"] = sft0["tables"]["test_rows"], sft0["tables"]["answers"]
    good["variant"], good["run_id"] = "rpo", "rpo-test"
    line = R.headline([*recs, good])
    assert "DPO met all four criteria" in line and f"rpo s{good['seed']}" in line
