"""The papers' run options that change how a run is trained or evaluated, turned into the
strategies the online trainer takes (clrepro.schedule). The keys are in the papers' protocols
(the hyperparameters of a run, part of its protocol hash); the trainer never reads them.

  eval.drop_last_quirk   GEM D5: skip each task's last test example (GEM's code)
  eval.curve_tasks       GEM Fig. 1 (right): curve points between task ends read task 1 only
  iid.eval               GEM D13 (and GMED's iid runs): final | chunks
  eval.rows              BLD and DRL tables: last (R is the final row only)
  eval_split, tasks_limit, early_stopping
                         tuning runs (GMED §5.3, BLD's grids): validation split, first k
                         tasks, early stopping of a task's passes
  similarity             DRL Figs. 1-2: pair similarities of test images after the stream
"""

from __future__ import annotations

from typing import Any

from clrepro.schedule import EvalSchedule, StopRule, Study

# What these strategies read from a run's hyperparameters, declared as the online trainer's
# optional keys (clrepro.methods.catalog reads this table with `ast`).
TRAINER_OPTIONAL = {
    "eval.drop_last_quirk": "skip each task's last test example (GEM code, D5)",
    "eval.curve_tasks": "tasks evaluated at curve points between task ends (default all)",
    "eval_split": "test | val (tuning)",
    "tasks_limit": "train on the first k tasks only (tuning)",
    "early_stopping": "stop a task's passes when validation accuracy stops improving",
    "iid.eval": "final | chunks: R rows of the iid stream (GEM D13)",
    "eval.rows": "all (an R row after every task, and the initial row b) | last (final row only)",
    "similarity": "{samples, per_class}: after the stream, pair similarities of that many test "
                  "images (per class) saved as artifacts (DRL Figs. 1-2)",
}
# the keys by which a run asks to save tensors beside its record (the method's own logging,
# or a post-run study)
ARTIFACT_KEYS = ("gmed.log_edits", "log.artifacts", "similarity")


def evaluation_schedule(hp: dict[str, Any]) -> EvalSchedule:
    return EvalSchedule(split=hp.get("eval_split", "test"),
                        drop_last=hp.get("eval.drop_last_quirk", False),
                        curve_tasks=hp.get("eval.curve_tasks"),
                        last_row_only=hp.get("eval.rows", "all") == "last",
                        iid_chunks=hp.get("iid.eval", "final") == "chunks")


def stop_rule(hp: dict[str, Any]) -> StopRule:
    return StopRule(tasks=hp.get("tasks_limit") or None,
                    early_stopping=hp.get("early_stopping", False))


def studies(hp: dict[str, Any]) -> list[Study]:
    if not hp.get("similarity"):
        return []
    from clrepro.analysis import similarity

    def pair_similarities(model, eval_sets, seed):
        return similarity.study(model, eval_sets, hp["similarity"], seed)
    return [pair_similarities]


def for_run(hp: dict[str, Any]) -> dict[str, Any]:
    """The online trainer's strategy arguments for a run with hyperparameters `hp`."""
    return {"schedule": evaluation_schedule(hp), "stop": stop_rule(hp), "studies": studies(hp)}


def saves_artifacts(hp: dict[str, Any]) -> bool:
    """Whether the run saves tensors beside its record (GMED's edited memory, Mnemonics'
    exemplar features, DRL's pair similarities)."""
    return any(hp.get(key) for key in ARTIFACT_KEYS)
