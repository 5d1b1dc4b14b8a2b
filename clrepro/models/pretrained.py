"""ImageNet-pretrained ResNet-50 and ResNeSt-50 for the CORe50 tracks (DRL spec §4.5).

Weights are resolved in the suite's usual order: an explicit file (config) -> a local cache
(the torch hub checkpoint folder, then timm's Hugging Face hub cache) -> a download. Every
file is checked against a published hash before it is loaded, and loading never unpickles
arbitrary objects (`torch.load(weights_only=True)`, or safetensors).

Which weights, and which hash:
- resnet50: torchvision `ResNet50_Weights.IMAGENET1K_V1` (acc@1 76.13). That is what
  `resnet50(pretrained=True)` returned in 2020, when the paper was written; V2 (acc@1 80.86,
  a new training recipe) only came with torchvision 0.13 in 2022. The V1 file
  resnet50-0676ba61.pth re-serialises the original resnet50-19c8e357.pth (pytorch/vision
  issue #2068), so both are accepted. torchvision names a file <stem>-<first 8 hex digits
  of its sha256>.pth; the digits are the published hash (torch.hub's check_hash convention).
- resnest50d: the ResNeSt authors' resnest50-528c19ca.pth (zhanghang1989/ResNeSt publishes
  the sha256 prefix 528c19ca and loads it with check_hash=True). timm's resnest50d loaded this
  very file until timm moved its weights to the Hugging Face hub (timm/resnest50d.in1k); the
  state-dict keys of both models agree. A file in the HF cache is checked against its hub
  etag (the sha256 the hub publishes for the blob, which names the cached blob); the suite
  records no hash of its own for it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from clrepro.data.definitions import DataSettings
from clrepro.data.sources import ChecksumError, MissingDataError
from clrepro.fsutil import atomic_path, sha256_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # input normalisation both weight sets were trained with
IMAGENET_STD = (0.229, 0.224, 0.225)
N_FEATURES = 2048
REPRESENTATION_LAYERS = ("default", "all_stages")  # spec §4.2 option drl.layers


class MissingWeightsError(MissingDataError):
    """Pretrained weights are not available offline and could not be downloaded."""


class WeightsChecksumError(ChecksumError):
    """A weights file does not match its published hash."""


@dataclass(frozen=True)
class WeightsFile:
    name: str
    urls: tuple[str, ...]
    sha256_prefix: str  # published: the hex digits in the file name


@dataclass(frozen=True)
class WeightsSpec:
    backbone: str
    label: str
    files: tuple[WeightsFile, ...]  # accepted files; the first is the one downloaded
    hash_source: str
    hf_repo: str | None = None  # timm's Hugging Face hub repo, searched in the HF cache


WEIGHTS: dict[str, WeightsSpec] = {
    "resnet50": WeightsSpec(
        "resnet50", "torchvision ResNet50_Weights.IMAGENET1K_V1",
        (WeightsFile("resnet50-0676ba61.pth",
                     ("https://download.pytorch.org/models/resnet50-0676ba61.pth",), "0676ba61"),
         WeightsFile("resnet50-19c8e357.pth",
                     ("https://download.pytorch.org/models/resnet50-19c8e357.pth",), "19c8e357")),
        "sha256 prefix in torchvision's file name"),
    "resnest50d": WeightsSpec(
        "resnest50d", "ResNeSt-50 ImageNet weights (timm model resnest50d)",
        (WeightsFile("resnest50-528c19ca.pth", (
            # the authors' release, then timm's mirror of the same file (timm commit d72ac0db)
            "https://github.com/zhanghang1989/ResNeSt/releases/download/weights_step1/resnest50-528c19ca.pth",
            "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-resnest/resnest50-528c19ca.pth",
        ), "528c19ca"),),
        "sha256 prefix published by zhanghang1989/ResNeSt",
        hf_repo="timm/resnest50d.in1k"),
}
_HF_FILES = ("model.safetensors", "pytorch_model.bin")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def weights_spec(backbone: str) -> WeightsSpec:
    if backbone not in WEIGHTS:
        raise KeyError(f"no pretrained weights known for '{backbone}'; known: {', '.join(WEIGHTS)}")
    return WEIGHTS[backbone]


@dataclass(frozen=True)
class ResolvedWeights:
    backbone: str
    path: Path
    sha256: str  # of the file, for the run's provenance
    verified_by: str

    def to_dict(self) -> dict[str, str]:
        return {"backbone": self.backbone, "path": str(self.path), "sha256": self.sha256,
                "verified_by": self.verified_by}


def torch_hub_checkpoints() -> Path:
    """Where torch.hub (and torchvision, and timm before its HF move) cache weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache() -> Path:
    """huggingface_hub's cache folder, by its documented environment variables."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "huggingface" / "hub"


def _published_match(digest: str, spec: WeightsSpec, expected_sha256: str | None) -> str | None:
    """How digest is vouched for, or None: the configured sha256, else a published prefix."""
    if expected_sha256:
        return "sha256 given in the config" if digest == expected_sha256.lower() else None
    for f in spec.files:
        if digest.startswith(f.sha256_prefix):
            return f"{spec.hash_source}: {f.sha256_prefix} ({f.name})"
    return None


def _refusal(what: str, digest: str, spec: WeightsSpec, expected_sha256: str | None) -> str:
    wanted = (f"the configured sha256 {expected_sha256}" if expected_sha256 else
              "a sha256 starting with " + " or ".join(f.sha256_prefix for f in spec.files))
    return (f"refusing {what}: its sha256 is {digest}, but {spec.label} must have {wanted}. "
            f"It is corrupt, tampered with or a different model.")


def verify_weights(path: Path, spec: WeightsSpec,
                   expected_sha256: str | None = None) -> ResolvedWeights:
    """Accept the file only if its sha256 is the configured one, or starts with a published
    prefix of the spec. Raise WeightsChecksumError naming it otherwise."""
    digest = sha256_file(path)
    how = _published_match(digest, spec, expected_sha256)
    if how is None:
        raise WeightsChecksumError(_refusal(str(path), digest, spec, expected_sha256) +
                                   " Delete it so that it is downloaded again, or point the "
                                   "config at the original file.")
    return ResolvedWeights(spec.backbone, Path(path), digest, how)


def _verify_hf_blob(path: Path, spec: WeightsSpec, expected_sha256: str | None) -> ResolvedWeights:
    if expected_sha256:
        return verify_weights(path, spec, expected_sha256)
    blob = path.resolve()  # snapshots/<rev>/<file> links to blobs/<etag>; LFS etag = sha256
    digest = sha256_file(blob)
    if _SHA256.fullmatch(blob.name) and digest == blob.name:
        return ResolvedWeights(spec.backbone, path, digest,
                               "Hugging Face hub etag of the cached blob "
                               "(not recorded by the suite)")
    raise WeightsChecksumError(
        f"refusing {path}: its sha256 {digest} does not match the hub etag that names its "
        f"cached blob ({blob.name}). Delete {path.parent.parent.parent} to fetch it again.")


def _download(file: WeightsFile, dest: Path, spec: WeightsSpec,
              timeout: float = 60.0) -> ResolvedWeights:
    """Try the file's URLs in turn. The hash is checked while the file still has a temporary
    name, so a wrong download never appears under dest."""
    errors = []
    for url in file.urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, atomic_path(dest) as tmp:
                h = hashlib.sha256()
                with open(tmp, "wb") as f:
                    while block := resp.read(1 << 20):
                        f.write(block)
                        h.update(block)
                how = _published_match(h.hexdigest(), spec, None)
                if how is None:
                    raise WeightsChecksumError(_refusal(f"the download of {url}", h.hexdigest(),
                                                        spec, None) + " It was discarded.")
        except (OSError, http.client.HTTPException) as exc:  # offline: URLError is an OSError
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        return ResolvedWeights(spec.backbone, dest, h.hexdigest(), how)
    raise MissingWeightsError("download failed:\n  " + "\n  ".join(errors))


def resolve_weights(backbone: str, *, path: str | os.PathLike | None = None,
                    cache_dir: str | os.PathLike | None = None, download: bool = True,
                    expected_sha256: str | None = None,
                    hf_cache: str | os.PathLike | None = None) -> ResolvedWeights:
    """Find, verify (and if allowed download) the ImageNet weights of `backbone`.

    path: an explicit weights file (config); it must match a published hash or expected_sha256.
    cache_dir: searched first and downloaded into (default: the torch hub checkpoint folder).
    """
    spec = weights_spec(backbone)
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise MissingWeightsError(f"the configured weights file {explicit} for {backbone} "
                                      f"does not exist. Fix the path, or leave it unset to use "
                                      f"the cache ({torch_hub_checkpoints()}).")
        return verify_weights(explicit, spec, expected_sha256)
    dirs = [Path(cache_dir)] if cache_dir is not None else []
    if torch_hub_checkpoints() not in dirs:
        dirs.append(torch_hub_checkpoints())
    searched = []
    for d in dirs:
        for f in spec.files:
            searched.append(d / f.name)
            if (d / f.name).is_file():
                return verify_weights(d / f.name, spec, expected_sha256)
    if spec.hf_repo:
        repo_dir = Path(hf_cache or hf_hub_cache()) / ("models--" + spec.hf_repo.replace("/", "--"))
        searched.append(f"{repo_dir}/snapshots/*/{{{','.join(_HF_FILES)}}}")
        for name in _HF_FILES:
            for candidate in sorted(repo_dir.glob(f"snapshots/*/{name}")):
                if name.endswith(".safetensors") and not _has_safetensors():
                    continue
                return _verify_hf_blob(candidate, spec, expected_sha256)
    first = spec.files[0]
    download_error = ""
    if download:
        try:
            return _download(first, dirs[0] / first.name, spec)
        except MissingWeightsError as exc:
            download_error = f"\n({exc})"
    where = "\n".join(f"  - {s}" for s in searched)
    hint = "" if download else ", or allow downloads"
    raise MissingWeightsError(
        f"{spec.label} not found: need {first.name} (sha256 starts with {first.sha256_prefix}).\n"
        f"Searched:\n{where}\nFix: download {first.urls[0]} into {dirs[0]}, or set the "
        f"config's weights path to a copy of it{hint}.{download_error}")


def _has_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def load_state_dict(weights: ResolvedWeights | str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors only: .safetensors via safetensors, anything else via torch.load(weights_only=True),
    which refuses pickled code or objects."""
    path = weights.path if isinstance(weights, ResolvedWeights) else Path(weights)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # checkpoints that wrap the weights
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return obj


# ----------------------------------------------------------------------------- backbones

BACKBONES = ("resnet50", "resnest50d")


def _make_body(backbone: str) -> nn.Module:
    """The ImageNet architecture with random weights and its 1000-way classifier."""
    if backbone == "resnet50":
        from torchvision.models import resnet50

        return resnet50(weights=None)
    if backbone == "resnest50d":
        try:
            import timm
        except ImportError as exc:
            raise ImportError("the ResNeSt-50 backbone needs timm: pip install timm "
                              "(resnet50 works without it)") from exc
        return timm.create_model("resnest50d", pretrained=False)
    raise KeyError(f"unknown backbone '{backbone}'; known: {', '.join(BACKBONES)}")


class PretrainedBackbone(nn.Module):
    """ResNet-50 / ResNeSt-50 trunk with a new linear head of n_outputs classes.

    Multi-Task-NC's per-task heads are the task's rows of this head (the suite masks the
    other classes' logits), so one head of 50 outputs serves all tracks."""

    takes_task = False

    def __init__(self, backbone: str, n_outputs: int,
                 state_dict: Mapping[str, torch.Tensor] | None = None,
                 input_shape: tuple[int, int, int] | None = None):
        super().__init__()
        if input_shape is not None and input_shape[0] != 3:
            raise ValueError(f"{backbone} takes RGB input, got {input_shape[0]} channels")
        body = _make_body(backbone)
        if state_dict is not None:
            body.load_state_dict(state_dict)  # strict: the ImageNet file must fit exactly
        if body.fc.in_features != N_FEATURES:
            raise ValueError(f"{backbone}: expected {N_FEATURES} pooled features")
        body.fc = nn.Identity()  # the ImageNet classifier is replaced by self.head
        self.backbone = backbone
        self.body = body
        self.head = nn.Linear(N_FEATURES, n_outputs)
        self.weights_source: ResolvedWeights | None = None  # set by pretrained_backbone

    def _stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = self.body
        act = b.relu if hasattr(b, "relu") else b.act1  # torchvision vs timm stem naming
        x = b.maxpool(act(b.bn1(b.conv1(x))))
        outs = []
        for layer in (b.layer1, b.layer2, b.layer3, b.layer4):
            x = layer(x)
            outs.append(x)
        return outs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled output of the last stage, [N, 2048]."""
        return self._stages(x)[-1].mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def representations(self, x: torch.Tensor, layers: str = "default") -> dict[str, torch.Tensor]:
        """Named layer outputs for DRL: 'features' (pooled, 2048) and 'logits'; with
        layers='all_stages' also 'stage1'..'stage4', each stage output after global average
        pooling (256, 512, 1024, 2048 wide). stage4 equals 'features' numerically; the spec
        lists both, so a caller summing over all entries counts that layer twice."""
        if layers not in REPRESENTATION_LAYERS:
            raise ValueError(f"layers must be one of {REPRESENTATION_LAYERS}, got '{layers}'")
        stages = self._stages(x)
        pooled = [s.mean(dim=(2, 3)) for s in stages]
        out: dict[str, torch.Tensor] = {}
        if layers == "all_stages":
            out.update({f"stage{i + 1}": p for i, p in enumerate(pooled)})
        out["features"] = pooled[-1]
        out["logits"] = self.head(pooled[-1])
        return out


def pretrained_backbone(backbone: str, n_outputs: int, *, path: str | os.PathLike | None = None,
                        cache_dir: str | os.PathLike | None = None, download: bool = True,
                        expected_sha256: str | None = None) -> PretrainedBackbone:
    """Resolve and verify the ImageNet weights, build the backbone on them, add a new head."""
    weights = resolve_weights(backbone, path=path, cache_dir=cache_dir, download=download,
                              expected_sha256=expected_sha256)
    model = PretrainedBackbone(backbone, n_outputs, load_state_dict(weights))
    model.weights_source = weights
    return model


def weights_loader(settings: DataSettings, used: dict[str, dict[str, str]]):
    """backbone -> verified state dict, resolved as the config's data.weights says (an
    explicit path and/or sha256 per backbone; else the cache, checked against the published
    hash; a download only with data.download). Each resolved file is noted in `used`."""

    def load(backbone: str) -> dict[str, torch.Tensor]:
        entry = settings.weights_for(backbone)
        weights = resolve_weights(backbone, path=entry.get("path"), cache_dir=entry.get("dir"),
                                  download=settings.download, expected_sha256=entry.get("sha256"))
        used[backbone] = weights.to_dict()
        return load_state_dict(weights)

    return load
