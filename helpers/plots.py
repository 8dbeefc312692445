"""Plots shared by the notebooks and Analysis.ipynb (matplotlib, no state)."""
from __future__ import annotations


def curves(ax, series: dict, title: str = "", ylabel: str = "loss", hlines: dict | None = None):
    """series: {label: {step: value}} (step keys may be strings, as read back from JSON)."""
    for label, curve in series.items():
        if curve:
            pts = sorted((int(k), v) for k, v in curve.items() if v is not None)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 12 else None, ms=3,
                    label=label)
    for label, y in (hlines or {}).items():
        ax.axhline(y, ls="--", lw=1, color="grey")
        ax.annotate(label, (ax.get_xlim()[0], y), textcoords="offset points", xytext=(4, 3), fontsize=8, color="grey")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
