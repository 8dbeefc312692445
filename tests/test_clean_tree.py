"""`make run` leaves a clean tree: Analysis.ipynb, executed in place on unchanged records, is byte for byte the
committed one (no timestamps, durations, paths or versions that change from one execution to the next;
deterministic outputs, matplotlib's PNGs included)."""
import json
import shutil

import nbformat
import pytest

from helpers.notebooks import ANALYSIS, VOLATILE_NOTEBOOK_METADATA, execute_analysis, strip_volatile
from helpers.paths import REPO_ROOT


def _volatile(nb) -> list[str]:
    """Where the notebook still carries volatile metadata."""
    found = [f"cell {i}: {k}" for i, c in enumerate(nb.cells) for k in ("papermill", "execution") if k in c.metadata]
    return found + [f"metadata.{s}.{k}" for s, keys in VOLATILE_NOTEBOOK_METADATA.items() for k in keys
                    if k in nb.metadata.get(s, {})]


def test_strip_volatile_keeps_everything_but_the_volatile_metadata(tmp_path):
    path = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python", "version": "3.11.7"},
        "papermill": {"start_time": "2026-01-01T00:00:00", "end_time": "2026-01-01T00:00:10", "duration": 10.0,
                      "input_path": "/somewhere/Analysis.ipynb", "output_path": "/somewhere/Analysis.ipynb",
                      "version": "2.7.0", "parameters": {}, "exception": None}})
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=1, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="1\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})])
    cell.metadata.update({"tags": ["x"], "execution": {"iopub.status.busy": "2026-01-01T00:00:01Z"},
                          "papermill": {"start_time": "t0", "end_time": "t1", "duration": 0.1, "status": "completed",
                                        "exception": False}})
    nb.cells = [nbformat.v4.new_markdown_cell("# t", metadata={"papermill": {"duration": 0.0}}), cell]
    path.write_text(nbformat.writes(nb))
    assert strip_volatile(path) is True
    out = nbformat.read(path, 4)
    assert _volatile(out) == []
    assert out.metadata.kernelspec.name == "python3" and out.metadata.language_info.name == "python"
    assert out.metadata.papermill == {"parameters": {}, "exception": None}
    assert out.cells[1].metadata == {"tags": ["x"]} and out.cells[1].outputs == nb.cells[1].outputs
    assert out.cells[1].execution_count == 1 and out.cells[1].source == "print(1)"
    before = path.stat().st_mtime_ns
    assert strip_volatile(path) is False and path.stat().st_mtime_ns == before     # nothing to strip: not rewritten


@pytest.mark.notebooks
def test_analysis_executed_on_the_committed_records_is_byte_for_byte_the_committed_one(tmp_path):
    """The `make run` path (helpers.notebooks.execute_analysis, in place) over a copy of the committed Analysis.ipynb
    and of the committed records gives the committed Analysis.ipynb, byte for byte: what `make run` on a fresh clone
    must leave. The committed file came from an execution, so this is also "a second execution changes not one byte"
    at the cost of one (~15 s); a change of code that alters Analysis must come with the notebook executed again."""
    results = tmp_path / "results"
    shutil.copytree(REPO_ROOT / "results", results)              # the records cannot change under the test
    path = tmp_path / "Analysis.ipynb"
    shutil.copy(ANALYSIS, path)
    committed = ANALYSIS.read_bytes()
    assert _volatile(nbformat.reads(committed.decode(), as_version=4)) == []
    execute_analysis(path, env={"LAB_RESULTS": str(results)})
    again = path.read_bytes()
    nb = nbformat.reads(again.decode(), as_version=4)
    assert _volatile(nb) == []
    assert any(o.get("data", {}).get("image/png") for c in nb.cells for o in c.get("outputs", [])), "no plot drawn"
    if again != committed:
        a, b = json.loads(committed), json.loads(again)
        diff = [i for i, (x, y) in enumerate(zip(a["cells"], b["cells"])) if x != y]
        meta = "changed" if a["metadata"] != b["metadata"] else "same"
        pytest.fail(f"executed on the committed records, Analysis.ipynb differs from the committed one: cells {diff}, "
                    f"notebook metadata {meta} (execute it again with `make run`: the notebooks load their records, "
                    "then Analysis runs in place; and commit it)")
