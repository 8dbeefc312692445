"""Comparisons of run metrics over training seeds, one way for every family, with n and degrees of freedom:

  welch / welch_samples + verdicts   two unrelated arms: Welch's t-test (each arm's own variance), Holm's
                                     correction when a table makes several comparisons at once
  many_to_one                        many variants against one control: Dunnett's test on the pooled variance
                                     (residual df = N - groups; scipy.stats.dunnett), with Brown-Forsythe's check
                                     that the variances are alike (only where every arm has >= 3 runs) and each
                                     variant's Welch test beside it
  all_pairs                          every pair of arms at once: Tukey's HSD on the pooled variance
                                     (scipy.stats.tukey_hsd; df = N - groups)
  equivalence                        "the same as": two one-sided tests (TOST) against a margin stated beforehand;
                                     equivalent / different / inconclusive
  mcnemar                            two models judged right / wrong on the same items (paired): the exact test on
                                     the discordant items
One run in an arm has no spread to test against: "n = 1: no test"; arms whose runs are all identical likewise ("no
spread: no test"). Neither is ever a verdict.

    c = welch_samples(losses_variant, losses_original)       # diff = mean(a) - mean(b)
    rows = verdicts([c1, c2, ...])                            # Holm-adjusted p and a verdict per comparison
    rows = many_to_one({"exp 2": [...], "exp 3": [...]}, control=[...])
    row = equivalence(a, b, margin=0.05)

Also here: the paired bootstrap of a loss difference over sequences (`paired_bootstrap`), for evaluations of two
models on the same held-out rows.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as st

NO_TEST = "n = 1: no test"
NO_SPREAD = "no spread: no test"
ALPHA = 0.05
# Brown-Forsythe's test of equal variances needs >= 3 runs an arm: with 2, both absolute deviations from the arm's
# median are equal, every arm's spread is exactly zero around its own mean and the test returns a meaningless p
# (2e-123 on notebook 07's n = 2 cells)
LEVENE_MIN_N = 3
VERDICTS = ("better", "worse", "no measurable difference", NO_TEST, NO_SPREAD)


@dataclass(frozen=True)
class Comparison:
    diff: float                 # mean(a) - mean(b)
    n_a: int
    n_b: int
    se: float | None = None     # standard error of the difference: sqrt(sd_a^2 / n_a + sd_b^2 / n_b)
    df: float | None = None     # Welch-Satterthwaite degrees of freedom
    t: float | None = None
    p: float | None = None      # two-sided
    test: str = NO_TEST

    def as_dict(self) -> dict:
        return asdict(self)


def welch(a_mean: float, a_sd: float, n_a: int, b_mean: float, b_sd: float, n_b: int) -> Comparison:
    """Welch's t-test of mean(a) - mean(b) from each arm's mean, sample sd (ddof 1) and n."""
    diff = float(a_mean - b_mean)
    if min(n_a, n_b) < 2:
        return Comparison(diff, n_a, n_b)
    va, vb = a_sd ** 2 / n_a, b_sd ** 2 / n_b
    se = math.sqrt(va + vb)
    if se == 0:                 # identical runs in both arms: nothing to measure a difference against
        return Comparison(diff, n_a, n_b, 0.0, test=NO_SPREAD)
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    t = diff / se
    return Comparison(diff, n_a, n_b, se, df, t, float(2 * st.t.sf(abs(t), df)), "Welch t-test")


def welch_samples(a, b) -> Comparison:
    """welch() from the two arms' values."""
    a, b = [float(x) for x in a], [float(x) for x in b]

    def sd(x):
        m = sum(x) / len(x)
        return math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1)) if len(x) > 1 else 0.0

    return welch(sum(a) / len(a), sd(a), len(a), sum(b) / len(b), sd(b), len(b))


def holm(ps: list) -> list:
    """Holm's step-down adjusted p-values (family-wise error over the tested ones; None stays None)."""
    tested = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    m, out, running = len(tested), list(ps), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def verdicts(comparisons: list[Comparison], alpha: float = ALPHA, lower_is_better: bool = True) -> list[dict]:
    """One row per comparison: the comparison, its Holm-adjusted p over the whole list, and a verdict ("better" /
    "worse" when the adjusted p < alpha, "no measurable difference" otherwise, "n = 1: no test" or "no spread: no
    test" when there is nothing to test against)."""
    adjusted = holm([c.p for c in comparisons])
    rows = []
    for c, p_holm in zip(comparisons, adjusted):
        rows.append({**c.as_dict(), "p_holm": p_holm, "verdict": _verdict(c.diff, p_holm, c.test, alpha,
                                                                          lower_is_better),
                     "m": sum(p is not None for p in adjusted)})
    return rows


def _verdict(diff: float, p_adj: float | None, test: str, alpha: float, lower_is_better: bool) -> str:
    if p_adj is None:
        return test if test in (NO_TEST, NO_SPREAD) else NO_TEST
    if p_adj >= alpha:
        return "no measurable difference"
    return "better" if (diff < 0) == lower_is_better else "worse"


def _mean_sd(x) -> tuple[float, float, int]:
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0, len(x)


def many_to_one(variants: dict, control, alpha: float = ALPHA, lower_is_better: bool = True) -> list[dict]:
    """Every variant against one control, over training seeds: Dunnett's single-step test (scipy.stats.dunnett, a
    multivariate-t p-value adjusted for all the comparisons at once) on the variance pooled over every arm with
    n >= 2, so the degrees of freedom are the residual N - groups rather than each pair's ~2 of a Welch test.

    variants {name: values}, control: values. One row per variant (in order): diff = mean(variant) - mean(control),
    se = s_pooled sqrt(1/n + 1/n_control), df, t, p (Dunnett-adjusted), the variant's own Welch test (p_welch, beside
    it, unadjusted), verdict; and for the table: m (compared variants), sd_ratio (largest / smallest arm sd) and
    levene_p (Brown-Forsythe's test that the variances are alike; a small p says the pooled s.e. is unreliable and
    the Welch column is the safer reading). A variant or control with one run is "n = 1: no test"."""
    names = list(variants)
    c_mean, c_sd, n_c = _mean_sd(control)
    tested = [n for n in names if len(variants[n]) >= 2] if n_c >= 2 else []
    arms = [np.asarray(variants[n], dtype=float) for n in tested] + [np.asarray(control, dtype=float)]
    df = sum(len(a) for a in arms) - len(arms)
    pooled = math.sqrt(sum(((a - a.mean()) ** 2).sum() for a in arms) / df) if tested and df > 0 else 0.0
    p_adj = {}
    if tested and pooled > 0:
        res = st.dunnett(*arms[:-1], control=arms[-1], rng=np.random.default_rng(0))
        p_adj = dict(zip(tested, (float(p) for p in res.pvalue)))
    sds = [float(a.std(ddof=1)) for a in arms if len(a) > 1]
    levene = float(st.levene(*arms, center="median").pvalue) \
        if len(tested) and min(len(a) for a in arms) >= LEVENE_MIN_N and any(sds) else None
    rows = []
    for n in names:
        mean, sd, k = _mean_sd(variants[n])
        w = welch(mean, sd, k, c_mean, c_sd, n_c)
        base = {"name": n, "diff": mean - c_mean, "n_a": k, "n_b": n_c, "p_welch": w.p, "m": len(p_adj),
                "sd_ratio": max(sds) / min(sds) if sds and min(sds) > 0 else None, "levene_p": levene}
        if n not in tested:
            rows.append({**base, "se": None, "df": None, "t": None, "p": None, "test": NO_TEST, "verdict": NO_TEST})
        elif n not in p_adj:
            rows.append({**base, "se": 0.0, "df": df, "t": None, "p": None, "test": NO_SPREAD, "verdict": NO_SPREAD})
        else:
            se = pooled * math.sqrt(1 / k + 1 / n_c)
            rows.append({**base, "se": se, "df": df, "t": (mean - c_mean) / se, "p": p_adj[n], "test": "Dunnett",
                         "verdict": _verdict(mean - c_mean, p_adj[n], "Dunnett", alpha, lower_is_better)})
    return rows


def all_pairs(arms: dict, alpha: float = ALPHA, lower_is_better: bool = True) -> list[dict]:
    """Every pair of arms {name: values} compared at once by Tukey's HSD on the variance pooled over every arm
    (scipy.stats.tukey_hsd: the studentized range, p adjusted for all k (k - 1) / 2 pairs; df = N - k), not k (k - 1)
    / 2 Welch tests at a few df each, Holm-corrected, which at n = 2 an arm cannot call even a large gap.

    One row per pair (a, b) in the order of the names: diff = mean(a) - mean(b), se = s_pooled sqrt(1/n_a + 1/n_b),
    df, p (Tukey-adjusted), verdict for a against b ("better" / "worse" / "no measurable difference"), m (pairs).
    Arms with one run are left out of the family and their pairs read "n = 1: no test"; a family whose runs are all
    identical within every arm reads "no spread: no test"."""
    names = list(arms)
    tested = [n for n in names if len(arms[n]) >= 2]
    data = {n: np.asarray(arms[n], dtype=float) for n in names}
    df = sum(len(data[n]) for n in tested) - len(tested)
    pooled = math.sqrt(sum(((data[n] - data[n].mean()) ** 2).sum() for n in tested) / df) \
        if len(tested) >= 2 and df > 0 else 0.0
    pvals = st.tukey_hsd(*(data[n] for n in tested)).pvalue if len(tested) >= 2 and pooled > 0 else None
    m = len(tested) * (len(tested) - 1) // 2
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diff = float(data[a].mean() - data[b].mean())
            base = {"a": a, "b": b, "diff": diff, "n_a": len(data[a]), "n_b": len(data[b]), "m": m}
            if a not in tested or b not in tested:
                rows.append({**base, "se": None, "df": None, "p": None, "test": NO_TEST, "verdict": NO_TEST})
            elif pvals is None:
                rows.append({**base, "se": 0.0, "df": df, "p": None, "test": NO_SPREAD, "verdict": NO_SPREAD})
            else:
                p = float(pvals[tested.index(a), tested.index(b)])
                se = pooled * math.sqrt(1 / len(data[a]) + 1 / len(data[b]))
                rows.append({**base, "se": se, "df": df, "p": p, "test": "Tukey HSD",
                             "verdict": _verdict(diff, p, "Tukey HSD", alpha, lower_is_better)})
    return rows


def equivalence(a, b, margin: float, alpha: float = ALPHA) -> dict:
    """Is mean(a) the same as mean(b) within +-margin (stated before the data)? Two one-sided Welch t-tests (TOST):
    equivalent when both H0: diff <= -margin and H0: diff >= +margin are rejected at alpha, i.e. the (1 - 2 alpha)
    interval of the difference lies inside (-margin, +margin). Verdict: "equivalent"; else "different" when Welch's
    two-sided test rejects diff = 0; else "inconclusive" (neither shown). "n = 1: no test" / "no spread: no test"
    when an arm has one run or every run is identical."""
    if not margin > 0:
        raise ValueError(f"an equivalence margin must be > 0 (stated before the data), got {margin}")
    c = welch_samples(a, b)
    out = {"diff": c.diff, "margin": margin, "n_a": c.n_a, "n_b": c.n_b, "se": c.se, "df": c.df, "p_diff": c.p,
           "p_tost": None, "lo": None, "hi": None, "level": 1 - 2 * alpha}
    if c.p is None:
        return {**out, "verdict": c.test}
    p_low = float(st.t.sf((c.diff + margin) / c.se, c.df))           # H0: diff <= -margin
    p_high = float(st.t.cdf((c.diff - margin) / c.se, c.df))         # H0: diff >= +margin
    q = float(st.t.ppf(1 - alpha, c.df))
    out.update(p_tost=max(p_low, p_high), lo=c.diff - q * c.se, hi=c.diff + q * c.se)
    verdict = ("equivalent" if out["p_tost"] < alpha else "different" if c.p < alpha else "inconclusive")
    return {**out, "verdict": verdict}


def mcnemar(before, after) -> dict:
    """Two models judged right (True) / wrong on the same items: the change in accuracy (after - before) and McNemar's
    exact test, a two-sided binomial test of the discordant items (gained: wrong -> right, lost: right -> wrong)
    against 1/2. An interval over the items, not over training runs."""
    before, after = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
    if before.shape != after.shape or before.ndim != 1:
        raise ValueError(f"mcnemar needs the same items judged twice; got {before.shape} and {after.shape}")
    gained, lost = int((~before & after).sum()), int((before & ~after).sum())
    p = float(st.binomtest(gained, gained + lost, 0.5).pvalue) if gained + lost else 1.0
    return {"n": len(before), "before": float(before.mean()), "after": float(after.mean()),
            "diff": float(after.mean() - before.mean()), "gained": gained, "lost": lost, "p": p}


def mean_interval(x, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of runs (seeds) with its t interval; one run gives (mean, nan, nan)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan"), float("nan")
    half = float(st.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def p_text(p: float) -> str:
    """A p-value for print; below 1e-6 as '< 1e-6' (scipy's Dunnett integral reads 0 below its precision)."""
    return "< 1e-6" if p < 1e-6 else f"{p:.3g}"


def describe(row: dict) -> str:
    """'+0.120 (Welch t = 2.10, df = 3.4, p = 0.13, Holm p = 0.90 over 24; n = 3 vs 3): no measurable difference';
    a many_to_one row: '+0.120 (Dunnett t = 4.10, pooled df = 48, adjusted p = 0.003 over 22; n = 3 vs 3): worse'."""
    if row.get("p") is None or row.get("t") is None:
        test = "" if row["test"] == row["verdict"] else f"{row['test']}; "
        return f"{row['diff']:+.3f} ({test}n = {row['n_a']} vs {row['n_b']}): {row['verdict']}"
    if row.get("test") == "Dunnett":
        p = p_text(row["p"])
        return (f"{row['diff']:+.3f} (Dunnett t = {row['t']:.2f}, pooled df = {row['df']:.0f}, adjusted p "
                f"{p if p.startswith('<') else '= ' + p} over {row['m']}; n = {row['n_a']} vs {row['n_b']}): "
                f"{row['verdict']}")
    return (f"{row['diff']:+.3f} (Welch t = {row['t']:.2f}, df = {row['df']:.1f}, p = {row['p']:.3g}, Holm p = "
            f"{row['p_holm']:.3g} over {row['m']}; n = {row['n_a']} vs {row['n_b']}): {row['verdict']}")


def describe_equivalence(row: dict) -> str:
    """'-0.027, 90% CI [-0.046, -0.008] inside +-0.050 (TOST p = 0.01; n = 3 vs 3): equivalent'."""
    if row.get("p_tost") is None:
        return f"{row['diff']:+.3f} (n = {row['n_a']} vs {row['n_b']}): {row['verdict']}"
    inside = row["lo"] > -row["margin"] and row["hi"] < row["margin"]
    return (f"{row['diff']:+.3f}, {row['level']:.0%} CI [{row['lo']:+.3f}, {row['hi']:+.3f}] "
            f"{'inside' if inside else 'not inside'} +-{row['margin']:g} (TOST p = {row['p_tost']:.3g}, "
            f"difference p = {row['p_diff']:.3g}; n = {row['n_a']} vs {row['n_b']}): {row['verdict']}")


def paired_bootstrap(teacher: dict, student: dict, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Token-weighted loss difference (student - teacher) on the same sequences, with a paired bootstrap interval.

    `teacher` / `student` come from lm_loss(..., per_sequence=True) on identical rows; sequences (not tokens) are
    resampled, so within-sequence correlation is respected."""
    t = np.asarray(teacher["seq_loss_sum"])
    s = np.asarray(student["seq_loss_sum"])
    n = np.asarray(teacher["seq_tokens"])
    if not np.array_equal(n, np.asarray(student["seq_tokens"])):
        raise ValueError("teacher and student were evaluated on different sequences")
    diff = (s - t).sum() / n.sum()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(n), size=(n_boot, len(n)))
    boots = (s[idx] - t[idx]).sum(1) / n[idx].sum(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"delta": float(diff), "lo": float(lo), "hi": float(hi), "level": level, "sequences": int(len(n)),
            "tokens": int(n.sum())}
