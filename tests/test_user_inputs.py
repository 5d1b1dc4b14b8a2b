"""What a user hands clrepro is never written, every config key can be set from the command
line, the CLI drops nothing silently, and environment problems are one line with the fix
(issue 18, items 4-6 and 9)."""

import errno
import fcntl
import json
import os
import subprocess
import sys

import pytest
import torch

from clrepro import cli, config, plan
from clrepro.data import store
from clrepro.progress import Progress

from conftest import ROOT

PERM = "results/runs/perm_fmnist@gem2017.smoke/single/m0-e1/s0.json"
ROT = "results/runs/rot_fmnist@gem2017.smoke/single/m0-e1/s0.json"


def smoke_plan():
    return plan.build({"scale": "smoke", "papers": ["gem2017"], "data": {"synthetic": True}})


@pytest.fixture(scope="module")
def perm_cache(tmp_path_factory):
    """The prepared perm_fmnist smoke benchmark and the job descriptions of two runs."""
    tmp = tmp_path_factory.mktemp("inputs")
    p = smoke_plan()
    data = tmp / "perm.pt"
    store.build(p.run_job(PERM).benchmark, p.data, data)
    return data, p.run_job(PERM).description(p.data), p.run_job(ROT).description(p.data)


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "clrepro", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})


# ----------------------------------------------------------------- item 4: --data is read-only

def test_run_never_rewrites_the_data_file_it_is_given(perm_cache, tmp_path, capsys):
    data, _, rot = perm_cache
    before = data.read_bytes(), store.manifest_path(data).read_text()
    code = cli.main(["run", str(tmp_path / ROT), "--job", json.dumps(rot), "--data", str(data),
                     "--device", "cpu"])
    assert code == 2 and not (tmp_path / ROT).exists()
    assert (data.read_bytes(), store.manifest_path(data).read_text()) == before
    err = capsys.readouterr().err
    assert "perm_fmnist@gem2017.smoke" in err and "rot_fmnist@gem2017.smoke" in err


# --------------------------------------------------- item 5: nested --config values are strings

@pytest.mark.parametrize("entry,key,want", [
    ("seeds={gem2017: 3}", "seeds", {"gem2017": 3}),
    ("seeds={gmed2021: [0, 2]}", "seeds", {"gmed2021": [0, 2]}),
    ("data={download: true}", "data", True),
    ("data={download: false, synthetic: true}", "data", False),
    ("options={bld2020: {split.fixed: true}, gem2017: {gem.margin: 0.1}}", "options", True),
])
def test_snakemake_config_strings_are_coerced_by_the_schema(entry, key, want):
    from snakemake.cli import parse_config

    raw = parse_config([entry])  # what `snakemake --config ENTRY` hands the workflow
    got = config.validate(raw)[key]
    if key == "data":
        assert got["download"] is want
    elif key == "options":
        assert got["bld2020"]["split.fixed"] is True and got["gem2017"]["gem.margin"] == 0.1
    else:
        assert got == want


def test_the_download_hint_of_the_missing_data_message_works():
    """The form clrepro's messages recommend, through Snakemake's parser, validates."""
    import re

    from snakemake.cli import parse_config

    hints = set()
    for path in (ROOT / "clrepro").rglob("*.py"):
        hints |= set(re.findall(r"--config (\w+='\{[^']*\}')", path.read_text()))
    assert hints
    for hint in hints:
        entry = hint.replace("'", "").replace("{{", "{").replace("}}", "}").replace("/path", "/x")
        config.validate(parse_config([entry]))


def test_snakemake_dry_run_with_nested_seed_count(tmp_path):
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d",
                          str(tmp_path), "-n", "--config", "papers=[gem2017]", "scale=smoke",
                          "seeds={gem2017: 3}", "batch_runs=0"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "/s2.json" in out.stdout and "/s3.json" not in out.stdout


def test_seed_messages_state_the_rule():
    with pytest.raises(config.ConfigError, match=r"seeds\.gem2017: 0 is not an integer >= 1 or "
                                                 r"a list of integers >= 0"):
        config.validate({"seeds": {"gem2017": 0}})


# ------------------------------------------------------ item 6: the CLI drops nothing silently

def test_cli_refuses_an_abbreviated_flag_and_a_missing_config_file(tmp_path):
    (tmp_path / "config.yaml").write_text("scale: smoke\n")
    abbreviated = run_cli("plan", "--config", "scale=full", cwd=tmp_path)
    assert abbreviated.returncode == 2 and "unrecognized arguments" in abbreviated.stderr
    missing = run_cli("plan", "--configfile", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr


def test_cli_outside_a_clone_says_it_uses_the_defaults(tmp_path):
    out = run_cli("plan", cwd=tmp_path)
    assert out.returncode == 0 and "built-in defaults" in out.stderr


# -------------------------------------------------------------- item 9: environment and locks

def test_threads_zero_and_device_gpu_are_refused(perm_cache, tmp_path):
    data, perm, _ = perm_cache
    for flags, word in ((["--threads", "0"], "--threads"), (["--device", "gpu"], "'gpu'")):
        out = run_cli("run", str(tmp_path / PERM), "--job", json.dumps(perm), "--data", str(data),
                      *flags)
        assert out.returncode == 2 and word in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_line(perm_cache, tmp_path):
    data, perm, _ = perm_cache
    out = run_cli("run", str(tmp_path / PERM), "--job", json.dumps(perm), "--data", str(data),
                  "--device", "cuda")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "CUDA is not available" in out.stderr and "--device cpu" in out.stderr


@pytest.mark.parametrize("code,words", [(errno.EROFS, "cannot write"),
                                        (errno.ENOSPC, "no space left")])
def test_an_unwritable_or_full_results_directory_is_one_line(perm_cache, tmp_path, monkeypatch,
                                                             capsys, code, words):
    from clrepro import fsutil

    data, perm, _ = perm_cache

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path / "results"))

    monkeypatch.setattr(fsutil.tempfile, "mkstemp", refuse)
    assert cli.main(["run", str(tmp_path / PERM), "--job", json.dumps(perm), "--data", str(data),
                     "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and words in errors[0] and "results" in errors[0], err
    assert "Traceback" not in err


def test_a_torch_save_on_a_full_disk_names_the_full_disk(tmp_path, monkeypatch):
    from clrepro import environment, fsutil

    monkeypatch.setattr(environment.shutil, "disk_usage",
                        lambda path: type("U", (), {"free": 1024})())
    with pytest.raises(OSError) as info:
        with fsutil.atomic_path(tmp_path / "x.pt") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    assert info.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())


def test_run_over_an_existing_record_needs_force(perm_cache, tmp_path):
    data, perm, _ = perm_cache
    out = tmp_path / PERM
    assert cli.main(["run", str(out), "--job", json.dumps(perm), "--data", str(data),
                     "--device", "cpu"]) == 0
    first = out.read_text()
    assert cli.main(["run", str(out), "--job", json.dumps(perm), "--data", str(data),
                     "--device", "cpu"]) == 2
    assert out.read_text() == first
    assert cli.main(["run", str(out), "--job", json.dumps(perm), "--data", str(data),
                     "--device", "cpu", "--force"]) == 0


def test_a_run_being_trained_elsewhere_is_refused_naming_the_holder(perm_cache, tmp_path):
    """Two working directories sharing one results directory: the second process finds the
    run's lock file (next to the record) held and refuses, naming the holder."""
    data, perm, _ = perm_cache
    out = tmp_path / PERM
    out.parent.mkdir(parents=True)
    lock = out.with_name(f".{out.name}.lock")
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 on elsewhere, working directory /other\n")
        held.flush()
        second = run_cli("run", str(out), "--job", json.dumps(perm), "--data", str(data),
                         "--device", "cpu")
    assert second.returncode != 0 and not out.exists()
    assert "pid 4242 on elsewhere" in second.stderr


def test_a_batch_skips_a_run_held_by_another_process_and_keeps_its_log(perm_cache, tmp_path):
    data, perm, _ = perm_cache
    out = tmp_path / PERM
    out.parent.mkdir(parents=True)
    log = tmp_path / "run.log"
    log.write_text("the other process's log\n")
    protocol = {k: perm[k] for k in ("spec", "paper", "hp", "benchmark")}
    with open(out.with_name(f".{out.name}.lock"), "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = ("import fcntl, sys, json; from clrepro.batch import run_batch; "
                "print(json.dumps(run_batch(json.loads(sys.argv[1]), json.loads(sys.argv[2]), "
                "sys.argv[3], device='cpu')))")
        got = subprocess.run([sys.executable, "-c", code, json.dumps(
            {str(out): {"protocol": protocol, "log": str(log)}}), json.dumps(perm["data"]),
            str(data)], capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    outcome = json.loads(got.stdout.splitlines()[-1])
    assert outcome[str(out)].startswith("failed") and "being trained" in outcome[str(out)]
    assert log.read_text() == "the other process's log\n" and not out.exists()


# ------------------------------------------------------------ item 9: the progress line

def test_progress_past_an_estimated_total_shows_no_negative_eta(caplog, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    progress = Progress(2, "phase run", every_s=0.0)
    with caplog.at_level("INFO", logger="clrepro"):
        for _ in range(3):
            progress.update()
    assert "3/2" not in caplog.text and "eta -" not in caplog.text
    assert "3 batches (more than the 2 estimated)" in caplog.text
