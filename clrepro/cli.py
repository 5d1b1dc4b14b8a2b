"""Command line: `clrepro run|plan|render|report|data|verify` (also `python -m clrepro`).

By hand, every command resolves what to do from a config file (the workflow calls the same
functions through workflow/scripts). `clrepro run --job` takes a complete job description
as JSON instead, for running one job outside any configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from clrepro.progress import setup_logging

log = logging.getLogger("clrepro")


class UsageError(Exception):
    """A request the command cannot fulfil as asked; the message says why."""


def _config_from_args(args) -> dict[str, Any]:
    from clrepro import config as cfg

    overrides = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    path = args.configfile if Path(args.configfile).is_file() else None
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
    return 0


def cmd_run(args) -> int:
    from clrepro.job import run_job

    if args.job:
        desc = json.loads(args.job)
        device = args.device or "auto"
        data = args.data
    else:
        p = _plan(args)
        desc = p.run_job(args.out).description(p.data)
        device = args.device or p.config["device"]
        data = args.data or str(p.benchmark_path(desc["benchmark"]["name"]))
    if not data:
        raise UsageError("--data is required with --job")
    record = run_job(desc, args.out, data, device=device, threads=args.threads)
    return 0 if record["status"] in ("ok", "diverged", "failed") else 1  # failed: reason in the record


def cmd_data(args) -> int:
    from clrepro.data import store

    p = _plan(args)
    names = args.benchmarks or sorted(p.benchmarks)
    unknown = [n for n in names if n not in p.benchmarks]
    if unknown:
        raise UsageError(f"unknown benchmark(s) {', '.join(unknown)}; this plan has "
                         f"{', '.join(sorted(p.benchmarks))}")
    for defn, out in [(p.benchmarks[n], p.benchmark_path(n)) for n in names]:
        if args.check:
            try:
                store.load(defn, out)
                print(f"ok       {defn.name}  {out}")
            except store.StaleCacheError as exc:
                print(f"rebuild  {defn.name}  ({exc})")
            continue
        store.build(defn, p.data, out)
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


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="clrepro", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    def with_config(p):
        p.add_argument("--configfile", default="config.yaml", help="workflow config (default: config.yaml)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a top-level config key (YAML value), e.g. --set scale=smoke")
        return p

    p = with_config(sub.add_parser("plan", help="show what the config asks for"))
    p.add_argument("--runs", action="store_true", help="list every run path")
    p.set_defaults(func=cmd_plan)

    p = with_config(sub.add_parser("run", help="train one run and write its record"))
    p.add_argument("out", help="results/runs/<benchmark>/<method>/<setting>/s<seed>.json")
    p.add_argument("--job", help="a complete job description as JSON (instead of the config)")
    p.add_argument("--data", help="prepared benchmark tensors (.pt)")
    p.add_argument("--device", help="auto | cpu | cuda[:i]")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_run)

    p = with_config(sub.add_parser("data", help="prepare (or --check) benchmark tensors"))
    p.add_argument("benchmarks", nargs="*", help="benchmark names (default: all in the plan)")
    p.add_argument("--check", action="store_true", help="verify caches instead of building")
    p.set_defaults(func=cmd_data)

    p = with_config(sub.add_parser("render", help="render artifacts (tables, figures, verdicts)"))
    p.add_argument("artifacts", nargs="*", help="artifact IDs (default: all planned)")
    p.set_defaults(func=cmd_render)

    p = with_config(sub.add_parser("verify", help="compare the verdicts with the committed ones"))
    p.add_argument("--update", action="store_true",
                   help="write the current verdicts as the expected ones (after a deliberate change)")
    p.set_defaults(func=cmd_verify)

    p = with_config(sub.add_parser("report", help="assemble the report PDF"))
    p.add_argument("--out", help="default: <results>/report.pdf")
    p.set_defaults(func=cmd_report)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    from clrepro.config import ConfigError
    from clrepro.data.sources import ChecksumError, MissingDataError

    try:
        return args.func(args)
    except (UsageError, ConfigError, MissingDataError, ChecksumError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        log.error("%s", message)
        return 2


if __name__ == "__main__":
    sys.exit(main())
