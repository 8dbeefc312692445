"""Notebook 05's numbers from its records (torch-free): the gate (every seed of both arms below 1/3 of averaging's
error at k = 2d), escape rates with Fisher's test, looped vs standard by Welch and by TOST against the stated margin,
cost per prediction, each arm / averaging with a bootstrap interval over seeds and prompts, error against inference
loops and loop drift over seeds, the options and the other tasks against their trivial references, and the regime
search's table. helpers.looped.report draws the figures, writes the conclusion and builds `report()` from these."""
from __future__ import annotations

import json

import numpy as np
from scipy import stats as st

from ..analysis import by_experiment, frame, one, records_of
from ..stats import describe, describe_equivalence, equivalence, mean_interval, verdicts, welch_samples

K_LABELS = ("k=d", "k=2d")
GATE = 1 / 3                     # the target: looped / averaging <= 1/3 at k = 2d, asked of every seed of both arms
TRIVIAL = ("zero", "averaging", "3-nn")
STRUCTURAL = {"sparse_linear_regression": "lasso", "decision_tree": "greedy_tree", "relu_2nn": "relu_net",
              "noisy_linear_regression": "least_squares", "linear_regression": "least_squares"}


# ------------------------------------------------------------------------------------------------ reading records
def errors_of(rec: dict, name: str = "test_errors") -> np.ndarray:
    """A record's per-prompt errors (P, n)."""
    rows = sorted(rec["tables"][name], key=lambda r: r["k"])
    return np.array([r["errors"] for r in rows]).T


def by_arm(records) -> dict:
    """{experiment: [records sorted by seed]} of ok runs."""
    out = {}
    for r in sorted(records_of(records), key=lambda r: r["seed"]):
        if r["status"] == "ok":
            out.setdefault(r["experiment"], []).append(r)
    return out


def _k2(rec: dict) -> int:
    return 2 * rec["metrics"]["d"]


def ratio_interval(num, den, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """mean(num) / mean(den) with a bootstrap interval: num (S, P) of S training seeds and den (P,) on the same P
    prompts; each replicate resamples the seeds and, paired across the two, the prompts."""
    num = np.atleast_2d(num)
    rng = np.random.default_rng(seed)
    S, P = num.shape
    reps = np.empty(n_boot)
    for b in range(n_boot):
        idx, sdx = rng.integers(0, P, size=P), rng.integers(0, S, size=S)
        reps[b] = num[sdx][:, idx].mean() / den[idx].mean()
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return {"ratio": float(num.mean() / den.mean()), "lo": float(lo), "hi": float(hi), "level": level,
            "seeds": S, "prompts": P}


# ------------------------------------------------------------------------------------------------ the headline
def gate_table(headline, base):
    """Every reported run at k = 2d: its error, averaging's on the same prompts, the gate (< 1/3 of it) and whether
    it left the predict-zero plateau at all (below averaging)."""
    avg = one(base)["metrics"]["averaging.k=2d"]
    rows = [{"arm": r["experiment"], "seed": r["seed"], "error k=2d": r["metrics"]["err.k=2d"],
             "averaging k=2d": avg, "/ averaging": r["metrics"]["err.k=2d"] / avg,
             "gate (< 1/3)": "pass" if r["metrics"]["err.k=2d"] < GATE * avg else "FAIL",
             "escaped (< averaging)": r["metrics"]["err.k=2d"] < avg}
            for arm in ("looped", "standard") for r in by_arm(headline).get(arm, [])]
    return frame(rows)


def _point(config: dict) -> dict:
    """What makes a regime point the same as a run's: its model and training, as JSON reads them back."""
    return json.loads(json.dumps({k: config.get(k) for k in ("model", "train")}))


def _regime_of(regime: list[dict], headline) -> list[dict]:
    """The regime search's runs of the headline's own configuration (its tuning seeds)."""
    h = by_arm(headline).get("looped", [])
    if not h:
        return []
    point = _point(h[0]["config"])
    return [r for r in records_of(regime) if _point(r["config"]) == point]


def escape_table(headline, base, regime=()):
    """Per arm: how many runs left the plateau (error at k = 2d below averaging's) among the reported seeds and the
    regime search's tuning seeds of the same configuration, and Fisher's exact test of looped vs standard."""
    avg = one(base)["metrics"]["averaging.k=2d"]
    arms = by_arm(headline)
    tuning = _regime_of(list(regime), headline)
    rows = []
    for arm in ("looped", "standard"):
        rep = [r["metrics"]["err.k=2d"] < avg for r in arms.get(arm, [])]
        tun = [r["metrics"][f"{arm}.k=2d"] < r["metrics"]["averaging.k=2d"] for r in tuning]
        rows.append({"arm": arm, "reported escaped": f"{sum(rep)} of {len(rep)}",
                     "tuning escaped": f"{sum(tun)} of {len(tun)}" if tun else "-", "escaped": sum(rep) + sum(tun),
                     "runs": len(rep) + len(tun)})
    (a, n1), (b, n2) = [(r["escaped"], r["runs"]) for r in rows]
    p = float(st.fisher_exact([[a, n1 - a], [b, n2 - b]]).pvalue) if n1 and n2 else None
    for r in rows:
        r["Fisher p (looped vs standard)"] = p
    return frame(rows, "arm")


def verdict(headline, margin: float) -> dict:
    """Looped - standard at k = 2d over training seeds: Welch's test (better / worse / no measurable difference)
    and TOST against the margin (equivalent / different / inconclusive)."""
    arms = by_arm(headline)
    a = [r["metrics"]["err.k=2d"] for r in arms.get("looped", [])]
    b = [r["metrics"]["err.k=2d"] for r in arms.get("standard", [])]
    return {"welch": verdicts([welch_samples(a, b)])[0], "tost": equivalence(a, b, margin), "looped": a,
            "standard": b}


def baselines_table(base):
    """The baselines and predicting zero on the test prompts at k = d and k = 2d."""
    m = one(base)["metrics"]
    names = sorted({k.rsplit(".", 1)[0] for k in m if k.endswith(K_LABELS)})
    return frame([{"baseline": n, **{lab: m.get(f"{n}.{lab}") for lab in K_LABELS}} for n in names], "baseline")


def verdict_line(headline, margin: float) -> str:
    """Looped vs standard at k = 2d in one sentence: both arms over seeds, Welch, TOST, the verdict."""
    v = verdict(headline, margin)
    return (f"at k = 2d: looped {_ms(v['looped'])}, standard {_ms(v['standard'])}; looped - standard "
            f"{describe(v['welch'])}; equivalence (TOST, margin +-{margin:g} stated before the data): "
            f"{describe_equivalence(v['tost'])}. Verdict: {headline_verdict(v)}.")


def headline_verdict(v: dict) -> str:
    """better / worse / equivalent / inconclusive, from the two tests (a measurable difference wins over a TOST
    that also passes: then the difference is real but inside the margin, which is said)."""
    w, t = v["welch"]["verdict"], v["tost"]["verdict"]
    if w in ("better", "worse"):
        return w + (" (but within the margin)" if t == "equivalent" else "")
    return {"equivalent": "equivalent", "different": "different"}.get(t, "inconclusive")


def cost_table(headline):
    rows = [{"arm": arm, "params": rs[0]["params"]["total"], "forward FLOPs per prediction":
             rs[0]["metrics"]["flops_per_prediction"], "steps": rs[0]["metrics"]["steps"],
             "steps/s": float(np.mean([r["metrics"]["steps_per_s"] for r in rs]))}
            for arm, rs in by_arm(headline).items()]
    return frame(rows, "arm")


def ratio_rows(headline, base) -> list[dict]:
    """Each arm / averaging and / least squares... at k = 2d: the ratio of mean errors with a 95% bootstrap interval
    over training seeds and test prompts."""
    b = one(base)
    out = []
    for arm, rs in by_arm(headline).items():
        k = _k2(rs[0])
        num = np.stack([errors_of(r)[:, k] for r in rs])
        for ref in ("averaging", "zero"):
            if f"errors.{ref}" in b["tables"]:
                out.append({"comparison": f"{arm} / {ref}", **ratio_interval(num, errors_of(b, f"errors.{ref}")[:, k])})
    return out


def loops_rows(headline) -> list[dict]:
    """The looped runs' error at k = 2d against inference loops, one column per seed."""
    rs = by_arm(headline).get("looped", [])
    if not rs or "loops" not in rs[0]["tables"]:
        return []
    loops = [x["loops"] for x in rs[0]["tables"]["loops"]]
    return [{"loops": L, "mean": float(np.mean([next(x["error"] for x in r["tables"]["loops"] if x["loops"] == L)
                                                for r in rs])),
             **{f"seed {r['seed']}": next(x["error"] for x in r["tables"]["loops"] if x["loops"] == L) for r in rs}}
            for L in loops]


def drift(headline, up_to: float = 8) -> dict | None:
    """Loop stability, measured: per seed, error at the largest evaluated loops <= up_to x the trained loops (and
    at the paper's 500) divided by the error at the trained loops; mean with a t interval over seeds, and the test
    (issue 40): a one-sample t-test of the log ratios against 0 (a ratio is multiplicative: 2x up and 2x down cancel
    in logs, not in ratios) and the sign count, in how many seeds the error rose."""
    rs = by_arm(headline).get("looped", [])
    if not rs or "loops" not in rs[0]["tables"]:
        return None
    trained = rs[0]["metrics"]["trained_loops"]
    curves = [{x["loops"]: x["error"] for x in r["tables"]["loops"]} for r in rs]
    far = max(L for L in curves[0] if L <= up_to * trained)
    out = {"trained": trained, "far": far, "paper": max(curves[0]) if max(curves[0]) > far else None}
    for key, L in (("far", far), ("paper", out["paper"])):
        if L is None:
            continue
        ratios = [c[L] / c[trained] for c in curves]
        out[f"{key}.ratio"], out[f"{key}.lo"], out[f"{key}.hi"] = mean_interval(ratios)
        out[f"{key}.per_seed"] = ratios
        logs = np.log(ratios)
        out[f"{key}.log_p"] = float(st.ttest_1samp(logs, 0.0).pvalue) if len(logs) > 1 and logs.std() > 0 else None
        out[f"{key}.rises"] = int((logs > 0).sum())
    return out


# ------------------------------------------------------------------------------------------------ options, tasks
def _refs(base_rec: dict, label: str = "k=2d") -> dict:
    return {n: base_rec["metrics"][f"{n}.{label}"] for n in (*TRIVIAL, *set(STRUCTURAL.values()))
            if f"{n}.{label}" in base_rec["metrics"]}


def options_rows(option_records, base) -> list[dict]:
    """Each option (and the plain looped model) over its seeds at k = 2d, gated against the strongest trivial
    reference on the same prompts (the lowest of zero, averaging, 3-NN): an arm with a seed that does not beat it is
    "not learned at this budget" (the seeds that do are counted) and is not compared; the learned ones against plain
    by Welch, Holm over the options."""
    refs = {n: v for n, v in _refs(one(base)).items() if n in TRIVIAL}
    best = min(refs.values())
    by = {}
    for r in records_of(option_records):
        by.setdefault(r["variant"], []).append(r["metrics"]["err.k=2d"])
    rows = [{"option": v, "seeds": len(x), "error k=2d": float(np.mean(x)),
             "sd": float(np.std(x, ddof=1)) if len(x) > 1 else None, "best trivial reference": best,
             "seeds below it": sum(e < best for e in x), "learned": all(e < best for e in x)} for v, x in by.items()]
    plain = by.get("plain")
    compared = [r for r in rows if r["option"] != "plain" and r["learned"]]
    if plain and rows[[r["option"] for r in rows].index("plain")]["learned"]:
        for r, v in zip(compared, verdicts([welch_samples(by[r["option"]], plain) for r in compared])):
            r["vs plain"] = describe(v)
    for r in rows:
        r.setdefault("vs plain", "" if r["option"] == "plain" else "not learned at this budget: not compared"
                     if not r["learned"] else "plain not learned: not compared")
    return rows


def tasks_rows(records) -> list[dict]:
    """Each other task over its seeds at k = 2d (each task's own error scale), against the strongest of its trivial
    references and its structural baseline on the same prompts; "not learned at this budget" when a seed does not
    beat that reference (the seeds that do are counted). A structural baseline worse than predicting zero is no bar:
    "beats structural" is then None (not claimed), and the row says so."""
    recs = by_experiment(records_of(records))
    bases = {r["variant"].removeprefix("baselines-"): r for r in recs.get("task_baselines", [])}
    by = {}
    for r in recs.get("tasks", []):
        if r["status"] == "ok":
            by.setdefault(r["variant"], []).append(r["metrics"]["err.k=2d"])
    rows = []
    for task, x in by.items():
        refs = _refs(bases[task]) if task in bases else {}
        trivial = {n: v for n, v in refs.items() if n in TRIVIAL}
        struct = STRUCTURAL.get(task)
        mean = float(np.mean(x))
        best = min(trivial.values()) if trivial else None
        weak = struct in refs and "zero" in refs and refs[struct] >= refs["zero"]
        rows.append({"task": task, "seeds": len(x), "looped k=2d": mean,
                     "sd": float(np.std(x, ddof=1)) if len(x) > 1 else None, **{n: v for n, v in trivial.items()},
                     "seeds below best trivial": sum(e < best for e in x) if trivial else 0,
                     "structural": f"{struct} {refs[struct]:.3f}" if struct in refs else "-",
                     "structural worse than zero": weak,
                     "learned": bool(trivial) and all(e < best for e in x),
                     "beats structural": None if weak else struct in refs and mean < refs[struct]})
    return rows



# ------------------------------------------------------------------------------------------------ regime search
def regime_table(records: list[dict], chosen: dict | None = None):
    """One row per regime point: both arms' error / averaging at k = 2d on validation prompts, per tuning seed, and
    how many seeds of each arm pass the gate (< 1/3); `chosen` ({"model", "train"}, e.g. a headline record's
    config or study.regime_key(cfg)) marks the point the notebook runs."""
    same = _point(chosen) if chosen else None
    by = {}
    for r in records:
        by.setdefault(r["variant"].removeprefix("regime "), []).append(r)
    rows = []
    for point, rs in by.items():
        m0, c0 = rs[0]["metrics"], rs[0]["config"]
        row = {"point": point, "d": m0.get("d"), "steps": c0["train"]["steps"], "lr": c0["train"]["lr"],
               "seeds": len(rs)}
        for arm in ("looped", "standard"):
            ratios = [r["metrics"].get(f"{arm}.ratio_to_averaging") for r in rs]
            ratios = [x for x in ratios if x is not None]
            row[f"{arm} / averaging"] = ", ".join(f"{x:.2f}" for x in ratios)
            row[f"{arm} pass"] = f"{sum(x < GATE for x in ratios)} of {len(ratios)}" if ratios else "-"
        row["wall s (looped)"] = float(np.mean([r["metrics"].get("looped.wall_s", np.nan) for r in rs]))
        if same is not None:
            row["run here"] = "<- chosen" if _point(c0) == same else ""
        rows.append(row)
    return frame(rows, "point")



# ------------------------------------------------------------------------------------------------ formatting
def _ms(x) -> str:
    return f"{np.mean(x):.3f}" + (f" +- {np.std(x, ddof=1):.3f}" if len(x) > 1 else "") + f" (n={len(x)})"

