import dataclasses
import hashlib
import io
import pickle
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from torch import nn

from clrepro.data.sources import ChecksumError, MissingDataError
from clrepro.models import pretrained
from clrepro.models.pretrained import (
    WEIGHTS,
    MissingWeightsError,
    PretrainedBackbone,
    WeightsChecksumError,
    WeightsFile,
    WeightsSpec,
    load_state_dict,
    pretrained_backbone,
    resolve_weights,
    verify_weights,
)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """No real cache is read and nothing is downloaded unless a test allows it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _save_toy(path: Path, seed: int = 0) -> str:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(nn.Linear(4, 3).state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pretend_published(monkeypatch, backbone: str, digest: str) -> WeightsSpec:
    """Make the toy file's hash the 'published' one under the real file name."""
    real = WEIGHTS[backbone].files[0]
    fake = dataclasses.replace(real, name=real.name, sha256_prefix=digest[:8])
    spec = dataclasses.replace(WEIGHTS[backbone], files=(fake,))
    monkeypatch.setitem(pretrained.WEIGHTS, backbone, spec)
    return spec


def test_recorded_files_match_torchvision():
    from torchvision.models import ResNet50_Weights

    url = ResNet50_Weights.IMAGENET1K_V1.url
    assert url in WEIGHTS["resnet50"].files[0].urls
    assert url.endswith(f"-{WEIGHTS['resnet50'].files[0].sha256_prefix}.pth")
    for spec in WEIGHTS.values():
        for f in spec.files:
            assert f.name.endswith(f"-{f.sha256_prefix}.pth")
            assert all(u.endswith("/" + f.name) for u in f.urls)


def test_hash_check_accepts_and_refuses(tmp_path):
    path = tmp_path / "toy.pth"
    digest = _save_toy(path)
    toy_file = WeightsFile(f"toy-{digest[:8]}.pth", (), digest[:8])
    spec = WeightsSpec("toy", "toy weights", (toy_file,), "test")
    ok = verify_weights(path, spec)
    assert ok.sha256 == digest and digest[:8] in ok.verified_by
    assert verify_weights(path, spec, expected_sha256=digest).verified_by.startswith("sha256 given")
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match=f"refusing {path}.*{digest[:8]}"):
        verify_weights(path, spec)
    assert issubclass(WeightsChecksumError, ChecksumError)  # the CLI reports these plainly


def test_cached_file_under_real_name_is_verified(tmp_path, monkeypatch):
    cached = pretrained.torch_hub_checkpoints() / WEIGHTS["resnet50"].files[0].name
    digest = _save_toy(cached)
    _pretend_published(monkeypatch, "resnet50", digest)
    found = resolve_weights("resnet50", download=False)
    assert found.path == cached and found.sha256 == digest
    _save_toy(cached, seed=1)  # same name, other content
    with pytest.raises(WeightsChecksumError, match=f"refusing {cached}"):
        resolve_weights("resnet50", download=False)


def test_real_published_prefix_refuses_a_random_file(tmp_path):
    """A file named like the real ResNeSt weights but with other content is refused."""
    explicit = tmp_path / WEIGHTS["resnest50d"].files[0].name
    _save_toy(explicit)
    with pytest.raises(WeightsChecksumError, match="528c19ca"):
        resolve_weights("resnest50d", path=explicit)


def test_offline_missing_weights_name_file_and_place(tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights("resnet50", cache_dir=tmp_path / "weights", download=False)
    text = str(err.value)
    assert "resnet50-0676ba61.pth" in text and str(tmp_path / "weights") in text
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in text
    assert isinstance(err.value, MissingDataError)
    with pytest.raises(MissingWeightsError, match="timm--resnest50d.in1k"):
        resolve_weights("resnest50d", download=False)
    with pytest.raises(MissingWeightsError, match="nope.pth for resnet50 does not exist"):
        resolve_weights("resnet50", path=tmp_path / "nope.pth")
    with pytest.raises(KeyError, match="known: resnet50, resnest50d"):
        resolve_weights("vgg16")


def test_download_is_verified_before_it_is_kept(tmp_path, monkeypatch):
    toy = tmp_path / "served.pth"
    digest = _save_toy(toy)
    spec = _pretend_published(monkeypatch, "resnet50", digest)
    served = {"body": toy.read_bytes()}
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: io.BytesIO(served["body"]))
    cache = tmp_path / "cache"
    got = resolve_weights("resnet50", cache_dir=cache)
    assert got.path == cache / spec.files[0].name and got.sha256 == digest
    got.path.unlink()
    served["body"] = served["body"][:-1] + b"x"  # corrupted in transit
    with pytest.raises(WeightsChecksumError, match="discarded"):
        resolve_weights("resnet50", cache_dir=cache)
    assert list(cache.iterdir()) == []  # neither the file nor a temporary copy remains


def test_hf_cache_blob_is_checked_against_its_etag(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    repo = tmp_path / "hf" / "models--timm--resnest50d.in1k"
    blob_tmp = tmp_path / "blob"
    safetensors.save_file({"w": torch.ones(2)}, str(blob_tmp))
    digest = hashlib.sha256(blob_tmp.read_bytes()).hexdigest()
    (repo / "blobs").mkdir(parents=True)
    blob = repo / "blobs" / digest
    blob_tmp.rename(blob)
    link = repo / "snapshots" / "abc123" / "model.safetensors"
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("../../blobs") / digest)
    got = resolve_weights("resnest50d", download=False)
    assert got.path == link and "etag" in got.verified_by
    assert torch.equal(load_state_dict(got)["w"], torch.ones(2))
    blob.write_bytes(blob.read_bytes() + b"\0")
    with pytest.raises(WeightsChecksumError, match="hub etag"):
        resolve_weights("resnest50d", download=False)


class _NotATensor:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_loading_is_weights_only(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.arange(3.0)}, good)
    assert torch.equal(load_state_dict(good)["w"], torch.arange(3.0))
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "epoch": 3}, wrapped)
    assert list(load_state_dict(wrapped)) == ["w"]
    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(1), "x": _NotATensor()}, evil)
    with pytest.raises(pickle.UnpicklingError):
        load_state_dict(evil)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return PretrainedBackbone("resnet50", n_outputs=7).eval()


def test_resnet50_representations_shapes(resnet):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        reps = resnet.representations(x, layers="all_stages")
        assert list(reps) == ["stage1", "stage2", "stage3", "stage4", "features", "logits"]
        assert [tuple(v.shape) for v in reps.values()] == [
            (1, 256), (1, 512), (1, 1024), (1, 2048), (1, 2048), (1, 7)]
        assert list(resnet.representations(x)) == ["features", "logits"]
        assert torch.allclose(resnet(x), reps["logits"])
        assert torch.allclose(resnet.features(x), reps["features"])
    with pytest.raises(ValueError, match="all_stages"):
        resnet.representations(x, layers="everything")


def test_pretrained_backbone_loads_verified_weights_then_replaces_the_head(monkeypatch):
    from torchvision.models import resnet50

    torch.manual_seed(1)
    source = resnet50(weights=None).state_dict()
    cached = pretrained.torch_hub_checkpoints() / WEIGHTS["resnet50"].files[0].name
    cached.parent.mkdir(parents=True)
    torch.save(source, cached)
    _pretend_published(monkeypatch, "resnet50", hashlib.sha256(cached.read_bytes()).hexdigest())
    model = pretrained_backbone("resnet50", n_outputs=5, download=False)
    assert torch.equal(model.body.conv1.weight, source["conv1.weight"])
    assert torch.equal(model.body.layer4[2].bn3.running_var, source["layer4.2.bn3.running_var"])
    assert model.head.out_features == 5 and isinstance(model.body.fc, nn.Identity)
    assert model.weights_source.path == cached
    with pytest.raises(RuntimeError, match="Missing key"):
        PretrainedBackbone("resnet50", 5, state_dict={"conv1.weight": source["conv1.weight"]})


def test_resnest50d_representations_shapes():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    model = PretrainedBackbone("resnest50d", n_outputs=3).eval()
    with torch.no_grad():
        reps = model.representations(torch.rand(1, 3, 64, 64), layers="all_stages")
    assert [tuple(v.shape) for v in reps.values()] == [
        (1, 256), (1, 512), (1, 1024), (1, 2048), (1, 2048), (1, 3)]


def test_resnet50_needs_no_timm(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install timm"):
        PretrainedBackbone("resnest50d", n_outputs=3)
    assert PretrainedBackbone("resnet50", n_outputs=3).head.out_features == 3


def test_failed_download_tries_each_mirror_and_says_so(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(MissingWeightsError, match="download failed") as err:
        resolve_weights("resnest50d", cache_dir=tmp_path / "w")
    assert all(url in str(err.value) for url in WEIGHTS["resnest50d"].files[0].urls)
    assert not (tmp_path / "w").exists() or not list((tmp_path / "w").iterdir())
