"""Command line: `clrepro run|plan|render|report|data|verify` (also `python -m clrepro`).

By hand, every command resolves what to do from a config file (the workflow calls the same
functions through workflow/scripts). `clrepro run --job` takes a complete job description
as JSON instead, for running one job outside any configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from clrepro.progress import setup_logging

log = logging.getLogger("clrepro")


DEFAULT_CONFIG = "config.yaml"


class UsageError(Exception):
    """A request the command cannot fulfil as asked; the message says why."""


def _config_from_args(args) -> dict[str, Any]:
    from clrepro import config as cfg

    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item}: expected KEY=VALUE, e.g. --set scale=smoke")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UsageError(f"--set {item}: the value is not valid YAML ({exc})") from exc
    if args.configfile is not None:  # named: it must exist
        path = Path(args.configfile)
        if not path.is_file():
            raise UsageError(f"--configfile {path}: no such file")
    elif Path(DEFAULT_CONFIG).is_file():
        path = Path(DEFAULT_CONFIG)
    else:  # outside a clone: say so, a silent fallback hides a typo'd working directory
        path = None
        log.warning("no %s in %s: running with the built-in defaults (give --configfile, or "
                    "run inside the clone)", DEFAULT_CONFIG, Path.cwd())
    return cfg.load(path, overrides)


def _plan(args):
    from clrepro import plan

    return plan.build(_config_from_args(args))


def cmd_plan(args) -> int:
    p = _plan(args)
    print(json.dumps(p.summary(), indent=1))
    if args.runs:
        for path, job in sorted(p.runs.items()):
            print(path, "gpu" if job.resources["gpu"] else "cpu")
    if args.memory:
        print_memory(p, args.jobs)
    return 0


def print_memory(p, jobs: int = 1) -> None:
    """The memory pre-flight (clrepro.preflight) as one table per paper, one row per run
    class (benchmark and method; the largest of its settings), and a warning naming every
    GPU run class over gpu_memory_gb. `jobs`: processes making the estimates."""
    from clrepro.preflight import plan_memory

    def progress(done: int, total: int) -> None:  # a full-scale plan takes minutes
        if done == total or done % 10 == 0:
            print(f"estimated {done}/{total} run classes", file=sys.stderr, flush=True)

    limit = p.config["gpu_memory_gb"]
    classes: dict[tuple[str, str, str], dict] = {}
    rows = plan_memory(p, jobs, progress)
    save_memory(p, rows)
    for row in rows:
        key = (row["paper"], row["benchmark"], row["method"])
        if key not in classes:
            classes[key] = {**row, "runs": 0}
        if row["estimate"].peak_bytes > classes[key]["estimate"].peak_bytes:
            classes[key].update(estimate=row["estimate"], run=row["run"])
        classes[key]["runs"] += row["runs"]
    over = []
    for paper in sorted({k[0] for k in classes}):
        print(f"\n{paper}: estimated peak GPU memory per run (GB; limit gpu_memory_gb = {limit:g})")
        print(f"  {'benchmark':34s} {'method':18s} {'runs':>5s} {'device':6s} {'peak GB':>8s}  step")
        for (_, benchmark, method), row in sorted((k, v) for k, v in classes.items() if k[0] == paper):
            est = row["estimate"]
            peak = "?" if est.peak_bytes < 0 else f"{est.gb:.2f}"
            print(f"  {benchmark:34s} {method:18s} {row['runs']:5d} {'gpu' if row['gpu'] else 'cpu':6s} "
                  f"{peak:>8s}  {est.step}{' (' + est.note + ')' if est.note else ''}")
            if row["gpu"] and est.gb > limit:
                over.append(f"{row['run']} ({est.gb:.1f} GB)")
    if over:
        log.warning("%d run class(es) may not fit a %g GB GPU: %s", len(over), limit, "; ".join(over))


def save_memory(p, rows) -> None:
    """The estimates per run, for the workflow (Plan.gpu_memory: SLURM constraints and the
    refusal of runs over gpu_memory_gb), merged into what earlier calls saved."""
    from clrepro.fsutil import write_text

    path = p.memory_path
    saved = json.loads(path.read_text()) if path.is_file() else {}
    for row in rows:
        if row["estimate"].peak_bytes >= 0:
            for key in row["paths"]:
                saved[key] = {"protocol": p.runs[key].protocol_hash,
                              "gb": round(row["estimate"].gb, 3)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(saved, indent=0, sort_keys=True))
    print(f"estimates saved in {path}")


def cmd_run(args) -> int:
    from clrepro.job import run_job

    if args.job:
        desc = json.loads(args.job)
        device = args.device or "auto"
        precision = args.precision or "fp32"
        slots = 1
        data = args.data
    else:
        p = _plan(args)
        desc = p.run_job(args.out).description(p.data)
        device = args.device or p.config["device"]
        precision = args.precision or p.config["precision"]
        slots = p.config["gpu_slots"]
        data = args.data or str(p.benchmark_path(desc["benchmark"]["name"]))
    if not data:
        raise UsageError("--data is required with --job")
    _check_existing_record(Path(args.out), desc, args.force)
    # a file given with --data is an input: read, never rebuilt in place
    record = run_job(desc, args.out, data, device=device, threads=args.threads,
                     rebuild_data=args.data is None, precision=precision, gpu_slots=slots)
    return 0 if record["status"] in ("ok", "diverged", "failed") else 1  # failed: reason in the record


def _check_existing_record(out: Path, desc: dict[str, Any], force: bool) -> None:
    """`clrepro run` never replaces a record silently: without --force it refuses, saying
    whether the record there is of this run's protocol (then there is nothing to do)."""
    from clrepro.spec import protocol_hash
    from clrepro.results import CorruptRecordError, load_record

    if not out.exists():
        return
    try:
        record = load_record(out)
        same = record.get("protocol_hash") == protocol_hash(desc["hp"], desc["benchmark"])
        what = ("a record of this very protocol (nothing to do)" if same else
                "a record made under another protocol")
    except (CorruptRecordError, ValueError, OSError):
        what = "an unreadable record"
    if not force:
        raise UsageError(f"{out} already holds {what}; add --force to train again and replace it")
    log.warning("%s holds %s: training again and replacing it (--force)", out, what)


def cmd_data(args) -> int:
    from clrepro.data import store

    p = _plan(args)
    names = args.benchmarks or sorted(p.benchmarks)
    unknown = [n for n in names if n not in p.benchmarks]
    if unknown:
        raise UsageError(f"unknown benchmark(s) {', '.join(unknown)}; this plan has "
                         f"{', '.join(sorted(p.benchmarks))}")
    problems = 0
    for defn, out in [(p.benchmarks[n], p.benchmark_path(n)) for n in names]:
        if args.check:
            try:
                tensors = store.load(defn, out)
            except store.StaleCacheError as exc:
                print(f"rebuild  {defn.name}  ({exc})")
                problems += 1
                continue
            n_images, bad = store.damaged_images(defn, p.data, tensors, decode=args.decode)
            for path, why in bad:
                print(f"damaged  {defn.name}  {path}: {why}")
            problems += bool(bad)
            checked = f", {n_images} images {'decoded' if args.decode else 'opened'}" if n_images else ""
            print(f"{'bad' if bad else 'ok'}{' ' * (9 - len('bad' if bad else 'ok'))}{defn.name}  "
                  f"{out}{checked}")
            continue
        store.build(defn, p.data, out)
    if problems:  # a script (or CI) must see that something needs doing
        log.error("%d benchmark(s) need attention: rebuild with `clrepro data NAME`, or replace the "
                  "damaged images first", problems)
        return 1
    return 0


def cmd_render(args) -> int:
    from clrepro.render import render_artifact

    p = _plan(args)
    for artifact in args.artifacts or sorted(p.artifacts):
        if artifact not in p.artifacts:
            raise UsageError(f"unknown artifact '{artifact}'; planned: {', '.join(sorted(p.artifacts))}")
        render_artifact(p, artifact)
    return 0


def cmd_report(args) -> int:
    from clrepro.report import build_report

    p = _plan(args)
    claims = [job.claims for _, job in sorted(p.artifacts.items())]
    missing = [str(c) for c in claims if not c.is_file()]
    if missing:
        raise UsageError("render these artifacts first (clrepro render): " + ", ".join(missing))
    out = Path(args.out) if args.out else p.report_path
    build_report(claims, out)
    log.info("wrote %s", out)
    return 0


def cmd_new_method(args) -> int:
    from clrepro.scaffold import write

    try:
        files = write(args.name, args.trainer, args.dir)
    except (ValueError, FileExistsError) as exc:
        raise UsageError(str(exc)) from None
    for f in files:
        print(f"wrote {f}")
    print(f"next: write its equation in {files[0].name}, then name it in config.yaml:\n"
          f"  methods: {{{args.name}: {{entry: {args.name}:{files[0].stem.title().replace('_', '')}}}}}\n"
          f"(with {Path(args.dir).resolve()} on PYTHONPATH)")
    return 0


def cmd_verify(args) -> int:
    from clrepro import verify

    p = _plan(args)
    if any(p.config["options"].values()) or p.config["seeds"]:
        log.warning("options or seeds differ from the preset: the committed verdicts were made "
                    "with the defaults, so differences may be expected")
    if args.update:
        for path in verify.update(p):
            log.info("wrote %s", path)
        return 0
    result = verify.compare(p)
    print(result.report(), end="")
    if result.missing_tables and not result.rows:
        raise UsageError(f"no committed verdicts for scale {p.scale} (only the quick preset has them)")
    return 1 if result.changed or result.unrendered else 0


class StrictParser(argparse.ArgumentParser):
    """No abbreviated flags: `--config` must be refused, not completed to `--configfile`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        if "--config" in message:
            message += " (clrepro overrides a config key with --set KEY=VALUE; --config is Snakemake's)"
        super().error(message)


def device_name(text: str) -> str:
    from clrepro.devices import DeviceError, check_device_name

    try:
        return check_device_name(text)
    except DeviceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def parser() -> argparse.ArgumentParser:
    ap = StrictParser(prog="clrepro", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=StrictParser)

    def with_config(p):
        p.add_argument("--configfile", help="workflow config (default: config.yaml of the working "
                                            "directory; built-in defaults, with a warning, if none)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a top-level config key (YAML value), e.g. --set scale=smoke")
        return p

    p = with_config(sub.add_parser("plan", help="show what the config asks for"))
    p.add_argument("--runs", action="store_true", help="list every run path")
    p.add_argument("--memory", action="store_true",
                   help="estimate each run class's peak GPU memory on the CPU (imports torch)")
    p.add_argument("--jobs", type=positive_int, default=min(os.cpu_count() or 1, 8),
                   help="processes for --memory's estimates (default: the CPUs, at most 8)")
    p.set_defaults(func=cmd_plan)

    p = with_config(sub.add_parser("run", help="train one run and write its record"))
    p.add_argument("out", help="results/runs/<benchmark>/<method>/<setting>/s<seed>.json")
    p.add_argument("--job", help="a complete job description as JSON (instead of the config)")
    p.add_argument("--data", help="prepared benchmark tensors (.pt)")
    p.add_argument("--device", type=device_name, help="auto | cpu | cuda[:i]")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--force", action="store_true",
                   help="train even if OUT holds a record (it is replaced)")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"],
                   help="float32 numerics on a GPU (default: the config's, fp32)")
    p.set_defaults(func=cmd_run)

    p = with_config(sub.add_parser("data", help="prepare (or --check) benchmark tensors"))
    p.add_argument("benchmarks", nargs="*", help="benchmark names (default: all in the plan)")
    p.add_argument("--check", action="store_true",
                   help="verify caches (and open every listed image) instead of building; "
                        "exits 1 when something needs a rebuild or a damaged image")
    p.add_argument("--decode", action="store_true",
                   help="with --check: decode every listed image (slow on ImageNet)")
    p.set_defaults(func=cmd_data)

    p = with_config(sub.add_parser("render", help="render artifacts (tables, figures, verdicts)"))
    p.add_argument("artifacts", nargs="*", help="artifact IDs (default: all planned)")
    p.set_defaults(func=cmd_render)

    p = with_config(sub.add_parser("verify", help="compare the verdicts with the committed ones"))
    p.add_argument("--update", action="store_true",
                   help="write the current verdicts as the expected ones (after a deliberate change)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("new-method", help="write a starting file for your own method and its test")
    p.add_argument("name", help="the method's name (lower case; names its run folders)")
    p.add_argument("--trainer", choices=("online", "phases"), default="online")
    p.add_argument("--dir", default=".", help="where to write NAME.py and test_NAME.py")
    p.set_defaults(func=cmd_new_method)

    p = with_config(sub.add_parser("report", help="assemble the report PDF"))
    p.add_argument("--out", help="default: <results>/report.pdf")
    p.set_defaults(func=cmd_report)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    from clrepro.config import ConfigError
    from clrepro.data.sources import ChecksumError, MissingDataError
    from clrepro.data.store import StaleCacheError
    from clrepro.environment import EnvironmentProblem, explain

    try:
        return args.func(args)
    except (UsageError, ConfigError, MissingDataError, ChecksumError, StaleCacheError,
            EnvironmentProblem, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        log.error("%s", message)
        return 2
    except OSError as exc:  # read-only results, a full disk ...: one line with the fix
        log.error("%s", explain(exc), exc_info=args.verbose)
        return 2


if __name__ == "__main__":
    sys.exit(main())
