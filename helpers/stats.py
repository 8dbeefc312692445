"""Comparisons of run metrics, one way for every family: the difference of two arms' means with Welch's t-test
(each arm's own variance; n and degrees of freedom reported), and Holm's correction when a table makes several
comparisons at once. One run in an arm has no spread to test against: that is "n = 1: no test", never a verdict.

    c = welch_samples(losses_variant, losses_original)       # diff = mean(a) - mean(b)
    rows = verdicts([c1, c2, ...])                            # Holm-adjusted p and a verdict per comparison

Also here: the paired bootstrap of a loss difference over sequences (`paired_bootstrap`), for evaluations of two
models on the same held-out rows.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as st

NO_TEST = "n = 1: no test"
ALPHA = 0.05


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
    if se == 0:                 # identical runs in both arms: a difference is certain, none is not
        return Comparison(diff, n_a, n_b, 0.0, None, None, 0.0 if diff else 1.0, "no spread")
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
    "worse" when the adjusted p < alpha, "no measurable difference" otherwise, "n = 1: no test" without spread)."""
    adjusted = holm([c.p for c in comparisons])
    rows = []
    for c, p_holm in zip(comparisons, adjusted):
        if p_holm is None:
            verdict = NO_TEST
        elif p_holm >= alpha:
            verdict = "no measurable difference"
        else:
            verdict = "better" if (c.diff < 0) == lower_is_better else "worse"
        rows.append({**c.as_dict(), "p_holm": p_holm, "verdict": verdict, "m": sum(p is not None for p in adjusted)})
    return rows


def describe(row: dict) -> str:
    """'+0.120 (Welch t = 2.10, df = 3.4, p = 0.13, Holm p = 0.90 over 24; n = 3 vs 3): no measurable difference'."""
    if row.get("p") is None or row.get("t") is None:
        test = "" if row["test"] == row["verdict"] else f"{row['test']}; "
        return f"{row['diff']:+.3f} ({test}n = {row['n_a']} vs {row['n_b']}): {row['verdict']}"
    return (f"{row['diff']:+.3f} (Welch t = {row['t']:.2f}, df = {row['df']:.1f}, p = {row['p']:.3g}, Holm p = "
            f"{row['p_holm']:.3g} over {row['m']}; n = {row['n_a']} vs {row['n_b']}): {row['verdict']}")


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
