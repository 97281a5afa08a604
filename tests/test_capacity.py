"""The capacity sheet's arithmetic on the reference workload (2M words, 50k questions/day)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import typer
from rich.table import Table
from typer.testing import CliRunner

from grounded.capacity import (
    Assumptions,
    CapacitySheet,
    capacity,
    capacity_sheet,
    render_table,
    render_text,
)
from tests.conftest import ROOT

WORDS = 2_000_000
QUERIES = 50_000


@pytest.fixture(scope="module")
def sheet() -> CapacitySheet:
    return capacity_sheet(WORDS, QUERIES)


def test_defaults_are_the_measured_figures() -> None:
    a = Assumptions()
    assert a.words_per_chunk == pytest.approx(1_066_484 / 10_009, abs=0.01)
    assert a.pieces_per_word == pytest.approx(184.8 * 10_019 / 1_066_484, abs=0.01)
    assert a.embed_pieces_per_s == 17_408
    assert a.ingest_words_per_s == 5_771
    assert a.gpu_tokens_per_s == pytest.approx(6_582.87 + 7_446.57, abs=1)


def test_chunks_follow_the_measured_words_per_chunk(sheet: CapacitySheet) -> None:
    assert WORDS / 110 < sheet.chunks < WORDS / 100
    assert sheet.chunks == math.ceil(WORDS / Assumptions().words_per_chunk) == 18_771
    assert sheet.embedded_pieces == round(WORDS * Assumptions().pieces_per_word)


def test_vector_storage_is_chunks_times_dimensions_times_width(sheet: CapacitySheet) -> None:
    assert [v.dimensions for v in sheet.vectors] == [384, 768, 1536]
    for dims in (384, 768, 1536):
        v = sheet.footprint(dims)
        assert v.float32_bytes == sheet.chunks * dims * 4
        assert v.float16_bytes == sheet.chunks * dims * 2
        graph = 2 * 16 * 6 + 100
        assert v.index_float32_bytes == sheet.chunks * (dims * 4 + graph)
        assert v.index_float16_bytes == sheet.chunks * (dims * 2 + graph)
    assert sheet.footprint(384).float32_bytes == 28_832_256


def test_embedding_and_ingest_times(sheet: CapacitySheet) -> None:
    assert sheet.embed_seconds == pytest.approx(sheet.embedded_pieces / 17_408)
    # BENCHMARKS.md: "a 2M-word corpus ingests in about 5.8 minutes".
    assert sheet.ingest_seconds / 60 == pytest.approx(5.8, abs=0.05)
    assert sheet.embed_seconds < sheet.ingest_seconds


def test_traffic_and_gpu_arithmetic(sheet: CapacitySheet) -> None:
    assert sheet.average_qps == pytest.approx(QUERIES / 86_400)
    assert sheet.peak_qps == pytest.approx(4 * QUERIES / 86_400)
    assert sheet.generated_per_day == pytest.approx(QUERIES * 0.7)
    assert sheet.tokens_per_answer == 1_850
    expected_hours = QUERIES * 0.7 * 1_850 / 14_029 / 3600
    assert sheet.gpu_hours_per_day == pytest.approx(expected_hours)
    assert sheet.peak_gpu_tokens_per_s == pytest.approx(QUERIES * 0.7 / 86_400 * 4 * 1_850)
    assert sheet.gpus_needed_at_peak == 1
    assert sheet.replicas_needed_at_peak == 1


def test_gpu_hours_scale_linearly_with_queries() -> None:
    base = capacity_sheet(WORDS, QUERIES)
    assert capacity_sheet(WORDS, 2 * QUERIES).gpu_hours_per_day == pytest.approx(
        2 * base.gpu_hours_per_day
    )
    assert capacity_sheet(WORDS, 10 * QUERIES).gpu_hours_per_day == pytest.approx(
        10 * base.gpu_hours_per_day
    )
    assert capacity_sheet(10 * WORDS, QUERIES).gpu_hours_per_day == base.gpu_hours_per_day
    assert capacity_sheet(WORDS, 0).gpus_needed_at_peak == 0


def test_findings_are_ordered_and_nothing_breaks_at_the_reference(sheet: CapacitySheet) -> None:
    ratios = [f.ratio for f in sheet.findings]
    assert ratios == sorted(ratios, reverse=True)
    assert {f.key for f in sheet.findings} >= {"gpu", "embedded_store", "index_ram", "reindex"}
    assert sheet.breaking == ()
    assert sheet.findings[0].key == "gpu", "the GPU is what breaks first as traffic grows"
    gpu = sheet.finding("gpu")
    assert gpu.ratio == pytest.approx(sheet.peak_gpu_tokens_per_s / (14_029 * 0.5))
    assert gpu.breaks_at == pytest.approx(QUERIES / gpu.ratio)


def test_gpu_breaks_first_when_queries_are_very_high() -> None:
    sheet = capacity_sheet(WORDS, 2_000_000)
    assert sheet.findings[0].key == "gpu"
    assert "gpu" in {f.key for f in sheet.breaking}
    assert sheet.gpus_needed_at_peak == math.ceil(sheet.peak_gpu_tokens_per_s / (14_029 * 0.5))
    assert sheet.gpus_needed_at_peak > 1
    assert "embedded_store" in {f.key for f in sheet.breaking}


def test_breaks_at_is_where_the_finding_flips() -> None:
    gpu = capacity_sheet(WORDS, QUERIES).finding("gpu")
    assert gpu.breaks_at is not None
    assert not capacity_sheet(WORDS, int(gpu.breaks_at * 0.99)).finding("gpu").breaks
    assert capacity_sheet(WORDS, int(gpu.breaks_at * 1.01)).finding("gpu").breaks
    more_gpus = replace(Assumptions(), gpus=3)
    assert not capacity_sheet(WORDS, int(gpu.breaks_at * 2), more_gpus).finding("gpu").breaks


def test_a_huge_corpus_breaks_the_index_and_the_maintenance_window() -> None:
    sheet = capacity_sheet(1_000_000_000, QUERIES)
    broken = {f.key for f in sheet.breaking}
    assert {"index_ram", "pgvector_vectors", "reindex"} <= broken
    assert "gpu" not in broken


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        capacity_sheet(-1, QUERIES)
    with pytest.raises(ValueError):
        capacity_sheet(WORDS, QUERIES, replace(Assumptions(), cache_hit_rate=1.0))
    with pytest.raises(ValueError):
        capacity_sheet(WORDS, QUERIES, replace(Assumptions(), gpu_target_load=0))


def test_rendering(sheet: CapacitySheet) -> None:
    assert isinstance(render_table(sheet), Table)
    text = render_text(sheet)
    for expected in ("18,771", "What breaks first", "GPUs needed at peak", "27.5 MiB"):
        assert expected in text
    data = sheet.to_dict()
    assert data["chunks"] == 18_771 and data["findings"][0]["key"] == "gpu"
    json.dumps(data)


def test_docs_show_the_current_reference_sheet(sheet: CapacitySheet) -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    docs_lines = [line.rstrip() for line in docs.splitlines()]
    table = [line.rstrip() for line in render_text(sheet).strip("\n").splitlines()]
    start = docs_lines.index(table[1])
    assert docs_lines[start - 1 : start - 1 + len(table)] == table, (
        "docs/deploy.md's capacity table is out of date: paste render_text(capacity_sheet("
        "2_000_000, 50_000))"
    )


def test_command_prints_json_and_table() -> None:
    app = typer.Typer()
    app.command()(capacity)
    runner = CliRunner()
    result = runner.invoke(app, ["--words", "2000000", "--queries-per-day", "50000", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["chunks"] == 18_771
    assert data["assumptions"]["cache_hit_rate"] == 0.3
    result = runner.invoke(
        app, ["--queries-per-day", "5000000", "--gpus", "2"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "BREAKS" in result.output and "GPU generation at peak" in result.output
