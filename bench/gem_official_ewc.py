"""Does GEM's official EWC diverge where ours does? (issue 17; gem.table3's EWC note)

Runs the official code's `model/ewc.py` (github.com/facebookresearch/GradientEpisodicMemory,
checked out anywhere; nothing of it is copied here) on the prepared quick Rotations
stand-in, with the hyperparameters of our runs (lr, strength, Fisher samples, MLP sizes,
batch 10), and reports the first mini-batch after which any parameter is non-finite:

  official  the official Continuum (its stream order) and its seeding (`main.py`)
  same      the official Net started from our initialisation and fed our stream order
  clrepro   our EWC on our stream, checked after every mini-batch

`same` and `clrepro` differ only in the EWC code, so equal batches mean equal dynamics.
Finite official runs also print the official final ACC (its `confusion_matrix`); official
runs print the largest summed Fisher entry when they stop (compare with 1/(lr * strength)).

    clrepro data rot_fmnist@gem2017.quick
    python bench/gem_official_ewc.py --gem-code /tmp/GradientEpisodicMemory --epochs 5 --seeds 0 2
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from clrepro import config as cfg
from clrepro import plan as planning
from clrepro.data.benchmarks import materialize
from clrepro.data.definitions import BenchmarkDef
from clrepro.data.transforms import as_float
from clrepro.methods.ewc import EWC
from clrepro.models import build_model
from clrepro.seeds import derive_seed
from clrepro.train import build_phases, train_run

BENCH = "rot_fmnist@gem2017.quick"


def finite(params) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params)


def official_run(gem, bench, hp, epochs: int, seed: int, data_dir: Path, same: bool) -> str:
    """gem: the official `main` module (its Continuum, eval_tasks, load_datasets)."""
    fname = f"{BENCH}.s{seed}.official.pt"  # its format: per task (rotation, x (N, 784), y)
    flat = [[(0.0, as_float(x).reshape(len(y), -1), y) for x, y in pairs] for pairs in (
        [(t.train_x, t.train_y) for t in bench.tasks], [(t.test_x, t.test_y) for t in bench.tasks])]
    torch.save(tuple(flat), data_dir / fname)
    args = argparse.Namespace(
        model="ewc", n_hiddens=hp["model"]["hidden"][0], n_layers=len(hp["model"]["hidden"]),
        n_memories=hp["ewc.fisher_samples"], memory_strength=hp["ewc.strength"], lr=hp["lr"],
        finetune=False, n_epochs=epochs, batch_size=hp["batch_size"], cuda=False, seed=seed,
        log_every=hp["eval_every"], data_path=str(data_dir), data_file=fname,
        samples_per_task=-1, shuffle_tasks="no")
    torch.manual_seed(seed)  # as main.py seeds
    np.random.seed(seed)
    random.seed(seed)
    x_tr, x_te, n_inputs, n_outputs, n_tasks = gem.load_datasets(args)
    stream = gem.Continuum(x_tr, args)
    net = importlib.import_module("model.ewc").Net(n_inputs, n_outputs, n_tasks, args)
    if same:
        torch.manual_seed(derive_seed(seed, "init"))  # as clrepro.train initialises
        ours = build_model(hp["model"], bench.input_shape, bench.n_classes)
        with torch.no_grad():
            for theirs, mine in zip(net.net.parameters(), ours.parameters(), strict=True):
                theirs.copy_(mine)
        starts = np.cumsum([0] + [len(t.train_y) for t in bench.tasks])
        stream = ((x_tr[ph.task][1][ids], ph.task, x_tr[ph.task][2][ids])
                  for ph in build_phases(bench, "tasks", epochs, seed)
                  for ids in (ph.order - int(starts[ph.task])).split(hp["batch_size"]))
    result_t, result_a, current = [], [], 0
    for i, (x, t, y) in enumerate(stream):  # main.life_experience, plus the finiteness check
        if i % args.log_every == 0 or t != current:
            result_a.append(gem.eval_tasks(net, x_te, args))
            result_t.append(current)
            current = t
        net.train()
        net.observe(x.view(x.size(0), -1), t, y.long())
        if not finite(net.net.parameters()):
            return f"non-finite after batch {i + 1} (task {t}); {summed_fisher(net)}"
    result_a.append(gem.eval_tasks(net, x_te, args))
    result_t.append(current)
    acc = gem.confusion_matrix(torch.Tensor(result_t), torch.Tensor(
        [[float(a) for a in row] for row in result_a]))[0]
    return f"finite, final ACC {float(acc):.3f}; {summed_fisher(net)}"


def summed_fisher(net) -> str:
    """max_i sum_k F_k,i over the official Net's stored Fishers: plain SGD on the penalty
    sum_k s F_k,i (theta_i - theta*_k,i)^2 alone is stable only while it is < 1/(lr s)."""
    if not net.fisher:
        return "no Fisher yet"
    per_param = zip(*net.fisher.values())
    return f"max_i sum_k F_k,i = {max(float(sum(fs).max()) for fs in per_param):.4g}"


class ProbedEWC(EWC):
    """Our EWC, remembering the first mini-batch after which a parameter is non-finite."""

    first_bad: int | None = None

    def observe(self, x, y, tasks):
        super().observe(x, y, tasks)
        if ProbedEWC.first_bad is None and not finite(self.params):
            ProbedEWC.first_bad = self.step + 1


def clrepro_run(bench, hp, epochs: int, seed: int) -> str:
    ProbedEWC.first_bad = None
    out = train_run(bench, ProbedEWC, hp, seed, epochs, torch.device("cpu"))
    if ProbedEWC.first_bad is not None:
        return f"non-finite after batch {ProbedEWC.first_bad} (run status {out['status']})"
    return f"finite, final ACC {np.mean(out['R'][-1]):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gem-code", required=True, type=Path, help="official repository checkout")
    ap.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", default="config.yaml")
    a = ap.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(a.gem_code.resolve()))
    gem = importlib.import_module("main")
    p = planning.build(cfg.load(a.config if Path(a.config).is_file() else None, {}))
    tensors = torch.load(p.benchmark_path(BENCH), weights_only=True)
    with tempfile.TemporaryDirectory(prefix="gem_official_") as tmp:  # converted data files
        for epochs in a.epochs:
            for seed in a.seeds:
                out = Path(p.config["results"], "runs", BENCH, "ewc", f"m0-e{epochs}", f"s{seed}.json")
                desc = p.run_job(str(out)).description(p.data)
                hp = desc["hp"]
                bench = materialize(tensors, BenchmarkDef.from_dict(desc["benchmark"]), seed)
                print(f"e{epochs} s{seed} (lr {hp['lr']}, strength {hp['ewc.strength']}, Fisher "
                      f"samples {hp['ewc.fisher_samples']}, {hp['ewc.fisher']}):", flush=True)
                for name in ("official", "same", "clrepro"):
                    result = (clrepro_run(bench, hp, epochs, seed) if name == "clrepro" else
                              official_run(gem, bench, hp, epochs, seed, Path(tmp), name == "same"))
                    print(f"  {name:8s} {result}", flush=True)

if __name__ == "__main__":
    main()
