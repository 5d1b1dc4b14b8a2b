"""The PDF stays readable: a figure's plotted points are summarised, a table is shown whole."""

import json

import matplotlib
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


# --- layout: every line readable to its end -------------------------------------------------

STATEMENT = ("A model trained on the full stream keeps its T1 accuracy while its T1 exceeds T0 by 18.8 "
             "points on MNIST (99.6 vs 80.8) and 25.1 points on CIFAR-100 (68.3 vs 43.2), which the "
             "paper reads as positive backward transfer that no other method in the table achieves, "
             "at every memory size and every seed we ran LASTWORDOFSTATEMENT")


def _claims_summary(tmp_path, n_claims=4):
    evidence = [{"what": "GEM vs single on rot_mnist: T1 − T0 of the first task's accuracy, one value "
                         "per seed, paired by seed " + "and memory size " * i,
                 "n": 3, "effect": 18.83, "ci": [12.1, 25.6], "p": 0.0123, "rule": "one-tailed paired "
                 "t-test at 0.05 on the mean difference", "status": "holds",
                 "note": "seed 2 diverged and was left out; " * (i % 3)} for i in range(3)]
    claims = [{"id": f"gem2017.C{i}", "status": ["holds", "does not hold", "inconclusive"][i % 3],
               "rule": "effect > 0 and one-tailed p < 0.05 over seeds, every comparison",
               "text": STATEMENT, "detail": "", "evidence": evidence,
               "preconditions": [{"name": "the baseline learns", "evidence": evidence[:1]}]}
              for i in range(n_claims)]
    summary = {
        "artifact": "gem.table1", "paper": "gem2017", "paper_title": "Gradient Episodic Memory",
        "title": "Accuracy and transfer " * 6, "kind": "table", "caption": "A caption " * 40,
        "scale": "quick", "scale_label": "quick – not comparable to paper values",
        "paper_table": [{"method": "GEM", "ACC": 0.89, "BWT": 0.01}],
        "notes": ["A long note about the stand-ins used at this scale " * 8],
        "display": [{"method": m, "dataset": "rot_mnist@gem2017.quick",
                     "memory: ours (run) / §4.8 / paper": "– / 44.7MB / 44.8MB",
                     "ACC": f"{0.8 + i / 100:.3f} ± 0.012", "BWT": "+0.010 ± 0.002",
                     "comment": "a fairly long comment about this row " * (i % 4)}
                    for i, m in enumerate(["single", "ewc", "icarl", "gem", "independent"])],
        "claims": claims,
        "runs": {"total": 9, "ok": 8, "problems": [
            {"path": "results/runs/rot_fmnist@gem2017.quick/ewc/m0-e5/s0/" + "deep/" * 30 + "record.json",
             "status": "diverged"}]},
        "provenance": {"commits": ["abc"], "devices": ["cpu"], "dirty": False},
        "files": [],
    }
    path = tmp_path / "gem.table1.json"
    path.write_text(json.dumps(summary))
    return path


def test_every_line_ends_inside_the_text_area_and_no_two_texts_overlap(tmp_path, monkeypatch):
    """Measures each page as the renderer sets it: every text (table cells included) lies within
    the page's margins, and no text runs into another (a cell into its neighbour)."""
    from matplotlib.backends.backend_pdf import PdfPages

    figures = []
    save = PdfPages.savefig
    monkeypatch.setattr(PdfPages, "savefig", lambda self, fig, **kw: (figures.append(fig),
                                                                       save(self, fig, **kw)))
    out = tmp_path / "report.pdf"
    build_report([_claims_summary(tmp_path)], out)
    assert figures
    for page, fig in enumerate(figures, 1):
        with matplotlib.rc_context({"text.hinting": "no_hinting"}):  # as the PDF sets glyphs
            _assert_readable(page, fig)
    from matplotlib.text import Text

    text = " ".join(t.get_text() for fig in figures for t in fig.findobj(Text))
    assert "LASTWORDOFSTATEMENT" in text  # statements are wrapped, not cut short
    assert "record.json" in text


def _assert_readable(page, fig):
    """Every text on the page inside the text area, none running into another."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.table import Cell
    from matplotlib.text import Text

    from clrepro.report import MARGIN

    renderer = FigureCanvasAgg(fig).get_renderer()  # the page was closed
    width, height = fig.bbox.width, fig.bbox.height
    texts = [a.get_text() if isinstance(a, Cell) else a  # a table cell draws its own text
             for a in fig.findobj(lambda a: isinstance(a, (Text, Cell)))]
    boxes = [t.get_window_extent(renderer) for t in texts
             if t.get_visible() and t.get_text().strip() and t.figure is fig]
    for box in boxes:
        assert MARGIN * width - 1 <= box.x0 and box.x1 <= (1 - MARGIN) * width + 1, \
            f"page {page}: text {box} past the side margins"
        assert MARGIN * height - 1 <= box.y0 and box.y1 <= height, \
            f"page {page}: text {box} past the bottom margin"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert overlap_x <= 1 or overlap_y <= 1, f"page {page}: texts overlap: {a} {b}"


def test_wrap_keeps_every_word_in_order_within_the_width():
    from clrepro.layout import text_width, wrap

    s = STATEMENT + " results/runs/" + "deep/" * 40 + "record.json"
    lines = wrap(s, 200, 7.5)
    assert all(text_width(line, 7.5) <= 200 for line in lines)
    assert "".join(lines).replace(" ", "") == s.replace(" ", "")  # the path is broken, not lost


def test_columns_take_their_content_width_and_only_wide_ones_wrap():
    from clrepro.layout import column_widths, text_width

    cells = [["C1", "holds", STATEMENT]]
    narrow = column_widths(cells[:1], ["claim", "verdict", "statement"], 7.5, 5000, 6)
    assert narrow[2] == text_width(STATEMENT, 7.5) + 6  # fits: no stretching, no empty column
    fitted = column_widths(cells, ["claim", "verdict", "statement"], 7.5, 400, 6)
    assert abs(sum(fitted) - 400) < 1e-6 and fitted[:2] == narrow[:2]


def test_fragile_verdicts_are_marked_and_counted(tmp_path):
    """A claim whose comparison sits near its rule's level is marked in the verdict table, in
    its heading and beside the comparison's stability, and counted in the summary line."""
    from clrepro.analysis import verdicts as V

    base = {0: 0.60, 1: 0.61, 2: 0.62, 3: 0.58, 4: 0.60}
    near = {s: base[s] + d for s, d in enumerate([0.010, 0.030, 0.005, -0.004, 0.028])}
    firm = {s: v + 0.1 for s, v in base.items()}
    claims = []
    for i, a in enumerate((near, firm)):
        v = V.combine([V.paired(a, base, "A > B")])
        claims.append({"id": f"p.C{i}", "text": "A beats B", "status": v.status,
                       "fragile": v.fragile, "detail": v.detail, "rule": v.rule,
                       "evidence": v.evidence, "preconditions": v.preconditions})
    path = _summary(tmp_path, "table", 2)
    summary = json.loads(path.read_text())
    summary["claims"] = claims
    path.write_text(json.dumps(summary))
    out = tmp_path / "report.pdf"
    build_report([path], out)
    text = _text(out)
    assert "; 1 fragile" in text
    assert "p.C0 — INCONCLUSIVE (FRAGILE)" in text and "p.C1 — HOLDS (rule" in text
    assert f"{claims[0]['evidence'][0]['stability']:.2f} fragile" in text
