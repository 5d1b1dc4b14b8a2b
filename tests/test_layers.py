"""The layering of issue 23: the generic modules know no paper, imports run one way, and each
trainer reads as its algorithm.

Citations in docstrings and comments may name a paper (they say where a generic default comes
from); code may not: no paper key, paper name, or paper hyperparameter key as a name or
string in the trainers, the job, the batch, the plan, the render step, the method base, the
analysis package or the generic workflow rules.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from clrepro import phases, train
from clrepro.papers import registry, strategies

ROOT = Path(__file__).resolve().parents[1]
GENERIC = ["clrepro/train.py", "clrepro/phases.py", "clrepro/loop.py", "clrepro/schedule.py",
           "clrepro/job.py", "clrepro/batch.py", "clrepro/plan.py", "clrepro/render.py",
           "clrepro/methods/base.py", *sorted(str(p.relative_to(ROOT))
                                              for p in (ROOT / "clrepro/analysis").glob("*.py"))]
RULES = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflow/rules").glob("*.smk"))]
# a string that is a paper key's spelling but means something else there
ALLOWED = {("clrepro/analysis/similarity.py", "similarity"): "the name of a random stream "
                                                              "(derive_seed's purpose)"}


def paper_words() -> tuple[set[str], set[str]]:
    """(paper names: keys and short names, paper hyperparameter keys): every option of every
    paper and every key the papers' strategies read, less the keys the trainers declare."""
    papers = registry()
    names = set(papers) | {key.rstrip("0123456789") for key in papers} | {"core50"}
    keys = set()
    for paper in papers.values():
        keys |= set(paper.option_defaults) | set(paper.options_schema())
    for trainer in (train, phases):  # keys the generic trainers read themselves
        keys -= set(trainer.TRAINER_KEYS) | set(trainer.TRAINER_OPTIONAL)
    return names, keys | set(strategies.TRAINER_OPTIONAL) | set(strategies.ARTIFACT_KEYS)


def code_words(path: Path) -> list[tuple[int, str, bool]]:
    """(line, word, is a string) of every name and string literal of a Python file,
    docstrings left out."""
    source = path.read_text()
    docstrings = {node.body[0].lineno for node in ast.walk(ast.parse(source))
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)
                  and isinstance(node.body[0].value.value, str)}
    words = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME:
            words.append((tok.start[0], tok.string, False))
        elif tok.type == tokenize.STRING and tok.start[0] not in docstrings:
            try:
                value = ast.literal_eval(tok.string)
            except ValueError:  # an f-string: its text
                value = tok.string
            if isinstance(value, str):
                words.append((tok.start[0], value, True))
    return words


def offending(file: str, words, names: set[str], keys: set[str]) -> list[str]:
    """Paper names among the names and strings; paper keys among the strings (hyperparameters
    are read by their key's string; a field may share a key's name)."""
    out = []
    for line, word, is_string in words:
        if (file, word) in ALLOWED:
            continue
        lowered = word.lower()
        if (is_string and word in keys) or lowered in names \
                or any(lowered.startswith(n + ".") for n in names):
            out.append(f"{file}:{line}: {word!r}")
    return out


@pytest.mark.parametrize("file", GENERIC)
def test_a_generic_module_names_no_paper_and_reads_no_paper_key(file):
    names, keys = paper_words()
    assert offending(file, code_words(ROOT / file), names, keys) == []


@pytest.mark.parametrize("file", RULES)
def test_a_generic_rule_names_no_paper_and_no_paper_artifact(file):
    names, keys = paper_words()
    text = "\n".join(line.split("#")[0] for line in (ROOT / file).read_text().splitlines())
    strings = [(0, s, True) for s in re.findall(r'"([^"\n]*)"', text)]
    ids = {a.id for p in registry().values() for a in p.artifacts}
    assert offending(file, strings, names, keys | ids) == []


def test_the_check_finds_what_it_looks_for():
    """The guard itself: the keys the old generic modules read are caught."""
    names, keys = paper_words()
    old = ('def f(hp, options, defn):\n    """GEM spec D5 (docstring: allowed)"""\n'
           '    a = hp.get("eval.drop_last_quirk")  # GEM D5 (comment: allowed)\n'
           '    b = options.get("metrics.transfer_norm", "paper")\n'
           '    return defn.kind == "core50", hp.get("gmed.log_edits"), hp.get("similarity")\n')
    path = ROOT / "tests" / "_layers_probe.py"
    try:
        path.write_text(old)
        found = offending("probe", code_words(path), names, keys)
    finally:
        path.unlink()
    assert [f.split(": ", 1)[1] for f in found] == [
        "'eval.drop_last_quirk'", "'metrics.transfer_norm'", "'core50'", "'gmed.log_edits'",
        "'similarity'"]


# -- imports ---------------------------------------------------------------------------------
def import_graph() -> dict[str, set[str]]:
    """clrepro module -> the clrepro modules it imports, function-local imports included
    (they hide cycles), imports only for type checking left out."""
    modules = {}
    for path in (ROOT / "clrepro").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        deps = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clrepro"):
                deps |= {resolve(f"{node.module}.{a.name}") for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {resolve(a.name) for a in node.names if a.name.startswith("clrepro")}
        graph[name] = deps - {name, None}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, found = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while not part or part[-1] != v:
                part.append(stack.pop())
            if len(part) > 1:
                found.append(sorted(part))
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle_behind_a_function_local_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_analysis_imports_nothing_from_the_papers():
    graph = import_graph()
    assert {m: sorted(d for d in deps if d.startswith("clrepro.papers"))
            for m, deps in graph.items() if m.startswith("clrepro.analysis")
            and any(d.startswith("clrepro.papers") for d in deps)} == {}


# -- the trainers read as their algorithms ---------------------------------------------------
@pytest.mark.parametrize("module, function", [("clrepro/train.py", "train_run"),
                                              ("clrepro/phases.py", "train_phases"),
                                              ("clrepro/phases.py", "_train_phases")])
def test_a_trainer_loop_fits_a_screen(module, function):
    tree = ast.parse((ROOT / module).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    assert node.end_lineno - node.lineno + 1 <= 60
