"""Plots shared by the notebooks and Analysis.ipynb (matplotlib, no state)."""
from __future__ import annotations

import numpy as np


def _finish(ax, xlabel: str, ylabel: str, title: str, legend: bool = True):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8)
    return ax


def curves(ax, series: dict, title: str = "", ylabel: str = "loss", hlines: dict | None = None,
           xlabel: str = "optimizer step"):
    """series: {label: {x: value}} (x keys may be strings, as read back from JSON)."""
    for label, curve in series.items():
        if curve:
            pts = sorted((float(k), v) for k, v in curve.items() if v is not None)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 12 else None, ms=3,
                    label=label)
    for label, y in (hlines or {}).items():
        ax.axhline(y, ls="--", lw=1, color="grey")
        ax.annotate(label, (ax.get_xlim()[0], y), textcoords="offset points", xytext=(4, 3), fontsize=8, color="grey")
    return _finish(ax, xlabel, ylabel, title)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (fewer parameters AND lower loss), sorted by x."""
    front, best = [], float("inf")
    for x, y in sorted(points):
        if y < best:
            front.append((x, y))
            best = y
    return front


def loss_vs_params(ax, summary, label_col: str = "id", x: str = "params", y: str = "loss_mean",
                   yerr: str = "loss_std", title: str = ""):
    """Scatter of final validation loss (mean +- std over seeds) against parameters, with the Pareto frontier."""
    ax.errorbar(summary[x], summary[y], yerr=summary[yerr], fmt="o", ms=4, capsize=2, lw=1)
    for _, r in summary.iterrows():
        ax.annotate(str(r[label_col]), (r[x], r[y]), textcoords="offset points", xytext=(4, 3), fontsize=8)
    front = pareto_front(list(zip(summary[x], summary[y])))
    ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="tab:red", lw=1, label="Pareto frontier")
    ax.set_xscale("log")
    return _finish(ax, "parameters", "validation loss", title)


def heatmap(ax, rows: dict, columns: list, title: str = "", cmap: str = "magma"):
    """rows: {row label: [value per column]}; columns: their labels (layer indices)."""

    labels = list(rows)
    data = np.array([rows[k] for k in labels], dtype=float)
    im = ax.imshow(data, aspect="auto", cmap=cmap)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xticks(range(data.shape[1]), [str(c) for c in columns])
    _finish(ax, "layer", "", title, legend=False)
    ax.grid(False)
    ax.figure.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    return ax


def bands(ax, series: dict, title: str = "", ylabel: str = "normalized squared error"):
    """series: {label: {"mean": [...], "lo": [...], "hi": [...]}} over k = 0, 1, ... (shaded bootstrap band)."""
    for label, s in series.items():
        k = list(range(len(s["mean"])))
        (line,) = ax.plot(k, s["mean"], marker="o", ms=3, label=label)
        ax.fill_between(k, s["lo"], s["hi"], color=line.get_color(), alpha=0.2)
    return _finish(ax, "in-context examples k", ylabel, title)
