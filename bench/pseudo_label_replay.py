"""Benchmark: one human-effort policy session's pseudo-label cuts, replayed against the truth,
and how old the audits that certified them were.

`bench/human_effort.py` reports how often the pseudo-labels were right, not why they missed.
This runs its policy session once (same pool and settings) and records, at every training
run, what the cuts were certified on (each audit's out-of-fold confidence, class and
correctness, and how many images were open when it was answered) and what they were applied
to (the served model's predictions on the open images). Then, for every version whose audits
certify a pooled cut:

- the app's rule replayed (`certified_class_thresholds`, then `cuts_within_share`, then the
  cut applied to the confidence the version pseudo-labels on): the pseudo-labels it makes
  fresh, their true precision, class by class, and whether the replayed cuts are the ones
  the app wrote (`cuts_match`: a check on the replay itself);
- the audits split by age: answered while the open pool was more than `--old` times its size
  at this version ("old"), or since ("recent"); the out-of-fold accuracy of each and its
  share above the pooled cut. Audits are a random sample of the pool *they were drawn
  from*; when pages have since taken the confident right images, the old ones are easier
  than the images left (stop 34, docs/benchmarks/human-effort.md);
- a bound that counts what left (`wrong_left_bound`: a candidate rule, not the app's);
- the app's rule on the recent audits only (`recent_audits_only`: a candidate rule, not the
  app's): what cuts certified on a sample of a pool like the one left would pseudo-label.

Then the session's pseudo-labels as the app keeps them (`kept_pseudo_labels`, `kept_session`:
fresh ones added, earlier ones kept while open and still predicted, the least confident
kept ones dropped where the set in use no longer clears the target on the version's curve),
under the app's rule, under it without that last step (the app until stop 40), and under the
rule until stop 38 (`counted_until_stop_38`: the audits above the pooled cut
counted), and under the rules replayed at stops 43-46, each named by its parts: the curve's
prior centred on a flat curve (`flat_prior`, the app until stop 45) or on a calibrated model
(`calibrated_prior`), and each class on the pooled cut held to its own partially pooled
curve (`class_curves`, `class_curve_cut` in models_ml/confidence.py; loose: a wider prior
around the pooled curve; checked at the cut: the image at the cut too, the app since stop
46) or not; on the
same recorded versions: a replay, so what the session would have done differently with
other pseudo-labels is not in it. What watches the kept ones is recorded
per version (`kept_guard`: the audits that landed on pseudo-labels, how many were right, and
whether they drop every kept one). And the pooled cut alone under candidate curves
(`pooled_cut_candidates`: the app's, its prior centred on a flat curve or on a calibrated
model, and the app's fitted to the top half of the audits by confidence), the fresh
pseudo-labels each makes summed over the versions. Prints one JSON. `--record FILE` writes
the recorded session to FILE (a pickle) or, where FILE exists, replays it without running a
session; `--budget N` records the session's first N labels only (the first versions, in
minutes).

    .venv/bin/python bench/pseudo_label_replay.py --data fashion-mnist
    .venv/bin/python bench/pseudo_label_replay.py --data ../shared/data/cifar10-jpg.zip
"""

import argparse
import dataclasses
import json
import pickle
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.label_efficiency import django_setup, fashion_mnist_tree  # noqa: E402
from models_ml.confidence import CALIBRATION_PRIOR_MEAN  # noqa: E402

# The curve prior's centre on a calibrated model (chance = confidence until the audits say
# otherwise), replayed since stop 41; the app's is CALIBRATION_PRIOR_MEAN.
CALIBRATED_MODEL = (0.0, 1.0)
FLAT_CURVE = (0.0, 0.0)  # chance 0.5 at every confidence until the audits say otherwise
# The class curves replayed at stop 44 (`class_curve_cut`): the class prior's sd around the
# pooled curve, and whether the image at the class's cut must clear the target too.
STRICT_CLASS_CURVES = {"class_curve_sd": 1.0, "class_curve_at_cut": True}
LOOSE_CLASS_CURVES = {"class_curve_sd": 0.5, "class_curve_at_cut": False}
# the loose prior with the image at the cut checked (stop 46): what held the toy pool's
# confused class back in tests/models_ml/test_confidence.py where the mean alone did not
LOOSE_CLASS_CURVES_CHECKED_AT_CUT = {"class_curve_sd": 0.5, "class_curve_at_cut": True}


def curve_evidence(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the version's calibration curve was fitted to (`HeldOut.curve_audits`): the
    audits of the open images and those drawn among the most confident of them (recordings
    made before stop 42 hold the first only)."""
    if "curve_conf" not in record:
        return record["audit_conf"], record.get("audit_pred"), record["audit_correct"]
    return record["curve_conf"], record["curve_pred"], record["curve_correct"]


def app_cuts(
    record: dict,
    *,
    target: float,
    prior_mean: tuple[float, float] = CALIBRATION_PRIOR_MEAN,
    **class_curves,
) -> tuple[float | None, dict]:
    """The app's pooled cut and class cuts (before `cuts_within_share`) for one record; with
    another `prior_mean`, the app's rule on a curve with its prior centred there, and with
    `class_curve_sd` (and `class_curve_at_cut`), each class on the pooled cut held to its
    own partially pooled curve (`class_curve_cut`) with that prior sd."""
    from models_ml.confidence import calibrated_cut, certified_class_thresholds

    conf, pred, right = record["audit_conf"], record["audit_pred"], record["audit_correct"]
    curve = curve_evidence(record)
    pooled = calibrated_cut(
        curve[0], curve[2], record["open_conf"], target=target, prior_mean=prior_mean
    )
    cuts = certified_class_thresholds(
        conf,
        pred,
        right,
        target=target,
        open_confidence=record["open_conf"],
        curve_evidence=curve,
        prior_mean=prior_mean,
        open_predicted=record["open_pred"],
        **class_curves,
    )
    return pooled, cuts


def counted_cuts(record: dict, *, target: float) -> tuple[float | None, dict]:
    """The same with the rule until stop 38 (the audits above the pooled cut counted)."""
    from bench.pseudo_label_certification import counted_cuts as counted
    from models_ml.confidence import preselect_threshold

    conf, pred, right = record["audit_conf"], record["audit_pred"], record["audit_correct"]
    pooled = preselect_threshold(conf, right, target=target).threshold
    return pooled, counted(conf, pred, right, target=target)


def replay_version(
    record: dict, truth: dict[int, int], *, target: float, rule=app_cuts
) -> dict | None:
    """The cuts of `rule` (the app's by default) from one version's recorded audits and
    open predictions, and the fresh pseudo-labels they make, scored against `truth` ({item
    id: class id}); None where the audits certify no pooled cut."""
    from models_ml.confidence import cut_limits, cuts_within_share

    conf, pred, right = record["audit_conf"], record["audit_pred"], record["audit_correct"]
    if not len(conf):
        return None
    pooled, class_cuts = rule(record, target=target)
    if pooled is None:
        return None
    cuts = cuts_within_share(
        class_cuts,
        conf,
        pred,
        record["open_share_conf"],
        record["open_pred"],
    )
    chosen = record["open_conf"] >= cut_limits(cuts, record["open_pred"])
    ids, classes = record["open_ids"][chosen], record["open_pred"][chosen]
    hits = np.array([truth[int(i)] == int(c) for i, c in zip(ids, classes, strict=True)], bool)
    by_class = {
        int(c): [int((classes == c).sum()), int(hits[classes == c].sum())]
        for c in np.unique(classes)
    }
    above = conf >= pooled
    written = {int(c): t for c, t in record["app_cuts"].items() if t is not None}
    replayed = {c: cut.threshold for c, cut in cuts.items() if cut.threshold is not None}
    return {
        "labels": record["labels"],
        "open": int(len(record["open_ids"])),
        "audits": int(len(conf)),
        "pooled_cut": round(float(pooled), 4),
        "audits_above_cut": int(above.sum()),
        "audits_above_cut_right": int(right[above].sum()),
        "open_above_cut_share": round(float(np.mean(record["open_conf"] >= pooled)), 4),
        "pseudo_labels": int(chosen.sum()),
        "pseudo_label_precision": round(float(hits.mean()), 4) if len(hits) else None,
        "pseudo_label_ids": dict(zip(ids.tolist(), classes.tolist(), strict=True)),
        "pseudo_labels_by_class": by_class,
        "cuts_match": replayed.keys() == written.keys()
        and all(abs(replayed[c] - written[c]) < 1e-9 for c in replayed),
    }


def audit_age_split(record: dict, *, pooled_cut: float, old: float) -> dict:
    """The version's audits in two groups: answered while more than `old` times as many
    images were open as now ("old"), or since ("recent"); per group, how many, their
    out-of-fold accuracy and their share at or above `pooled_cut`."""
    conf, right = record["audit_conf"], record["audit_correct"]
    aged = record["audit_open_then"] > old * len(record["open_ids"])
    out = {}
    for name, group in (("old", aged), ("recent", ~aged)):
        n = int(group.sum())
        out[name] = {
            "audits": n,
            "accuracy": round(float(right[group].mean()), 4) if n else None,
            "share_above_cut": round(float(np.mean(conf[group] >= pooled_cut)), 4) if n else None,
        }
    return out


RECENT_KEYS = ("audits", "pooled_cut", "pseudo_labels", "pseudo_label_precision")
AUDIT_KEYS = (
    "audit_ids",
    "audit_conf",
    "audit_pred",
    "audit_correct",
    "audit_open_then",
    "audit_labeled_at",
)


def recent_audits_only(record: dict, *, old: float) -> dict:
    """The record with only its "recent" audits (`audit_age_split`): a candidate rule (not
    the app's) that certifies cuts on audits drawn from a pool like the one left, at most
    `old` times its size. `replay_version` on it gives what that rule would pseudo-label."""
    recent = record["audit_open_then"] <= old * len(record["open_ids"])
    rest = {key: value for key, value in record.items() if not key.startswith("curve_")}
    return dict(rest, **{key: record[key][recent] for key in AUDIT_KEYS if key in record})


def wrong_left_bound(
    record: dict, *, pooled_cut: float, pseudo_labels: int, z: float = 1.645
) -> dict | None:
    """A certification that counts what left (tried here, not in the app): the audits bound
    the wrong predictions at or above `pooled_cut` in the pool they were drawn from (a
    one-sided Wilson upper bound on their wrong share, times the pool's mean size when they
    were answered); the labels given since remove some of those wrong ones, and their
    out-of-fold predictions and answers say exactly how many (mean over the audits of the
    wrong ones labeled since each was drawn); what is left is at most the difference, among
    the `pseudo_labels` the cut makes. Returns the bound on their precision (None: no
    pseudo-labels)."""
    from models_ml.confidence import wilson_upper_bound

    if not pseudo_labels or not len(record["audit_conf"]):
        return None
    conf, right = record["audit_conf"], record["audit_correct"]
    wrong_above = int(((conf >= pooled_cut) & ~right).sum())
    drawn_from = float(np.mean(record["audit_open_then"]))
    wrong_in_pool = drawn_from * wilson_upper_bound(wrong_above, len(conf), z)
    labels = record["labels_oof"]  # every label with an out-of-fold prediction
    wrong_label = (labels["conf"] >= pooled_cut) & ~labels["correct"]
    removed = np.mean(
        [
            int((wrong_label & (labels["labeled_at"] >= at)).sum())
            for at in record["audit_labeled_at"]
        ]
    )
    wrong_left = max(wrong_in_pool - removed, 0.0)
    return {
        "wrong_in_pool_at_most": round(wrong_in_pool, 1),
        "wrong_removed_since": round(float(removed), 1),
        "precision_at_least": round(max(1.0 - wrong_left / pseudo_labels, 0.0), 4),
    }


# name: (prior mean of the curve's (a, b), share of audits fitted). The app's prior is
# CALIBRATION_PRIOR_MEAN: centred on a flat curve until stop 46, on a calibrated model, (0,
# 1), since (replayed here at stop 41, run in the benchmark at stops 43-46).
POOLED_CUT_CANDIDATES = {
    "app": (CALIBRATION_PRIOR_MEAN, 1.0),
    "flat_prior": (FLAT_CURVE, 1.0),
    "calibrated_prior": (CALIBRATED_MODEL, 1.0),
    "top_half_of_the_audits": (CALIBRATION_PRIOR_MEAN, 0.5),
}


def pooled_cut_candidates(records: list[dict], truth: dict[int, int], *, target: float) -> dict:
    """For each of POOLED_CUT_CANDIDATES, the pooled cut alone (no class cuts, no share
    limit) applied to every version's open images, from the versions with at least
    MIN_CALIBRATION_AUDITS audits: the fresh pseudo-labels summed over the versions, how many
    right, the versions it certified no cut at and its worst version's precision."""
    from models_ml.confidence import MIN_CALIBRATION_AUDITS, calibrated_cut

    out = {}
    for name, (prior_mean, share) in POOLED_CUT_CANDIDATES.items():
        made = right = uncut = 0
        worst = None
        for record in records:
            conf, _, correct = curve_evidence(record)
            if len(conf) < MIN_CALIBRATION_AUDITS:
                continue
            fitted = conf >= np.quantile(conf, 1 - share) if share < 1 else slice(None)
            cut = calibrated_cut(
                conf[fitted],
                correct[fitted],
                record["open_conf"],
                target=target,
                prior_mean=prior_mean,
                min_audits=int(MIN_CALIBRATION_AUDITS * share),
            )
            if cut is None:
                uncut += 1
                continue
            chosen = record["open_conf"] >= cut
            hits = [
                truth[int(i)] == int(c)
                for i, c in zip(
                    record["open_ids"][chosen], record["open_pred"][chosen], strict=True
                )
            ]
            made, right = made + len(hits), right + sum(hits)
            if hits:
                share_right = sum(hits) / len(hits)
                worst = share_right if worst is None else min(worst, share_right)
        out[name] = {
            "fresh_pseudo_labels_summed_over_versions": made,
            "right": right,
            "precision": round(right / made, 4) if made else None,
            "versions_with_no_cut": uncut,
            "worst_version_precision": round(worst, 4) if worst is not None else None,
        }
    return out


def record_session(
    data: Path,
    *,
    encoder: str,
    pool_size: int,
    test_size: int,
    seed: int,
    log,
    budget: int | None = None,
):
    """Run the human-effort policy session and return (records, truth, summary): one record
    per training run (see the module doc), recorded by wrapping two steps of the training
    run (`held_out_evidence` and `_version_write`) for the length of the session."""
    import bench.human_effort as human_effort
    from core.evaluation.simulation import Simulation
    from core.models import Annotation, Lease
    from core.services import training

    records: list[dict] = []
    pending: dict = {}
    open_then: dict[int, int] = {}  # audit item id -> images open when first seen answered
    labeled_at: dict[int, int] = {}  # item id -> the first record in which it is a label
    evidence_step, write_step = training.held_out_evidence, training._version_write

    def held_out_evidence(*, project, oof, labeled_ids, y):
        evidence = evidence_step(project=project, oof=oof, labeled_ids=labeled_ids, y=y)
        covered = labeled_ids[oof.covered]
        audits, curve = evidence.audits_only(), evidence.curve_audits()
        classes = np.unique(y)
        proba = oof.proba[oof.covered]
        pending["labels_oof"] = {
            "ids": covered,
            "conf": proba.max(axis=1) if len(proba) else np.zeros(0),
            "correct": classes[proba.argmax(axis=1)] == y[oof.covered]
            if len(proba)
            else np.zeros(0, bool),
        }
        pending.update(
            audit_ids=audits.item_ids,
            audit_conf=audits.confidence,
            audit_pred=audits.predicted,
            audit_correct=audits.correct,
            curve_conf=curve.confidence,
            curve_pred=curve.predicted,
            curve_correct=curve.correct,
            answered=set(
                Lease.objects.filter(
                    item__project=project, audit_of_open=True, completed_at__isnull=False
                ).values_list("item_id", flat=True)
            ),
        )
        return evidence

    def version_write(**kwargs):
        from core.selectors.progress import pseudo_label_audit
        from models_ml.confidence import shown_below

        project, pool_ids, probs = kwargs["project"], kwargs["pool_ids"], kwargs["probs"]
        guard = pseudo_label_audit(project=project)
        labeled = set(
            Annotation.objects.filter(item__project=project, is_current=True).values_list(
                "item_id", flat=True
            )
        )
        is_open = ~np.isin(pool_ids, list(labeled))
        best = probs.argmax(axis=1)
        share_conf = probs.max(axis=1)  # what `cuts_within_share` is given
        conf = share_conf.copy()  # what the version pseudo-labels on (see rejected_classes_drop)
        for row, left in (kwargs.get("probability_left") or {}).items():
            conf[row] *= left
        # An audit answered since the last version was drawn from about the open pool then.
        size_before = len(records[-1]["open_ids"]) if records else len(pool_ids)
        for item in pending.get("answered", ()):
            open_then.setdefault(int(item), size_before)
        for item in labeled:
            labeled_at.setdefault(int(item), len(records))  # the first version it was a label
        oof_labels = pending.get("labels_oof") or {"ids": np.zeros(0, np.int64)}
        ids = pending.get("audit_ids", np.zeros(0, np.int64))
        records.append(
            {
                "labels": len(labeled),
                "audit_ids": ids,
                "audit_conf": pending.get("audit_conf", np.zeros(0)),
                "audit_pred": pending.get("audit_pred", np.zeros(0, np.int64)),
                "audit_correct": pending.get("audit_correct", np.zeros(0, bool)),
                "curve_conf": pending.get("curve_conf", np.zeros(0)),
                "curve_pred": pending.get("curve_pred", np.zeros(0, np.int64)),
                "curve_correct": pending.get("curve_correct", np.zeros(0, bool)),
                "audit_open_then": np.array([open_then.get(int(i), 0) for i in ids]),
                "audit_labeled_at": np.array([labeled_at.get(int(i), 0) for i in ids]),
                "labels_oof": {
                    "conf": oof_labels.get("conf", np.zeros(0)),
                    "correct": oof_labels.get("correct", np.zeros(0, bool)),
                    "labeled_at": np.array(
                        [labeled_at.get(int(i), 0) for i in oof_labels["ids"]], dtype=np.int64
                    ),
                },
                "open_ids": pool_ids[is_open],
                "open_conf": conf[is_open],
                "open_share_conf": share_conf[is_open],
                "open_pred": kwargs["class_ids"][best][is_open],
                "app_cuts": {c: cut.threshold for c, cut in (kwargs.get("pseudo") or {}).items()},
                "kept_guard": {
                    "audited": guard["audited"],
                    "right": guard["right"],
                    "drops_kept": shown_below(
                        guard["right"], guard["audited"], project.pseudo_label_precision
                    ),
                },
            }
        )
        pending.clear()
        return write_step(**kwargs)

    training.held_out_evidence, training._version_write = held_out_evidence, version_write
    try:
        with Simulation(
            data,
            encoder=encoder,
            pool_size=pool_size,
            test_size=test_size,
            data_seed=seed,
            log=log,
        ) as simulation:
            config = human_effort.sessions(pool_size, 20, seed)["policy"]
            if budget is not None:
                config = dataclasses.replace(config, budget=budget)
            result = simulation.run(config)
            truth = simulation._ready().truth
    finally:
        training.held_out_evidence, training._version_write = evidence_step, write_step
    return records, truth, result["summary"]


def kept_session(
    records: list[dict],
    truth: dict[int, int],
    *,
    target: float,
    rule,
    certify_kept: bool = True,
    kept_q: float = 0.05,
    prior_mean: tuple[float, float] = CALIBRATION_PRIOR_MEAN,
) -> dict:
    """The session's pseudo-labels under `rule` as the app keeps them (`pseudo_labels_kept`):
    each version adds the fresh ones its cuts make and keeps the earlier ones still open whose
    class it still predicts, less (`certify_kept`, the app since stop 40) the least confident
    of those the set in use no longer clears the target with on the version's curve
    (`kept_within_target` at its `kept_q` quantile, as `pseudo_labels_kept_certified`;
    another `kept_q` is a candidate rule, not the app's; the curve's prior centred on
    `prior_mean`, the app's unless a candidate's). Replayed on the recorded
    versions (what the session would have done differently with other pseudo-labels is not),
    without the audit guard that drops them all. Per version: labels, pseudo-labels, right;
    and the first version that made any, the most at once, the precision pooled over versions
    and the worst version's (of those with at least 20)."""
    from models_ml.confidence import kept_within_target

    kept: dict[int, int] = {}
    rounds, first = [], None
    for record in records:
        row = replay_version(record, truth, target=target, rule=rule)
        still = dict(zip(record["open_ids"].tolist(), record["open_pred"].tolist(), strict=True))
        kept = {item: cls for item, cls in kept.items() if still.get(item) == cls}
        fresh = row["pseudo_label_ids"] if row is not None else {}
        if certify_kept and kept:
            conf = dict(zip(record["open_ids"].tolist(), record["open_conf"].tolist(), strict=True))
            only_kept = sorted((i for i in kept if i not in fresh), key=lambda i: -conf[i])
            curve_conf, _, curve_right = curve_evidence(record)
            keep = kept_within_target(
                curve_conf,
                curve_right,
                np.array([conf[i] for i in fresh]),
                np.array([conf[i] for i in only_kept]),
                target=target,
                q=kept_q,
                prior_mean=prior_mean,
            )
            if keep is not None:
                kept = {i: c for i, c in kept.items() if i not in set(only_kept[keep:])}
        if fresh:
            first = first or [record["labels"], row["pseudo_labels"], row["pseudo_label_precision"]]
            kept.update(fresh)
        right = sum(truth[item] == cls for item, cls in kept.items())
        rounds.append([record["labels"], len(kept), right])
    made = sum(r[1] for r in rounds)
    return {
        "first_version_labels_made_precision": first,
        "most_at_once": max((r[1] for r in rounds), default=0),
        "precision_pooled_over_versions": round(sum(r[2] for r in rounds) / made, 4)
        if made
        else None,
        "worst_version_precision": min(
            (round(r[2] / r[1], 4) for r in rounds if r[1] >= 20), default=None
        ),
        "by_version": rounds,
    }


def pseudo_labels_summed(rows: list[dict]) -> tuple[int, float]:
    """Pseudo-labels made, and how many of them right, summed over replayed versions."""
    made = [row for row in rows if row["pseudo_labels"]]
    return (
        sum(row["pseudo_labels"] for row in made),
        sum(row["pseudo_labels"] * row["pseudo_label_precision"] for row in made),
    )


def main() -> None:
    from bench.human_effort import session_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    session_arguments(parser)
    parser.add_argument("--old", type=float, default=1.5, help="audit age split (pool ratio)")
    parser.add_argument(
        "--record",
        type=Path,
        help="a pickle of the recorded session: read if it exists (no session run), else written",
    )
    parser.add_argument("--budget", type=int, help="record the first N labels only")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pseudo-label-replay-"))
    django_setup(work)
    from core.models import Project

    data = Path(args.data)
    if args.data == "fashion-mnist":
        data = fashion_mnist_tree(work / "fashion-mnist", args.pool_size * 3, args.test_size * 3)
    started = time.perf_counter()
    if args.record and args.record.exists():
        with args.record.open("rb") as stored:  # written by this bench (below): trusted
            records, truth, summary = pickle.load(stored)
    else:
        records, truth, summary = record_session(
            data,
            encoder=args.encoder,
            pool_size=args.pool_size,
            test_size=args.test_size,
            seed=args.seed,
            log=lambda message: print(message, file=sys.stderr),
            budget=args.budget,
        )
        if args.record:
            with args.record.open("wb") as stored:
                pickle.dump((records, truth, summary), stored)
    target = Project._meta.get_field("pseudo_label_precision").default
    versions = []
    for record in records:
        row = replay_version(record, truth, target=target)
        if row is not None:
            row["audit_age"] = audit_age_split(record, pooled_cut=row["pooled_cut"], old=args.old)
            row["counting_what_left"] = wrong_left_bound(
                record, pooled_cut=row["pooled_cut"], pseudo_labels=row["pseudo_labels"]
            )
            recent = replay_version(recent_audits_only(record, old=args.old), truth, target=target)
            row["recent_audits_only"] = (
                {key: recent[key] for key in RECENT_KEYS} if recent is not None else None
            )
            row.pop("pseudo_label_ids")
            versions.append(row)
    flat, calibrated = {"prior_mean": FLAT_CURVE}, {"prior_mean": CALIBRATED_MODEL}
    sessions = {
        name: kept_session(records, truth, target=target, rule=partial(rule, **cut), **kept)
        for name, rule, cut, kept in (
            ("app", app_cuts, {}, {}),
            # the rules replayed at stops 43-46, each named by its parts: the curve's prior
            # centred on a flat curve or on a calibrated model (for the cuts and the check on
            # the kept ones alike), and the classes on the pooled cut held to their own
            # partially pooled curves or not
            ("flat_prior", app_cuts, {**flat, "class_curve_sd": None}, flat),
            ("calibrated_prior", app_cuts, {**calibrated, "class_curve_sd": None}, calibrated),
            ("class_curves", app_cuts, {**flat, **STRICT_CLASS_CURVES}, flat),
            (
                "calibrated_prior_and_class_curves",
                app_cuts,
                {**calibrated, **STRICT_CLASS_CURVES},
                calibrated,
            ),
            (
                "calibrated_prior_and_loose_class_curves",
                app_cuts,
                {**calibrated, **LOOSE_CLASS_CURVES},
                calibrated,
            ),
            (
                "calibrated_prior_and_loose_class_curves_checked_at_cut",
                app_cuts,
                {**calibrated, **LOOSE_CLASS_CURVES_CHECKED_AT_CUT},
                calibrated,
            ),
            # a candidate: the kept ones judged by the curve's posterior median, not its bound
            ("kept_certified_at_the_median", app_cuts, {}, {"kept_q": 0.5}),
            ("kept_uncertified_until_stop_40", app_cuts, {}, {"certify_kept": False}),
            ("counted_until_stop_38", counted_cuts, {}, {"certify_kept": False}),
        )
    }
    used, right = pseudo_labels_summed(versions)
    recent_used, recent_right = pseudo_labels_summed(
        [v["recent_audits_only"] for v in versions if v["recent_audits_only"]]
    )
    print(
        json.dumps(
            {
                "dataset": "fashion-mnist" if args.data == "fashion-mnist" else data.stem,
                "pool_size": args.pool_size,
                "target": target,
                "versions": len(records),
                "versions_with_a_pooled_cut": len(versions),
                "fresh_pseudo_labels_summed_over_versions": used,
                "fresh_pseudo_label_precision_pooled": round(right / used, 4) if used else None,
                "replay_matches_the_app": all(v["cuts_match"] for v in versions),
                "recent_audits_only": {
                    "fresh_pseudo_labels_summed_over_versions": recent_used,
                    "fresh_pseudo_label_precision_pooled": round(recent_right / recent_used, 4)
                    if recent_used
                    else None,
                },
                "kept_pseudo_labels": sessions,
                "pooled_cut_candidates": pooled_cut_candidates(records, truth, target=target),
                "seconds_to_95pct_dataset": summary.get("seconds_to_95pct_dataset"),
                "kept_guard": {
                    "versions_that_drop_the_kept": sum(
                        r["kept_guard"]["drops_kept"] for r in records
                    ),
                    "by_version": [[r["labels"], *r["kept_guard"].values()] for r in records],
                },
                "by_version": versions,
                "settings": {
                    key: str(value) if isinstance(value, Path) else value
                    for key, value in vars(args).items()
                },
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
