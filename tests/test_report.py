"""The PDF stays readable: a figure's plotted points are summarised, a table is shown whole."""

import json

import matplotlib.pyplot as plt
from pypdf import PdfReader

from clrepro.report import ROWS_PER_PAGE, build_report


def _summary(tmp_path, kind, n_rows):
    png = tmp_path / f"{kind}.png"
    plt.imsave(png, [[0.0, 1.0], [1.0, 0.0]])
    summary = {
        "artifact": f"x.{kind}", "paper": "p", "paper_title": "Paper", "title": kind, "kind": kind,
        "caption": "", "scale": "smoke", "scale_label": "smoke", "paper_table": [], "notes": [],
        "display": [{"x": float(i), "y": float(-i)} for i in range(n_rows)], "claims": [],
        "runs": {"total": 1, "ok": 1, "problems": []},
        "provenance": {"commits": ["abc"], "devices": ["cpu"], "dirty": False},
        "files": [str(png), str(tmp_path / f"{kind}.csv")],
    }
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(summary))
    return path


def _text(pdf):
    return "\n".join(page.extract_text() for page in PdfReader(pdf).pages)


def test_figure_points_are_cut_to_one_page_and_point_to_the_csv(tmp_path):
    out = tmp_path / "report.pdf"
    build_report([_summary(tmp_path, "figure", 300)], out)
    text = _text(out)
    assert f"{300 - ROWS_PER_PAGE} more rows in {tmp_path / 'figure.csv'}" in text.replace("\n", "")
    assert len(PdfReader(out).pages) <= 4  # title, paper, figure, table; uncapped: 16


def test_tables_are_shown_whole(tmp_path):
    out = tmp_path / "report.pdf"
    build_report([_summary(tmp_path, "table", 60)], out)
    assert "more rows" not in _text(out)
    assert "(continued)" in _text(out)
