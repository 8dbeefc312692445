"""The shared comparison statistics against independent computations."""
import math

import pytest
from scipy import stats as st

from helpers.stats import NO_TEST, describe, holm, verdicts, welch, welch_samples


def test_welch_matches_scipy_and_the_satterthwaite_df_by_hand():
    a, b = [5.1, 5.3, 5.0, 5.25], [4.9, 4.95, 4.7]
    c = welch_samples(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert c.t == pytest.approx(ref.statistic) and c.p == pytest.approx(ref.pvalue)
    va, vb = st.tvar(a) / 4, st.tvar(b) / 3                       # each arm's own variance of the mean
    assert c.se == pytest.approx(math.sqrt(va + vb))
    assert c.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2))
    assert c.diff == pytest.approx(sum(a) / 4 - sum(b) / 3) and (c.n_a, c.n_b) == (4, 3)


def test_one_run_in_an_arm_is_no_test_and_never_a_verdict():
    c = welch(5.5, 0.0, 1, 5.0, 0.1, 3)
    assert c.p is None and c.test == NO_TEST
    [row] = verdicts([c])
    assert row["verdict"] == NO_TEST and "better" not in describe(row) and "worse" not in describe(row)


def test_holm_by_hand_and_its_effect_on_verdicts():
    # p sorted 0.01, 0.02, 0.03, 0.5 over m = 4: 0.04, max(0.04, 0.06), max(0.06, 0.06), max(0.06, 0.5)
    # step-down: an adjusted p is never below the one before it (0.011 x 2 = 0.022 is raised to 0.03)
    assert holm([0.011, 0.01, 0.04]) == pytest.approx([0.03, 0.03, 0.04])
    adj = holm([0.03, 0.01, None, 0.5, 0.02])
    assert adj[2] is None and [adj[i] for i in (0, 1, 3, 4)] == pytest.approx([0.06, 0.04, 0.5, 0.06])
    # a p of 0.03 alone is a difference; among four comparisons it is not
    alone = verdicts([welch_samples([5.3, 5.35, 5.4], [5.0, 5.1, 5.2])])[0]
    assert alone["p"] < 0.05 and alone["verdict"] == "worse"
    crowd = verdicts([welch_samples([5.3, 5.35, 5.4], [5.0, 5.1, 5.2])] + [welch_samples([1, 2, 3], [1, 2, 3.1])] * 9)
    assert crowd[0]["p_holm"] == pytest.approx(min(1, 10 * alone["p"]))
    assert crowd[0]["verdict"] == ("worse" if 10 * alone["p"] < 0.05 else "no measurable difference")


def test_direction_follows_the_metric():
    c = welch_samples([1.0, 1.1, 0.9], [3.0, 3.1, 2.9])              # a is lower
    assert verdicts([c])[0]["verdict"] == "better"
    assert verdicts([c], lower_is_better=False)[0]["verdict"] == "worse"


def test_many_to_one_is_dunnetts_test_on_the_pooled_variance():
    """Dunnett's (1955) blood-count example, as scipy's documentation gives it: p = 0.620 and 0.0059 against the
    control; the pooled s.e. and t by hand; the Welch tests beside it; a variant with one run is no test."""
    from helpers.stats import many_to_one

    control = [7.40, 8.50, 7.20, 8.24, 9.84, 8.32]
    a, b = [9.76, 8.80, 7.68, 9.36], [12.80, 9.68, 12.16, 9.20, 10.55]
    rows = many_to_one({"a": a, "b": b, "one run": [9.0]}, control, lower_is_better=False)
    ra, rb, r1 = rows
    assert [ra["p"], rb["p"]] == pytest.approx([0.62004941, 0.0059035], abs=2e-3)
    ss = sum(sum((x - sum(g) / len(g)) ** 2 for x in g) for g in (control, a, b))
    df = len(control) + len(a) + len(b) - 3
    sp = math.sqrt(ss / df)
    assert ra["df"] == df == 12 and ra["se"] == pytest.approx(sp * math.sqrt(1 / 4 + 1 / 6))
    assert rb["t"] == pytest.approx((sum(b) / 5 - sum(control) / 6) / (sp * math.sqrt(1 / 5 + 1 / 6)))
    assert rb["p_welch"] == pytest.approx(st.ttest_ind(b, control, equal_var=False).pvalue)
    assert (ra["verdict"], rb["verdict"], r1["verdict"]) == ("no measurable difference", "better", NO_TEST)
    assert ra["m"] == 2 and ra["levene_p"] == pytest.approx(st.levene(a, b, control, center="median").pvalue)
    assert "Dunnett t = " in describe(rb) and "pooled df = 12" in describe(rb)
    # more power than Welch + Holm at 3 seeds an arm: a clear shift that Welch (df ~ 2) and Holm miss
    ctl = [2.00, 2.03, 1.97]
    variants = {f"v{i}": [2.00 + d, 2.03 + d, 1.97 + d] for i, d in enumerate([0.10] + [0.0] * 9)}
    dunnett = many_to_one(variants, ctl)[0]
    holm_row = verdicts([welch_samples(v, ctl) for v in variants.values()])[0]
    assert dunnett["verdict"] == "worse" and dunnett["p"] < holm_row["p_holm"]


def test_zero_spread_is_no_test_not_p_0():
    from helpers.stats import NO_SPREAD, many_to_one

    c = welch_samples([2.0, 2.0], [1.0, 1.0])
    assert c.p is None and c.test == NO_SPREAD
    assert verdicts([c])[0]["verdict"] == NO_SPREAD and "better" not in describe(verdicts([c])[0])
    assert many_to_one({"v": [2.0, 2.0]}, [1.0, 1.0])[0]["verdict"] == NO_SPREAD


def test_equivalence_by_two_one_sided_tests():
    """TOST on constructed arms: a tiny difference measured tightly is equivalent; a clear one is different; a
    noisy small sample shows neither (inconclusive); the margin must be stated and positive."""
    from helpers.stats import describe_equivalence, equivalence

    base = [1.00, 1.01, 0.99, 1.00, 1.02, 0.98, 1.01, 0.99]
    same = equivalence([x + 0.002 for x in base], base, margin=0.05)
    assert same["verdict"] == "equivalent" and -0.05 < same["lo"] < same["hi"] < 0.05 and same["p_tost"] < 0.05
    # the TOST p is the larger one-sided p, by hand from Welch's s.e. and df
    c = welch_samples([x + 0.002 for x in base], base)
    assert same["p_tost"] == pytest.approx(max(st.t.sf((c.diff + 0.05) / c.se, c.df),
                                               st.t.cdf((c.diff - 0.05) / c.se, c.df)))
    assert equivalence([x + 0.3 for x in base], base, margin=0.05)["verdict"] == "different"
    noisy = equivalence([1.0, 1.3, 0.8], [1.1, 0.7, 1.2], margin=0.05)
    assert noisy["verdict"] == "inconclusive" and "not inside" in describe_equivalence(noisy)
    assert equivalence([1.0], base, margin=0.05)["verdict"] == NO_TEST
    with pytest.raises(ValueError, match="margin must be > 0"):
        equivalence(base, base, margin=0)


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_items():
    from helpers.stats import mcnemar

    before = [True] * 50 + [False] * 50
    after = [True] * 48 + [False] * 2 + [True] * 15 + [False] * 35     # 15 gained, 2 lost
    m = mcnemar(before, after)
    assert (m["gained"], m["lost"], m["n"]) == (15, 2, 100) and m["diff"] == pytest.approx(0.13)
    assert m["p"] == pytest.approx(st.binomtest(15, 17, 0.5).pvalue) and m["p"] < 0.01
    assert mcnemar([True, False], [True, False])["p"] == 1.0
    with pytest.raises(ValueError, match="same items judged twice"):
        mcnemar([True], [True, False])
