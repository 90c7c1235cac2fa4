"""REPORT.md quotes the fine-tuning study's verdict (issue 11) when the repository has one."""

from __future__ import annotations

from coftad_lib.paper.report import STUDY_VERDICT, write_report


def test_report_quotes_study_verdict(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    verdict = tmp_path / STUDY_VERDICT
    verdict.parent.mkdir(parents=True)
    verdict.write_text("# Verdict\n\nShort answer: **no**, it\nhurt on CIFAR.\n\n## Tables\n\nmore\n")
    text = write_report(results).read_text()
    assert "## Beyond the paper: when does fine-tuning help?" in text
    assert "Short answer: **no**, it hurt on CIFAR." in text
    assert "more" not in text.split("when does fine-tuning help?")[1]


def test_report_without_study_has_no_section(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    assert "fine-tuning help" not in write_report(results).read_text()
