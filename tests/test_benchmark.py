"""Tests for tools/benchmark.py on tiny notebooks written here: one that passes and records figures, one that fails."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import benchmark  # noqa: E402
from tools.nbrun import list_notebooks  # noqa: E402

# Writes a record the way course_utils.results.record does (kind.json in COURSE_RESULTS_DIR) without importing
# torch in the kernel, which keeps this test fast; test_collects_what_results_record_writes covers the real writer.
RECORDING_CELL = """import json, os, pathlib
figures = {"kind": "vae", "profile": os.environ["COURSE_PROFILE"], "dataset": "digits", "train_seconds": 1.5,
           "samples_per_second": 2000.0, "mean_confidence": 0.875, "class_entropy_bits": 3.1, "fid": 4.25}
pathlib.Path(os.environ["COURSE_RESULTS_DIR"], "vae.json").write_text(json.dumps(figures))
print("✅ demo check: passed")"""


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A tiny course: 00 allocates ~80 MB, naps, and records figures; 01 fails in its second code cell."""
    folder = tmp_path_factory.mktemp("notebooks")
    memory = "import numpy as np\nblock = np.ones((10_000_000,))  # 80 MB\nprint(block.sum())"
    nap = new_code_cell("import time\ntime.sleep(1.0)")
    nap.id = "nap"
    cells = [new_markdown_cell("# Zero"), new_code_cell(memory), nap, new_code_cell(RECORDING_CELL)]
    nbformat.write(new_notebook(cells=cells), folder / "00_zero.ipynb")
    failing = [new_code_cell("x = 1"), new_code_cell("raise ValueError('boom in cell two')"), new_code_cell("x")]
    nbformat.write(new_notebook(cells=failing), folder / "01_fails.ipynb")
    return folder


@pytest.fixture(scope="module")
def report(course, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    return benchmark.run_benchmark(
        list_notebooks(course), "fast", out, timeout=120, real_floor=False, progress=lambda message: None
    )


def test_failing_notebook_is_reported_failed_with_its_error(report):
    rows = {row["notebook"]: row for row in report["notebooks"]}
    assert list(rows) == ["00_zero.ipynb", "01_fails.ipynb"]
    assert rows["00_zero.ipynb"]["ok"] is True and rows["00_zero.ipynb"]["errors"] == []
    assert rows["01_fails.ipynb"]["ok"] is False
    assert rows["01_fails.ipynb"]["errors"] == ["cell 1: ValueError: boom in cell two"]
    assert rows["01_fails.ipynb"]["cells_run"] == 2  # stopped at the error


def test_measures_time_memory_and_checks(report):
    row = report["notebooks"][0]
    assert 80 < row["peak_rss_mb"] < 2000  # the kernel held an 80 MB array
    assert row["wall_s"] > 0 and row["cpu_s"] > 0
    assert row["passed"] == 1
    assert report["machine"]["logical_cores"] >= 1 and report["machine"]["torch"]


def test_names_the_slowest_cells_and_keeps_the_executed_notebooks(report):
    row = report["notebooks"][0]
    assert row["slowest_cells"][0]["cell"] == "nap" and 0.9 <= row["slowest_cells"][0]["seconds"] < 30
    assert len(row["slowest_cells"]) == 3 and row["slowest_cells"][1]["seconds"] <= row["slowest_cells"][0]["seconds"]
    executed = nbformat.read(Path(report["run_dir"], "executed", "00_zero.ipynb"), as_version=4)
    assert executed.cells[1].outputs[0]["text"].strip() == "10000000.0"
    assert "`nap` 1 s" in benchmark.markdown_report(report)


def test_collects_recorded_figures_in_the_run_folder(report):
    (record,) = report["quality"]
    assert record["kind"] == "vae" and record["profile"] == "fast" and record["fid"] == 4.25
    assert Path(report["run_dir"], "results", "vae.json").exists()


def test_markdown_table_shows_failure_quality_and_dataset_note(report, tmp_path):
    json_path, md_path = benchmark.write_report(report, tmp_path)
    table = md_path.read_text()
    assert "| `01_fails.ipynb` | **FAILED** |" in table and "ValueError: boom in cell two" in table
    assert "| `00_zero.ipynb` | passed |" in table
    assert "| vae | digits | 1.5 | 2,000 | 0.875 | 3.10 | 4.25 |" in table
    assert "MNIST was not available: these figures are for digits." in table
    assert "1 of 2 notebooks passed" in table
    assert json.loads(json_path.read_text())["notebooks"][1]["ok"] is False


def test_table_can_be_printed_again_from_the_json(report, tmp_path, capsys):
    json_path, md_path = benchmark.write_report(report, tmp_path)
    assert benchmark.main(["--table", str(json_path)]) == 0
    assert capsys.readouterr().out.strip() == md_path.read_text().strip()


def test_command_line_selects_one_notebook_and_exits_nonzero_on_failure(course, tmp_path, capsys):
    status = benchmark.main(
        ["--profile", "fast", "--notebooks", str(course), "--notebook", "01", "--out", str(tmp_path)]
    )
    assert status == 1
    out = capsys.readouterr().out
    assert "`01_fails.ipynb`" in out and "00_zero" not in out
    with pytest.raises(SystemExit):
        benchmark.main(["--profile", "slow"])
    assert benchmark.main(["--notebooks", str(course), "--notebook", "07"]) == 2


def test_collects_what_results_record_writes(tmp_path, monkeypatch):
    from course_utils import results

    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    results.record("gan", {"dataset": "mnist", "fid": 12.5, "train_seconds": 3.0})
    results.record("vae", {"dataset": "mnist", "fid": 20.0})
    collected = benchmark.collect_quality(tmp_path)
    assert [r["kind"] for r in collected] == ["vae", "gan"]  # course order, not alphabetical
    assert collected[1]["fid"] == 12.5 and collected[1]["profile"] == "fast"


def test_table_orders_models_puts_the_floor_last_and_shows_other_figures():
    quality = [
        {"kind": "charmodel", "text": "texts", "train_seconds": 9.0, "bits_per_char": 2.125},
        {"kind": "real", "dataset": "mnist", "mean_confidence": 0.99, "fid": 0.5, "note": "held-out floor"},
        {"kind": "diffusion", "dataset": "mnist 28x28", "fid": 7.0, "model": "unet"},
    ]
    report = {
        "profile": "full",
        "date_utc": "now",
        "machine": {"cpu": "Test CPU", "logical_cores": 2, "python": "3.12.1", "torch": "2.x", "torch_threads": 2},
        "notebooks": [],
        "total_wall_s": 0.0,
        "quality": benchmark.order_quality(quality),
    }
    table = benchmark.markdown_report(report)
    assert "Machine: Test CPU, 2 logical cores; Python 3.12.1, torch 2.x (2 threads)" in table
    assert "| charmodel | texts | 9.0 | - | - | - | - | bits_per_char 2.125 |" in table
    assert "| real held-out images (floor) | mnist | - | - | 0.990 | - | 0.50 | held-out floor |" in table
    assert "MNIST was not available" not in table
    assert "| diffusion (unet) | mnist 28x28 | - | - | - | - | 7.00 |" in table
    assert table.index("| diffusion (unet) |") < table.index("| charmodel |") < table.index("| real held-out")
