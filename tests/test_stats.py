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
