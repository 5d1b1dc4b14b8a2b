"""The report PDF: environment, then per artifact our figure/table, the paper's numbers and
the claim verdicts. Pure matplotlib (PdfPages), so it builds offline without TeX."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from clrepro.analysis.yours import display, tally  # noqa: E402
from clrepro.fsutil import atomic_path  # noqa: E402
from clrepro.layout import FAMILY, column_widths, wrap  # noqa: E402
from clrepro.analysis.status import FAILS, HOLDS, INCONCLUSIVE, NOT_CHECKABLE  # noqa: E402
from clrepro.provenance import code_state, versions  # noqa: E402

PAGE = (11.69, 8.27)  # A4 landscape, inches
MARGIN = 0.045
COLOURS = {HOLDS: "#1b7837", FAILS: "#b2182b", INCONCLUSIVE: "#8c6d1f", NOT_CHECKABLE: "#555555"}
FRAGILE_MARK = "fragile"
ROWS_PER_PAGE = 24  # plotted points listed under a figure (the CSV has them all)
TEXT_WIDTH = (1 - 2 * MARGIN) * PAGE[0] * 72  # points
CELL_PAD = 3.0  # points between a cell's border and its text
LINE_PITCH = 1.25  # line distance in a table cell, in units of the font size


class Pages:
    """Lays blocks out top to bottom, starting a new page when one does not fit."""

    def __init__(self, pdf: PdfPages, header: str):
        self.pdf, self.header = pdf, header
        self.fig = None
        self.y = 0.0

    def _new(self) -> None:
        self.flush()
        self.fig = plt.figure(figsize=PAGE)
        self.fig.text(MARGIN, 0.975, self.header, fontsize=7, color="0.45", va="top")
        self.fig.text(1 - MARGIN, 0.975, f"page {self.pdf.get_pagecount() + 1}", fontsize=7,
                      color="0.45", va="top", ha="right")
        self.y = 0.94

    def need(self, height: float) -> None:
        if self.fig is None or self.y - height < MARGIN:
            self._new()

    def text(self, s: str, size: float = 9, weight: str = "normal", color: str = "black",
             gap: float = 0.006) -> None:
        lines = wrap(s, TEXT_WIDTH, size, weight)
        height = len(lines) * size * 1.45 / 72 / PAGE[1] + gap
        self.need(height)
        self.fig.text(MARGIN, self.y, "\n".join(lines), fontsize=size, weight=weight, color=color,
                      va="top", family=FAMILY, linespacing=1.3, parse_math=False)
        self.y -= height

    def table(self, rows: list[dict[str, Any]], title: str = "", size: float = 7.5,
              colour: dict[str, str] | None = None) -> None:
        """Columns as wide as their content, long cells wrapped so the table spans at most the
        text width; rows that do not fit continue on the next page under the header again.
        colour: cell text -> colour, applied (in bold) to every cell with exactly that text."""
        if not rows:
            return
        colour = colour or {}
        cols = list(dict.fromkeys(c for r in rows for c in r))
        cells = [[_cell(r.get(c)) for c in cols] for r in rows]
        widths = column_widths(cells, cols, size, TEXT_WIDTH, 2 * CELL_PAD, bold=set(colour))
        head = [wrap(c, w - 2 * CELL_PAD, size, "bold") for c, w in zip(cols, widths)]
        body = [[wrap(v, w - 2 * CELL_PAD, size, "bold" if v in colour else "normal")
                 for v, w in zip(row, widths)] for row in cells]
        pitch = size * LINE_PITCH  # points per line
        def height(row: list[list[str]]) -> float:
            return max(len(lines) for lines in row) * pitch + 2 * CELL_PAD

        head_h, row_h = height(head), [height(row) for row in body]
        title_h = 8.5 * 1.45 + 0.006 * PAGE[1] * 72 if title else 0.0
        start = 0
        while start < len(rows):
            first = row_h[start:start + 3]  # a title and header never stand alone at a page foot
            self.need((title_h + head_h + sum(first)) / 72 / PAGE[1] + 0.012)
            if title:
                self.text(title + (" (continued)" if start else ""), size=8.5, weight="bold")
            room = (self.y - MARGIN) * PAGE[1] * 72 - head_h
            end = start + 1
            while end < len(rows) and sum(row_h[start:end + 1]) <= room:
                end += 1
            y = self._row(head, widths, head_h, size, "bold", colour, fill="#e8eef6")
            for lines, h in zip(body[start:end], row_h[start:end]):
                y = self._row(lines, widths, h, size, "normal", colour)
            self.y = y - 0.012
            start = end

    def _row(self, cells: list[list[str]], widths: list[float], height: float, size: float,
             weight: str, colour: dict[str, str], fill: str = "none") -> float:
        """Draws one table row at the current y (cells' lines, in points); returns its foot."""
        x, top = MARGIN, self.y
        h = height / 72 / PAGE[1]
        for lines, w in zip(cells, widths):
            w /= 72 * PAGE[0]
            self.fig.add_artist(Rectangle((x, top - h), w, h, transform=self.fig.transFigure,
                                          facecolor=fill, edgecolor="0.85", linewidth=0.6))
            text = "\n".join(lines)
            style = {"color": colour[text], "weight": "bold"} if text in colour else {"weight": weight}
            for i, line in enumerate(lines):  # one text per line: the pitch is ours, not the font's
                y = top - (CELL_PAD + i * size * LINE_PITCH) / 72 / PAGE[1]
                self.fig.text(x + CELL_PAD / 72 / PAGE[0], y, line, fontsize=size, va="top",
                              family=FAMILY, parse_math=False, **style)
            x += w
        self.y = top - h
        return self.y

    def image(self, path: Path, max_height: float = 0.5) -> None:
        img = mpimg.imread(path)
        h_px, w_px = img.shape[:2]
        width = 1 - 2 * MARGIN
        height = min(max_height, width * PAGE[0] / PAGE[1] * h_px / w_px)
        width = height * PAGE[1] / PAGE[0] * w_px / h_px
        self.need(height + 0.01)
        ax = self.fig.add_axes([MARGIN, self.y - height, width, height])
        ax.imshow(img)
        ax.axis("off")
        self.y -= height + 0.015

    def page_break(self) -> None:
        self.fig is not None and self._new()

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            plt.close(self.fig)
            self.fig = None


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)  # wrapped to its column in full, never cut


def build_report(claim_files: list[Path], out: Path, title: str = "clrepro reproduction report") -> None:
    summaries = [json.loads(Path(p).read_text()) for p in claim_files]
    when = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = (dt.datetime.fromtimestamp(int(when), dt.timezone.utc) if when
             else dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    state, vers = code_state(), versions()
    scales = sorted({s["scale_label"] for s in summaries})
    with atomic_path(out) as tmp, PdfPages(tmp, metadata={"Title": title, "CreationDate": None}) as pdf:
        pages = Pages(pdf, f"{title} · {' / '.join(scales)}")
        pages.text(title, size=20, weight="bold", gap=0.015)
        for s in scales:
            pages.text(f"Scale: {s}", size=11, color=COLOURS[FAILS] if "not comparable" in s else "black")
        commit = state["commit"] or "unknown"
        run_commits = sorted({c for s in summaries for c in s["provenance"]["commits"]})
        devices = sorted({d for s in summaries for d in s["provenance"]["devices"]})
        pages.text(
            f"Generated {stamp} from commit {commit[:12]}{' (uncommitted changes)' if state['dirty'] else ''}; "
            f"runs made at commit(s) {', '.join(run_commits) or '–'} on {', '.join(devices) or '–'}.\n"
            + "Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()), size=9, gap=0.02)
        overview = [{"artifact": s["artifact"], "claim": c["id"], "verdict": c["status"],
                     "fragile": FRAGILE_MARK if c.get("fragile") else "",
                     "seeds": _seeds(c), "rule": c.get("rule", ""), "statement": c["text"]}
                    for s in summaries for c in s["claims"]]
        counts = {k: sum(1 for o in overview if o["verdict"] == k) for k in COLOURS}
        fragile = sum(1 for o in overview if o["fragile"])
        pages.text("Claims: " + ", ".join(f"{n} {k}" for k, n in counts.items())
                   + f"; {fragile} fragile", size=11, weight="bold")
        pages.text("Fragile: a rerun of the same seeds on another machine would give another "
                   "verdict with a chance of 1 in 5 or more (each comparison's 'stability' is "
                   "that chance's complement; README, \"Fragile verdicts\").", size=8,
                   color="0.3")
        runs_total = sum(s["runs"]["total"] for s in summaries)
        problems = [p for s in summaries for p in s["runs"]["problems"]]
        pages.text(f"Run records read: {runs_total} (shared runs counted per artifact); "
                   f"{len(problems)} unusable: "
                   + (", ".join(sorted({p['status'] for p in problems})) or "none"), size=9)
        pages.table(overview, "Verdicts", colour=COLOURS)
        for line in yours_summary(summaries):
            pages.text(line, size=10, weight="bold")
        for paper in dict.fromkeys(s["paper"] for s in summaries):
            group = [s for s in summaries if s["paper"] == paper]
            _paper_page(pages, group)
            for s in group:
                _artifact_pages(pages, s)
        pages.flush()


def yours_rows(summaries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """user method -> its comparison rows over these artifacts (a comparison shared by two
    artifacts, e.g. GEM's Figs. 1a and 1b, once, naming both)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for s in summaries:
        for name, mine in s.get("yours", {}).items():
            for row in mine["rows"]:
                key = json.dumps({k: v for k, v in row.items() if k != "artifacts"},
                                 sort_keys=True, default=str)
                seen = out.setdefault(name, {}).setdefault(key, {**row, "artifacts": ""})
                seen["artifacts"] = ", ".join(filter(None, [seen["artifacts"], s["artifact"]]))
    return {name: list(rows.values()) for name, rows in out.items()}


def yours_summary(summaries: list[dict[str, Any]]) -> list[str]:
    """The report summary's line per user method."""
    lines = []
    for name, rows in yours_rows(summaries).items():
        ran = sorted({s["artifact"] for s in summaries if name in s.get("yours", {})})
        skipped = sorted({k["artifact"] for s in summaries for k in s.get("yours_skipped", [])
                          if k["method"] == name and not k["where"]})
        lines.append(f"Yours ({name}): run in {len(ran)} artifacts ({len(skipped)} do not fit "
                     f"it); {tally(rows)}")
    return lines


def _seeds(claim: dict[str, Any]) -> str:
    """The seed counts the claim's comparisons rest on ('3', '2-5', or '–')."""
    ns = sorted({e["n"] for e in claim.get("evidence") or [] if e.get("n")})
    return "–" if not ns else (str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}")


def _paper_page(pages: Pages, group: list[dict[str, Any]]) -> None:
    pages.page_break()
    first = group[0]
    pages.text(f"{first['paper_title']} ({first['paper']})", size=17, weight="bold", gap=0.012)
    claims = [c for s in group for c in s["claims"]]
    counts = ", ".join(f"{sum(c['status'] == k for c in claims)} {k}" for k in COLOURS)
    fragile = sum(bool(c.get("fragile")) for c in claims)
    pages.text(f"{len(group)} artifacts; claims: {counts}; {fragile} fragile", size=10, gap=0.01)
    pages.table([{"artifact": s["artifact"], "title": s["title"],
                  "runs usable": f"{s['runs']['ok']}/{s['runs']['total']}"} for s in group])
    for name, rows in yours_rows(group).items():
        pages.text(f"Yours ({name}) vs each baseline: {tally(rows)}", size=10, weight="bold",
                   gap=0.004)
        pages.table([{"artifacts": r["artifacts"], **d} for r, d in zip(rows, display(rows))],
                    size=6, colour=COLOURS)
    for k in (k for s in group for k in s.get("yours_skipped", [])):
        pages.text(f"{k['method']} not run in {k['artifact']}"
                   + (f" ({k['where']})" if k["where"] else "") + f": {k['reason']}",
                   size=8, color="0.3")


def _artifact_pages(pages: Pages, s: dict[str, Any]) -> None:
    pages.page_break()
    pages.text(f"{s['artifact']} — {s['title']}", size=14, weight="bold")
    pages.text(f"{s['paper_title']} · {s['caption']}", size=9, color="0.25")
    pages.text(s["scale_label"], size=9, color=COLOURS[FAILS] if "not comparable" in s["scale_label"]
               else "0.25", gap=0.012)
    if s["kind"] == "figure":
        png = next(Path(f) for f in s["files"] if f.endswith(".png"))
        if png.is_file():
            pages.image(png, max_height=0.42)
    shown = s["display"] or []
    if s["kind"] == "figure" and len(shown) > ROWS_PER_PAGE:  # plotted points: the CSV has them all
        pages.table(shown[:ROWS_PER_PAGE], "Ours")
        data = next((f for f in s["files"] if f.endswith(".csv")), "the figure's CSV")
        pages.text(f"… {len(shown) - ROWS_PER_PAGE} more rows in {data}", size=8, color="0.3")
    else:
        pages.table(shown, "Ours")
    if s["paper_table"]:
        pages.table(s["paper_table"], "Paper")
    for note in s["notes"]:
        pages.text(f"Note: {note}", size=8, color="0.3")
    for p in s["runs"]["problems"]:
        pages.text(f"Unusable run: {p['path']} ({p['status']})", size=8, color=COLOURS[FAILS])
    for c in s["claims"]:
        pages.text(f"{c['id']} — {c['status'].upper()}" + (" (FRAGILE)" if c.get("fragile") else "")
                   + (f"  (rule: {c['rule']})" if c.get("rule") else ""),
                   size=9.5, weight="bold", color=COLOURS[c["status"]], gap=0.002)
        pages.text(c["text"], size=8.5, gap=0.004)
        rows = evidence_rows(c)
        if rows:
            pages.table(rows, size=6.5, colour=COLOURS)
        else:
            pages.text(c["detail"], size=8, gap=0.01)


def evidence_rows(claim: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per comparison behind a verdict: what was compared, over how many seeds, the
    effect, its interval and p, the rule that decided it and how stable that is."""
    rows = []
    for kind, items in (("", claim.get("evidence") or []),
                        *((f"precondition: {p['name']}", p["evidence"])
                          for p in claim.get("preconditions") or [])):
        for e in items:
            ci = e.get("ci")
            rows.append({"comparison": (f"[{kind}] " if kind else "") + e["what"],
                         "n": e["n"], "effect": _num(e.get("effect")),
                         "95% CI": f"[{ci[0]:+.3g}, {ci[1]:+.3g}]" if ci else "–",
                         "p": _num(e.get("p"), "{:.2g}"), "rule": e["rule"],
                         "verdict": e["status"],
                         "stability": _stability(e), "note": e.get("note") or ""})
    return rows


def _stability(e: dict[str, Any]) -> str:
    if e.get("stability") is None:
        return "–"
    return f"{e['stability']:.2f}" + (f" {FRAGILE_MARK}" if e.get("fragile") else "")


def _num(value: Any, form: str = "{:+.3g}") -> str:
    return "–" if value is None else form.format(value)
