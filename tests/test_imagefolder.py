"""ImageNet / ImageNet-Subset from image folders (Mnemonics spec §4.1) on a tiny synthetic
ILSVRC-shaped JPEG tree: listing and class order, layout and class-list errors, the
per-image seeded training transform, and the phase trainer reading files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from clrepro.data import imagefolder, imagenet_classes, store
from clrepro.data.benchmarks import TaskData
from clrepro.data.definitions import DataSettings
from clrepro.data.imagefolder import ClassListError
from clrepro.augment import random_resized_crop
from clrepro.data.images import ImageFiles
from clrepro.data.sources import MissingDataError
from clrepro.methods import METHODS
from clrepro.papers.mnemonics2020 import protocol
from clrepro.papers.mnemonics2020.classes import CIFAR100_ORDER, IMAGENET_SUBSET_WNIDS
from clrepro.phases import train_phases
from clrepro.loop import Evaluator
from tests.imagenet_tree import image, make_tree

CPU = torch.device("cpu")
SIDE = 32  # network input of the tests (the protocol's is 224)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    make_tree(root / "imagenet")
    return root


def subset_defn(n: int = 5):
    defs = protocol.benchmarks("full", protocol.OPTION_DEFAULTS)
    return defs[f"imagenet_subset_b50_n{n}@mnemonics2020"].replace(image_size=SIDE)


def prepared_bench(data_dir, tmp_path, defn=None):
    defn = defn or subset_defn()
    settings = DataSettings(data_dir, download=False)
    store.build(defn, settings, tmp_path / "bench.pt")
    return imagefolder.materialize_folder(store.load(defn, tmp_path / "bench.pt"), defn, settings)


def test_tasks_list_every_class_in_the_committed_order(data_dir, tmp_path):
    bench = prepared_bench(data_dir, tmp_path)
    assert bench.n_tasks == 6 and bench.input_shape == (3, SIDE, SIDE)
    assert [len(t.classes) for t in bench.tasks] == [50, 10, 10, 10, 10, 10]
    first = bench.tasks[0].train_x
    assert isinstance(first, ImageFiles) and len(first) == 150 and len(bench.tasks[0].test_x) == 50
    # label 0 is the first class of the seed-1993 order, read from its WordNet folder
    wnid = IMAGENET_SUBSET_WNIDS[CIFAR100_ORDER[0]]
    assert first.y[0] == 0 and first.paths[0].startswith(f"train/{wnid}/")
    assert bench.tasks[1].classes.tolist() == list(range(50, 60))
    assert set(bench.tasks[1].test_y.tolist()) == set(range(50, 60))
    assert bench.input_norm() == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def test_the_manifest_records_the_lists_sha256(data_dir, tmp_path):
    defn = subset_defn()
    manifest = store.build(defn, DataSettings(data_dir, download=False), tmp_path / "b.pt")
    assert manifest["source"]["train"] == 300 and manifest["source"]["test"] == 100
    assert manifest["source"]["class_list_sha256"] == imagenet_classes.CLASS_LISTS_SHA256["imagenet_subset"]
    assert len(manifest["source"]["lists_sha256"]) == 64


def test_a_missing_folder_names_the_layout_and_the_first_missing_classes(tmp_path):
    root = make_tree(tmp_path / "imagenet", wnids=IMAGENET_SUBSET_WNIDS[:3])
    with pytest.raises(MissingDataError) as err:
        imagefolder.scan("imagenet_subset", DataSettings(tmp_path, download=False))
    message = str(err.value)
    assert f"train/{IMAGENET_SUBSET_WNIDS[3]}" in message  # the first class folder absent
    assert "194 of the 200 folders" in message and "... and 184 more" in message
    assert f"{root}/train/<wnid>/*.JPEG" in message and "image-net.org" in message


def test_no_folder_at_all_says_where_to_put_imagenet(tmp_path):
    with pytest.raises(MissingDataError, match=r"imagenet/train/<wnid>/\*\.JPEG"):
        imagefolder.scan("imagenet", DataSettings(tmp_path, download=False))


def test_a_subset_folder_with_other_classes_is_refused(data_dir, tmp_path):
    subset = tmp_path / "imagenet_subset"
    shutil.copytree(data_dir / "imagenet", subset)
    (subset / "train" / IMAGENET_SUBSET_WNIDS[5]).rename(subset / "train" / "n99999999")
    with pytest.raises(ClassListError, match="n99999999.*" + IMAGENET_SUBSET_WNIDS[5]):
        imagefolder.scan("imagenet_subset", DataSettings(tmp_path, download=False))


def test_a_subset_folder_with_the_committed_classes_is_used(data_dir, tmp_path):
    shutil.copytree(data_dir / "imagenet", tmp_path / "imagenet_subset")
    root, files = imagefolder.scan("imagenet_subset", DataSettings(tmp_path, download=False))
    assert root == tmp_path / "imagenet_subset" and len(files["train"]) == 100


def test_an_edited_class_list_is_refused(data_dir, monkeypatch):
    edited = ("n00000000",) + IMAGENET_SUBSET_WNIDS[1:]
    monkeypatch.setitem(imagenet_classes.CLASS_LISTS, "imagenet_subset", edited)
    monkeypatch.setattr(imagefolder, "CLASS_LISTS", imagenet_classes.CLASS_LISTS)
    with pytest.raises(ClassListError, match="does not match its committed sha256"):
        imagefolder.scan("imagenet_subset", DataSettings(data_dir, download=False))


def test_training_images_depend_on_seed_and_row_not_on_workers(data_dir, tmp_path):
    files = prepared_bench(data_dir, tmp_path).tasks[0].train_x
    rows = [torch.tensor([3, 0, 7]), torch.tensor([5])]
    alone = list(files.loader(rows, [11, 12], workers=0))
    pooled = list(files.loader(rows, [11, 12], workers=2))
    assert all(torch.equal(a, b) for a, b in zip(alone, pooled))
    assert alone[0].shape == (3, 3, SIDE, SIDE) and alone[0].dtype == torch.uint8
    other = next(files.loader(rows[:1], [99]))
    assert not torch.equal(other, alone[0])  # another epoch, other crops
    tests = list(files.loader(rows, workers=0))  # the test transform is deterministic
    assert torch.equal(tests[0], next(files.loader(rows[:1], workers=2)))


def test_random_resized_crop_keeps_the_crop_inside_the_image():
    image = torch.arange(40 * 60, dtype=torch.float32).reshape(1, 40, 60).expand(3, -1, -1)
    for seed in range(20):
        out = random_resized_crop(image, 16, torch.Generator().manual_seed(seed))
        assert out.shape == (3, 16, 16)
        assert image.min() <= out.min() and out.max() <= image.max()


def test_evaluating_files_equals_evaluating_their_decoded_images(data_dir, tmp_path):
    bench = prepared_bench(data_dir, tmp_path)
    method = METHODS["joint_cil"](_ctx(bench), {**HP, "exemplars.kind": "random"})
    on_files = Evaluator(bench, CPU, 16, False, workers=0)(method, [0, 1])
    decoded = [TaskData(t.train_x, t.train_y, t.val_x, t.val_y,
                        t.test_x.decode(torch.arange(len(t.test_x))), t.test_y, t.classes, {})
               for t in bench.tasks]
    bench.tasks = decoded
    assert Evaluator(bench, CPU, 16, False)(method, [0, 1]) == on_files


def _ctx(bench):
    from clrepro.loop import make_context

    return make_context(bench, CPU, 0, 1, True)


HP = {"lr": 0.05, "model": {"name": "resnet32_lucir", "blocks_per_stage": 1, "normalize": True},
      "batch_size": 32, "augment.crop_pad": 0, "augment.flip": True,
      "augment.resized_crop": SIDE, "lr_schedule": {"milestones": [1], "gamma": 0.1},
      "optimizer": {"name": "sgd", "momentum": 0.9, "weight_decay": 5e-4},
      "exemplars.kind": "mnemonics", "exemplars.policy": "per_class", "exemplars.per_class": 2,
      "weight_transfer": True, "finetune.epochs": 1, "finetune.lr": 0.01, "finetune.batch_size": 16,
      "mnemonics.outer_epochs": 1, "mnemonics.inner_steps": 1, "mnemonics.inner_lr": 0.01,
      "mnemonics.lr": 0.01, "mnemonics.adjust_old": True, "mnemonics.init": "random",
      "mnemonics.mode": "bilevel", "mnemonics.val_batch": 64, "lucir.lambda_base": 5.0,
      "lucir.k": 2, "lucir.margin": 0.5, "log.artifacts": True, "eval_batch_size": 64}


def test_lucir_with_mnemonics_trains_on_files_and_resumes_identically(data_dir, tmp_path, monkeypatch):
    bench = prepared_bench(data_dir, tmp_path, subset_defn(25)).first_tasks(2)
    reference = train_phases(bench, METHODS["lucir"], HP, 0, 1, CPU, workers=0)
    assert reference["status"] == "ok" and len(reference["R"]) == 2
    assert reference["memory_bytes"]["data_storage"] > 0
    assert reference["artifacts"]["p1/c50/exemplars"].shape[0] == 2
    from clrepro.memory.mnemonics import MnemonicsProgram

    real, calls = MnemonicsProgram.optimise_exemplars, {"n": 0}

    def crash_once(self, *args, **kwargs):  # killed inside the second phase's exemplar work
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MnemonicsProgram, "optimise_exemplars", crash_once)
    ckpt = tmp_path / "run.ckpt.pt"
    with pytest.raises(RuntimeError, match="killed"):
        train_phases(bench, METHODS["lucir"], HP, 0, 1, CPU, checkpoint=ckpt, workers=2)
    monkeypatch.setattr(MnemonicsProgram, "optimise_exemplars", real)
    resumed = train_phases(bench, METHODS["lucir"], HP, 0, 1, CPU, checkpoint=ckpt, workers=2)
    assert resumed["timings"]["resumed"] == 1 and resumed["R"] == reference["R"]


def test_bic_holds_out_file_rows_and_corrects_its_bias(data_dir, tmp_path):
    bench = prepared_bench(data_dir, tmp_path, subset_defn(25)).first_tasks(2)
    hp = {**HP, "exemplars.kind": "herding", "mnemonics.adjust_old": False, "finetune.epochs": 0,
          "kd.tau": 2.0, "bic.val_fraction": 0.34, "bic.epochs": 3, "bic.lr": 0.01}
    out = train_phases(bench, METHODS["bic"], hp, 0, 1, CPU, workers=0)
    assert out["status"] == "ok" and all(a is not None for a in out["R"][1])


def test_the_joint_upper_bound_merges_file_backed_phases(data_dir, tmp_path):
    bench = prepared_bench(data_dir, tmp_path, subset_defn(25))
    hp = {**HP, "exemplars.kind": "random", "exemplars.per_class": 0, "weight_transfer": False,
          "finetune.epochs": 0, "phases.merge": 2, "log.artifacts": False}
    out = train_phases(bench, METHODS["joint_cil"], hp, 0, 1, CPU)
    assert out["status"] == "ok" and out["test_sizes"] == [52]


def test_imagenet_runs_use_the_imagenet_transforms():
    from clrepro import plan

    p = plan.build({"scale": "full", "papers": ["mnemonics2020"]})
    job = p.run_job("results/runs/imagenet_subset_b50_n5@mnemonics2020/lucir/m20-e90/s0.json")
    assert job.hp["augment.resized_crop"] == 224 and job.hp["augment.crop_pad"] == 0
    assert job.resources["threads"] == 8  # one decoding worker per thread


def test_bic_holds_out_balanced_file_rows_and_keeps_them_out_of_training(data_dir, tmp_path):
    from clrepro.data.transforms import as_float
    from clrepro.methods.base import FileStream

    bench = prepared_bench(data_dir, tmp_path, subset_defn(25))
    hp = {**HP, "kd.tau": 2.0, "bic.val_fraction": 0.3, "bic.epochs": 1, "bic.lr": 0.01,
          "exemplars.per_class": 3}  # ceil(0.3 x 3) = 1 validation image per class
    bic = METHODS["bic"](_ctx(bench), hp)
    streams = [FileStream(t.train_x, t.train_y, 0) for t in bench.tasks]
    bic.begin_task(0, streams[0])
    bic.begin_task(1, streams[1])
    assert sorted(bic.validation) == list(range(52))
    assert {len(v) for v in bic.validation.values()} == {1}
    bic.exemplars = {c: torch.rand(2, 3, SIDE, SIDE) for c in range(50)}
    rows = bic.held_rows(1, streams[1])
    assert sorted(streams[1].y[rows].tolist()) == [50, 51]
    for r in rows.tolist():  # the decoded file is the class's validation image
        c = int(streams[1].y[r])
        assert torch.equal(as_float(bic.validation[c])[0], as_float(streams[1].x.decode(torch.tensor([r])))[0])
    kept = bic.training_set(1, streams[1])
    assert len(kept.files) + len(rows) == len(streams[1].y) == 6  # 2 classes x 3 images
    assert len(kept.y) == 100  # the training exemplars, all of them
    held = {streams[1].x.paths[r] for r in rows.tolist()}
    assert not held & set(kept.files.paths)
    assert not held & set(bic.training_data(1, streams[1]).x.paths)  # nor exemplar choice


def test_a_training_job_reads_the_folder_and_writes_its_record(data_dir, tmp_path):
    """The job path a Snakemake rule takes, shrunk: 1 epoch, 32-pixel crops, ResNet-32."""
    import dataclasses

    from clrepro import plan
    from clrepro.job import run_job

    p = plan.build({"scale": "full", "papers": ["mnemonics2020"]})
    job = p.run_job("results/runs/imagenet_subset_b50_n25@mnemonics2020/lucir/m20-e90/s0.json")
    spec = dataclasses.replace(job.spec, epochs=1)
    small = dataclasses.replace(job, spec=spec, benchmark=subset_defn(25).replace(n_tasks=2),
                                hp={**job.hp, **{k: HP[k] for k in ("model", "augment.resized_crop")},
                                    "lr_schedule": None, "finetune.epochs": 0})
    out = spec.path(tmp_path / "results")
    record = run_job(small.description(DataSettings(data_dir, download=False)), out,
                     tmp_path / "data.pt", device="cpu", threads=2)
    assert record["status"] == "ok" and out.is_file()
    assert [t["n_train"] for t in record["benchmark"]["tasks"]] == [150, 6]
    assert record["metrics"]["acc"] is not None


def test_flat_validation_images_get_a_hint_to_sort_them(data_dir, tmp_path):
    root = tmp_path / "imagenet"
    shutil.copytree(data_dir / "imagenet" / "train", root / "train")
    (root / "val").mkdir()
    (root / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    with pytest.raises(MissingDataError, match=r"val/n[0-9]+(.|\n)*holds images directly"):
        imagefolder.scan("imagenet_subset", DataSettings(tmp_path, download=False))


def test_official_archives_are_checked_and_unpacked_into_the_layout(tmp_path, monkeypatch):
    from torchvision.datasets import imagenet as tv

    from tests.imagenet_tree import make_archives

    for part, meta in make_archives(tmp_path / "imagenet").items():
        monkeypatch.setitem(tv.ARCHIVE_META, part, meta)
    root, files = imagefolder.scan("imagenet_subset", DataSettings(tmp_path, download=False))
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["train", "val"]
    assert all(len(f) == 1 for f in files["train"]) and all(len(f) == 1 for f in files["test"])
    # the validation image of class k was sorted into class k's folder (by the ground truth)
    i = 5
    wnid = IMAGENET_SUBSET_WNIDS[i]
    decoded = ImageFiles(str(root), files["test"][i], torch.tensor([0])).decode(torch.tensor([0]))
    expected = torch.from_numpy(np.array(image(i, 100))).permute(2, 0, 1).float()
    assert files["test"][i][0].startswith(f"val/{wnid}/")
    assert (decoded[0].float().mean((1, 2)) - expected.mean((1, 2))).abs().max() < 8


def test_a_corrupted_archive_is_refused_by_name(tmp_path):
    from clrepro.data.sources import ChecksumError
    from tests.imagenet_tree import make_archives

    make_archives(tmp_path / "imagenet")  # md5s differ from the published ones
    with pytest.raises(ChecksumError, match="ILSVRC2012_img_train.tar"):
        imagefolder.scan("imagenet_subset", DataSettings(tmp_path, download=False))
    assert not (tmp_path / "imagenet" / "train").exists()
