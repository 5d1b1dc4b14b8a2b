"""Stand-ins for SLURM's command-line tools, for testing the workflow without a cluster.

    fake_slurm.py <tool> [args...]      tool: sbatch srun sacct squeue scancel sacctmgr
                                              sshare sinfo scontrol

State lives in $FAKE_SLURM_DIR: every sbatch call is appended to submissions.jsonl (argv
and parsed options) and runs its job script at once, on this machine, with the SLURM
environment variables a job would see; the job's final state is what sacct/squeue report.
$FAKE_SLURM_OOM=<text>: the first submission whose --comment contains <text> is not run
and ends OUT_OF_MEMORY, as if it had exceeded --mem.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_DIR", "/tmp/fake-slurm"))
VALUED = {"--job-name", "--output", "--comment", "-A", "-p", "-t", "--mem", "--mem-per-cpu",
          "-C", "--clusters", "-D", "--chdir", "--cpus-per-task", "-c", "--gres", "--gpus",
          "--ntasks", "-n", "--nodes", "--qos", "--partition", "--account", "--time", "--name",
          "--format", "--starttime", "--endtime", "-o", "--states"}


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    options, rest, i = {}, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and "=" in arg:
            key, value = arg.split("=", 1)
            options[key] = value
        elif arg in VALUED and i + 1 < len(argv):
            options[arg] = argv[i + 1]
            i += 1
        elif arg.startswith("-"):
            options[arg] = ""
        else:
            rest.append(arg)
        i += 1
    return options, rest


def next_id() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "counter", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = int(f.read() or 1000) + 1
        f.seek(0)
        f.truncate()
        f.write(str(n))
    return n


def sbatch(argv: list[str]) -> int:
    options, rest = parse(argv)
    job_id = next_id()
    with open(STATE / "submissions.jsonl", "a") as f:
        f.write(json.dumps({"id": job_id, "argv": argv, "options": options}) + "\n")
    script = options.get("--wrap")
    if script is None:
        source = rest[0] if rest else "/dev/stdin"
        script = sys.stdin.read() if source == "/dev/stdin" else Path(source).read_text()
    comment = options.get("--comment", "")
    oom = os.environ.get("FAKE_SLURM_OOM")
    marker = STATE / "oom-done"
    if oom and oom in comment and not marker.exists():
        marker.write_text(comment)
        state = "OUT_OF_MEMORY"
    else:
        env = dict(os.environ, SLURM_JOB_ID=str(job_id), SLURM_JOBID=str(job_id),
                   SLURM_JOB_NAME=options.get("--job-name", ""),
                   SLURM_CPUS_PER_TASK=options.get("--cpus-per-task", "1"))
        if "--gpus" in options:
            env["SLURM_GPUS"] = options["--gpus"]
        log = options.get("--output", str(STATE / "%j.log")).replace("%j", str(job_id))
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            rc = subprocess.run(["/bin/sh", "-c", script], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=options.get("-D", options.get("--chdir"))).returncode
        state = "COMPLETED" if rc == 0 else "FAILED"
    (STATE / "jobs").mkdir(exist_ok=True)
    (STATE / "jobs" / str(job_id)).write_text(f"{options.get('--job-name', '')}|{state}")
    print(job_id)
    return 0


def job_states(name: str | None) -> list[str]:
    lines = []
    for path in sorted((STATE / "jobs").glob("*")) if (STATE / "jobs").exists() else []:
        job_name, state = path.read_text().split("|")
        if name is None or job_name == name:
            lines.append(f"{path.name}|{state}")
    return lines


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    with open(STATE / "calls.log", "a") if STATE.exists() else open(os.devnull, "w") as f:
        f.write(" ".join([tool, *argv]) + "\n")
    if tool == "sbatch":
        return sbatch(argv)
    if tool == "srun":  # run the command that follows srun's own (--opt=value) options
        start = next(i for i, a in enumerate(argv) if not a.startswith("-"))
        os.execvp(argv[start], argv[start:])
    if tool in ("sacct", "squeue"):
        options, _ = parse(argv)
        if "--name" in options or tool == "squeue":
            print("\n".join(job_states(options.get("--name"))))
        else:  # account look-ups
            print("testacct")
        return 0
    if tool in ("sacctmgr", "sshare"):
        print("testacct")
        return 0
    if tool == "sinfo":
        print("PARTITION\ncpu*\ngpu")
        return 0
    if tool == "scontrol":
        print("MinJobAge               = 300 sec")
        return 0
    return 0  # scancel and anything else: accepted, nothing to do


if __name__ == "__main__":
    sys.exit(main())
