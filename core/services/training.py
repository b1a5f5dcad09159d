"""Training runs: fit the head on every label so far, rescore the pool, switch versions.

A run reads the labels and the cached embeddings once at its start (labels that arrive
later are counted by the next run), fits the head, estimates its accuracy from the labels
(cross-validation), scores the unlabeled pool with the project's strategy, writes the
predictions under a new ModelVersion and then points the project at it in one short
transaction. Until that switch the queue keeps reading the previous version, so a run
that fails anywhere before it changes nothing an annotator sees.
"""

import time
from dataclasses import dataclass, fields

import numpy as np
from django.db.models import F, Q

from core.models import (
    Annotation,
    AnnotationSource,
    Job,
    Lease,
    ModelVersion,
    Prediction,
    Project,
    SuggestionRejection,
    SuggestionSource,
    VerificationPage,
)
from core.selectors.common import annotator_accuracy, consensus_class
from core.selectors.progress import pseudo_label_audit
from core.services.embeddings import embedded_vectors
from core.services.jobs import JobSkipped, job_progress
from core.services.versions import (
    model_version_create,
    pool_vectors,
    predictions_write,
    version_switch,
)
from models_ml.confidence import (
    PreselectThreshold,
    certified_class_thresholds,
    cut_limits,
    cuts_within_share,
    kept_within_target,
    preselect_threshold,
    reliability_table,
    shown_below,
)
from models_ml.heads import OutOfFold, proba_for_classes
from models_ml.retraining import FittedHead, acquisition_scores, head_fit


def training_labels(
    *, project: Project, accuracy: dict[int, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, class ids): one label per labeled item, the consensus of its current
    annotations (`consensus_class`: each answer weighed by its annotator's measured accuracy;
    ties go to the most recent answer)."""
    answers: dict[int, list[tuple[int, int]]] = {}
    rows = (
        Annotation.objects.filter(item__project=project, is_current=True)
        .order_by("-id")
        .values_list("item_id", "annotator_id", "label_class_id")
    )
    for item_id, annotator_id, class_id in rows:
        answers.setdefault(item_id, []).append((annotator_id, class_id))
    several = any(len(given) > 1 for given in answers.values())
    if accuracy is None:
        accuracy = annotator_accuracy(project=project) if several else {}
    n_classes = project.classes.count()
    item_ids = np.fromiter(answers, dtype=np.int64, count=len(answers))
    labels = np.array(
        [
            given[0][1]
            if len(given) == 1
            else consensus_class(given, accuracy=accuracy, n_classes=n_classes)
            for given in answers.values()
        ],
        dtype=np.int64,
    )
    return item_ids, labels


def labeled_vectors(
    *, project: Project, item_ids: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, vectors, labels) of the labeled items that have a vector, in store order."""
    labeled_ids, X = embedded_vectors(project=project, item_ids=item_ids.tolist())
    label_of = dict(zip(item_ids.tolist(), labels.tolist(), strict=True))
    y = np.array([label_of[i] for i in labeled_ids.tolist()], dtype=np.int64)
    return labeled_ids, X, y


def project_head_fit(
    *,
    project: Project,
    X: np.ndarray,
    y: np.ndarray,
    X_unlabeled: np.ndarray | None,
    seed: int,
    evidence: bool = True,
) -> FittedHead:
    """The project's recipe (`models_ml.retraining.head_fit`): its strategy, and with
    self-training on, the pool items it predicts above the threshold as pseudo-labels.
    `manage.py simulate` fits through here too, so the model it evaluates on the test split
    is the one the run served; it asks for no `evidence` (calibration folds, the sampler)."""
    return head_fit(
        strategy=project.strategy,
        X=X,
        y=y,
        seed=seed,
        self_training=project.self_training_threshold,
        X_unlabeled=X_unlabeled,
        evidence=evidence,
    )


def run_seed(*, project: Project, labels_count: int) -> int:
    """The seed of a run: the project's seed moved on by the labels so far, so the same
    project seed and the same answers give the same queue."""
    return (project.seed + labels_count) % 2**31


@dataclass(frozen=True)
class _Suggestions:
    """Which source fills the prefill: the model, or zero-shot while it is more accurate;
    with zero-shot's confidence and hit/miss on the labeled items (for its threshold)."""

    source: str
    zero_shot_version: ModelVersion | None
    zero_shot_accuracy: float | None
    zero_shot_confidence: np.ndarray | None = None
    zero_shot_correct: np.ndarray | None = None


def _suggestion_source(
    *, project: Project, labeled_ids: np.ndarray, labels: np.ndarray, model_accuracy
) -> _Suggestions:
    zero_shot = (
        ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.ZERO_SHOT)
        .order_by("-number")
        .first()
    )
    if zero_shot is None:
        return _Suggestions(SuggestionSource.MODEL, None, None)
    truth = dict(zip(labeled_ids.tolist(), labels.tolist(), strict=True))
    predicted = list(
        Prediction.objects.filter(model_version=zero_shot, item_id__in=list(truth)).values_list(
            "item_id", "predicted_class_id", "confidence"
        )
    )
    hits = np.array([truth[item_id] == class_id for item_id, class_id, _ in predicted], bool)
    accuracy = float(np.mean(hits)) if len(hits) else None
    use_zero_shot = accuracy is not None and (model_accuracy is None or accuracy > model_accuracy)
    return _Suggestions(
        SuggestionSource.ZERO_SHOT if use_zero_shot else SuggestionSource.MODEL,
        zero_shot,
        accuracy,
        np.array([confidence for *_, confidence in predicted], dtype=float),
        hits,
    )


def suggestion_threshold(
    *, project: Project, suggestions: _Suggestions, evidence: "HeldOut"
) -> PreselectThreshold:
    """The confidence above which this version's suggestions are pre-selected, measured on
    held-out answers of the source that makes them: the head's held-out evidence (its
    out-of-fold predictions on the labels other than verified ones, and the page tiles
    served: `held_out_evidence`), or zero-shot's predictions on the labeled items (it never
    saw them). With verified labels counted as out-of-fold evidence, pre-selected cards were
    right 37 % of the time on Fashion-MNIST against the 90 % promised."""
    if suggestions.source == SuggestionSource.ZERO_SHOT:
        confidence, correct = suggestions.zero_shot_confidence, suggestions.zero_shot_correct
    else:
        confidence, correct = evidence.confidence, evidence.correct
    return preselect_threshold(
        np.asarray(confidence, dtype=float),
        np.asarray(correct, dtype=bool),
        target=project.preselect_precision,
    )


@dataclass(frozen=True)
class HeldOut:
    """Predictions checked against answers the predicting model did not see: each row's
    confidence, predicted class, whether it was right, whether it is a page's tile, whether
    it is the label of an audit of the open images (drawn among all of them), whether it is
    that of an audit drawn among the most confident open images, and its item."""

    confidence: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray
    from_page: np.ndarray
    from_audit: np.ndarray
    item_ids: np.ndarray
    from_top_audit: np.ndarray | None = None  # None: no row is

    def __post_init__(self):
        if self.from_top_audit is None:
            object.__setattr__(self, "from_top_audit", np.zeros(len(self.confidence), bool))

    def rows(self, keep: np.ndarray) -> "HeldOut":
        return HeldOut(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def audits_only(self) -> "HeldOut":
        """The rows of the audits of the open images: a random sample of the images the
        pseudo-labels are made of, what their cuts are certified on
        (`pseudo_label_thresholds`)."""
        return self.rows(self.from_audit)

    def curve_audits(self) -> "HeldOut":
        """The rows the calibration curve is fitted to: the audits of the open images and
        those drawn among the most confident of them (`Lease.audit_of_top`). The curve is the
        chance of being right given the confidence, which a sample drawn by confidence does
        not bias; a share of the open images is counted on `audits_only`."""
        return self.rows(self.from_audit | self.from_top_audit)


def held_out_evidence(
    *, project: Project, oof: OutOfFold, labeled_ids: np.ndarray, y: np.ndarray
) -> HeldOut:
    """What the pre-selection threshold, the pseudo-label thresholds and the pages'
    reliability table are measured on.

    - The out-of-fold predictions on the labels, except verified ones: a page's accepted tiles
      are the model's confident *right* predictions, and counted as labels they would tell it
      that its confident predictions are always right, while the pool's confident ones left
      over include the wrong ones (selection bias; it made pages 40 % wrong on CIFAR-10).
    - Every answered verification page's tiles instead, with the confidence they were served at
      and whether the annotator accepted them: the confident predictions as pages draw them,
      wrong ones included (`from_page`).
    - Which label rows are answered audits of the open images (`from_audit`): the only rows
      that are a random sample of the images pseudo-labels are made of.
    """
    proba = oof.proba[oof.covered]
    classes = np.unique(y)
    verified = set(
        Annotation.objects.filter(
            item__project=project, is_current=True, source=AnnotationSource.VERIFIED
        ).values_list("item_id", flat=True)
    )
    audits = Lease.objects.filter(
        Q(audit_of_open=True) | Q(audit_of_top=True),
        item__project=project,
        completed_at__isnull=False,
    ).values_list("item_id", "audit_of_top")
    audited, audited_top = set(), set()
    for item_id, of_top in audits:
        (audited_top if of_top else audited).add(item_id)
    covered_ids = labeled_ids[oof.covered]
    keep = ~np.isin(covered_ids, list(verified)) if len(proba) else np.zeros(0, bool)
    predicted = classes[proba.argmax(axis=1)] if len(proba) else np.zeros(0, np.int64)
    confidence = [proba.max(axis=1)[keep]] if len(proba) else []
    chosen = [predicted[keep]] if len(proba) else []
    correct = [(predicted == y[oof.covered])[keep]] if len(proba) else []
    from_page = [np.zeros(int(keep.sum()), bool)] if len(proba) else []
    from_audit = [np.isin(covered_ids[keep], list(audited))] if len(proba) else []
    from_top = [np.isin(covered_ids[keep], list(audited_top))] if len(proba) else []
    rows = [covered_ids[keep]] if len(proba) else []
    for class_id, item_ids, confidences, rejected in VerificationPage.objects.filter(
        project=project, completed_at__isnull=False
    ).values_list("label_class_id", "item_ids", "confidences", "rejected_ids"):
        n = min(len(item_ids), len(confidences))
        confidence.append(np.asarray(confidences[:n], dtype=float))
        chosen.append(np.full(n, class_id, dtype=np.int64))
        correct.append(~np.isin(item_ids[:n], rejected))
        from_page.append(np.ones(n, bool))
        from_audit.append(np.zeros(n, bool))
        from_top.append(np.zeros(n, bool))
        rows.append(np.asarray(item_ids[:n], dtype=np.int64))
    if not confidence:
        nothing, none = np.zeros(0, bool), np.zeros(0, np.int64)
        return HeldOut(np.zeros(0), none, nothing, nothing, nothing, none)
    return HeldOut(
        np.concatenate(confidence),
        np.concatenate(chosen),
        np.concatenate(correct),
        np.concatenate(from_page),
        np.concatenate(from_audit),
        np.concatenate(rows),
        np.concatenate(from_top),
    )


def pseudo_label_thresholds(
    *,
    project: Project,
    evidence: HeldOut,
    open_probs: np.ndarray,
    open_confidence: np.ndarray,
    class_ids: np.ndarray,
) -> dict[int, PreselectThreshold]:
    """Per class, the confidence at or above which the head's predictions are pseudo-labels:
    certified to be right at least `project.pseudo_label_precision` of the time on the
    out-of-fold predictions of the audits of the open images (`HeldOut.audits_only`;
    `certified_class_thresholds`: one cut for all classes, where the audits' calibration
    curve, read at the confidences the open images are pseudo-labeled at (`open_confidence`),
    puts their precision above the target; a class whose own audits fall short held to its
    own).

    Only the audits, because only they are a random sample of the images a cut
    pseudo-labels. Page tiles are the images pages chose: on 5,000 CIFAR-10 images, tiles above
    a class's cut were right 99-100 % of the time and the open images pseudo-labeled above it
    83-94 % (stop 30). The labels the strategy asked for are the images the model is least
    sure of: cuts set on them certified nothing on 5,000 CIFAR-10 or Fashion-MNIST images
    (stop 31; docs/benchmarks/human-effort.md).

    The cuts are then kept from taking a larger share of the open images (by the served
    model's predictions, `open_probs`, columns `class_ids`) than of the audits
    (`cuts_within_share`): the served model is more confident than the out-of-fold models
    the audits judged.

    Read at the open images, because an audit is a random sample of the open images *when
    it was drawn*: pages then take the confident right ones, and the images left above a cut
    crowd towards it. Counting the audits above the cut instead (until stop 38) certified a
    cut on 63 of 63 audits (drawn while 881-981 of 1,000 Fashion-MNIST images were open) that
    made pseudo-labels 93.3 % right among the 579 left (stop 34 in
    docs/benchmarks/human-effort.md)."""
    audits, curve = evidence.audits_only(), evidence.curve_audits()
    if not len(audits.confidence):
        return {}
    open_classes = (
        class_ids[open_probs.argmax(axis=1)] if len(open_probs) else np.zeros(0, np.int64)
    )
    cuts = certified_class_thresholds(
        audits.confidence,
        audits.predicted,
        audits.correct,
        target=project.pseudo_label_precision,
        open_confidence=open_confidence,
        curve_evidence=(curve.confidence, curve.predicted, curve.correct),
        open_predicted=open_classes,
    )
    return cuts_within_share(
        cuts,
        audits.confidence,
        audits.predicted,
        open_probs.max(axis=1) if len(open_probs) else np.zeros(0),
        open_classes,
    )


def pseudo_labels_kept(*, project: Project) -> dict[int, int]:
    """The serving version's pseudo-labels on images still open ({item id: class}): the next
    version keeps each one whose class it still predicts, whether or not the image clears
    that version's cut (`_version_write`).

    Once made, a certified pseudo-label stays until the model changes its mind or the audits
    say the pseudo-labels are worse than promised. Re-certifying every image at every version
    dropped them: on 5,000 CIFAR-10 images, pseudo-labels peaked at 1,123 (95 % right) and
    were gone by 4,100 labels, because the later audits are drawn from the open images the
    pages left, the hard ones, and pull every cut up (stop 32, docs/benchmarks/human-effort.md).
    What watches the kept ones is the audit that lands on them: the audits of the open images
    are drawn uniformly, so those that land on pseudo-labeled images are a random sample of
    the pseudo-labels (`pseudo_label_audit`, all of them since the first). None are kept
    while that sample shows their precision below the project's target (`shown_below`: the
    exact one-sided binomial test at 5 %); the freshly certified ones still come. (Until stop
    36 the sample was the last two versions' audits, 1-8, judged by the Wilson bound: one
    wrong answer in four dropped them all, and on 5,000 Fashion-MNIST images 660 pseudo-labels
    95.9 % right went at once.)

    Known weakness: that guard catches gross misses only, and every version tests the cuts
    again, so a cut that clears by luck once is now kept (on 5,000 Fashion-MNIST images, 884
    pseudo-labels 92.9 % right for ~2,000 labels; stop 33 in docs/benchmarks/human-effort.md).
    Under the calibrated cuts too: on 10,000 CIFAR-10 images each version's fresh
    pseudo-labels were 95.5-100 % right, the kept ones its cuts no longer certify pulled the
    set in use to about 94 % for 1,500 labels (stop 39). Since stop 40 the training run
    certifies the whole set in use on the version's calibration curve and drops the least
    confident kept ones until it clears (`pseudo_labels_kept_certified`)."""
    serving = project.current_model_version
    if serving is None or serving.kind != ModelVersion.Kind.MODEL:
        return {}
    audit = pseudo_label_audit(project=project)
    if shown_below(audit["right"], audit["audited"], project.pseudo_label_precision):
        return {}
    return dict(
        Prediction.objects.filter(
            model_version=serving,
            pseudo_labeled=True,
            item_open=True,
        ).values_list("item_id", "predicted_class_id")
    )


def fresh_pseudo_labels(
    *,
    pseudo: dict[int, PreselectThreshold],
    predicted: np.ndarray,
    confidence: np.ndarray,
    is_done: np.ndarray,
) -> np.ndarray:
    """Per pool row, whether this version's cuts (`pseudo`) make it a pseudo-label: an open
    image whose predicted class has a cut its pseudo-label confidence clears."""
    return ~is_done & (confidence >= cut_limits(pseudo, predicted))


def pseudo_labels_kept_certified(
    *,
    project: Project,
    kept: dict[int, int],
    audits: HeldOut,
    pseudo: dict[int, PreselectThreshold],
    pool_ids: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    is_done: np.ndarray,
) -> dict[int, int]:
    """`kept` (`pseudo_labels_kept`) less the least confident of those this version's cuts
    (`pseudo`) do not make fresh, until the whole set in use clears the project's target on
    this version's calibration curve of the audits (`kept_within_target`; `predicted` and
    `confidence` are this version's class and pseudo-label confidence per pool row). A kept
    one the model no longer predicts, or whose image is done, is not in the set (the version
    drops it anyway). Unchanged where there are too few audits for a curve."""
    if not kept:
        return kept
    row = {int(item): r for r, item in enumerate(pool_ids.tolist())}
    fresh = fresh_pseudo_labels(
        pseudo=pseudo, predicted=predicted, confidence=confidence, is_done=is_done
    )
    rows = np.array(
        [
            row[item]
            for item, cls in kept.items()
            if item in row
            and not is_done[row[item]]
            and not fresh[row[item]]
            and predicted[row[item]] == cls
        ],
        dtype=np.int64,
    )
    keep = kept_within_target(
        audits.confidence,
        audits.correct,
        confidence[fresh],
        confidence[rows],
        target=project.pseudo_label_precision,
    )
    if keep is None or keep == len(rows):
        return kept
    order = rows[np.argsort(-confidence[rows], kind="stable")]
    dropped = set(pool_ids[order[keep:]].tolist())
    return {item: cls for item, cls in kept.items() if item not in dropped}


def rejected_classes_drop(
    *, project: Project, pool_ids: np.ndarray, probs: np.ndarray, class_ids: np.ndarray
) -> dict[int, float]:
    """Zero the probability of every class an annotator rejected for an item (a marked tile
    of a verification page), in place, and renormalise the row (the strategies need
    distributions): the item's suggestion, page and pseudo-label are then its best class that
    was not rejected. Returns {row: the share of probability left}: the confidence written
    for such a row is the probability the model gave that class, not the renormalised one. A
    model that was confidently wrong about the first class is no judge of the runner-up
    (with the renormalised confidence, 0.6/0.4 became a pre-selected 1.0, and pre-selected
    cards were right 37 % of the time on Fashion-MNIST)."""
    column = {int(c): j for j, c in enumerate(class_ids.tolist())}
    row = {int(i): r for r, i in enumerate(pool_ids.tolist())}
    changed = set()
    for item_id, class_id in SuggestionRejection.objects.filter(item__project=project).values_list(
        "item_id", "label_class_id"
    ):
        if item_id in row and class_id in column:
            probs[row[item_id], column[class_id]] = 0.0
            changed.add(row[item_id])
    left = {}
    for r in changed:
        total = float(probs[r].sum())
        probs[r] = probs[r] / total if total > 0 else 1.0 / probs.shape[1]
        left[r] = total
    return left


def pseudo_label_confidence(probs: np.ndarray, probability_left: dict[int, float]) -> np.ndarray:
    """Per pool row, the confidence its pseudo-label is judged at: the best class's
    probability, times the share left where a rejected class was dropped
    (`rejected_classes_drop`)."""
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    for row, left in probability_left.items():
        confidence[row] *= left
    return confidence


# Past this many open items the comparison reads a fixed 1-in-k sample of them (by item id).
CHANGE_SAMPLE_ITEMS = 20_000


def predictions_changed(
    *, project: Project, item_ids: np.ndarray, predicted: np.ndarray, labels_count: int
) -> float | None:
    """How fast the model still moves: the share of the pool's items (labeled or not; a
    fixed sample of at most CHANGE_SAMPLE_ITEMS on a large pool) whose predicted class
    differs from the serving trained version's, per label added since that version. None
    when there is no trained version to compare with. Successive models that agree on the
    pool are the stopping signal of Bloodgood & Vijay-Shanker ("A method for stopping active
    learning based on stabilizing predictions", CoNLL 2009); the labeling policy serves
    verification pages only once it is low (core/services/labeling.py).

    The items compared are the whole pool, as in Bloodgood's fixed stop set, not the open
    items only: those shrink to the images the model is least sure of, whose predictions
    flip most, so a rate over them can rise again late in a session and hold pages back.
    On 5,000 Fashion-MNIST images the whole-pool rate took the seconds to a 95 % right pool
    from x0.454 to x0.440 of one-by-one labeling (docs/benchmarks/human-effort.md, stop 31)."""
    serving = project.current_model_version
    if serving is None or serving.kind != ModelVersion.Kind.MODEL:
        return None
    added = labels_count - serving.labels_count
    step = max(1, len(item_ids) // CHANGE_SAMPLE_ITEMS)
    rows = (
        Prediction.objects.annotate(bucket=F("item_id") % step)
        .filter(model_version=serving, source=SuggestionSource.MODEL, bucket=0)
        .values_list("item_id", "predicted_class_id")
    )
    before = dict(rows)
    now = dict(zip(item_ids.tolist(), predicted.tolist(), strict=True))
    compared = [item for item in before if item in now]
    if not compared or added <= 0:
        return None
    changed = sum(before[item] != now[item] for item in compared) / len(compared)
    return round(changed / added, 6)


def training_run(job: Job) -> dict:
    """Job body of a training run; returns its metrics (seconds per step, accuracy, sizes)."""
    project = Project.objects.get(pk=job.project_id)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 4)
        clock = now

    class_ids = np.array(list(project.classes.values_list("pk", flat=True)), dtype=np.int64)
    # Each annotator's measured accuracy (answers overlapping a colleague's): it weighs their
    # answers here and decides where the queue asks for a second opinion.
    people = annotator_accuracy(project=project) if project.annotators_per_item > 1 else {}
    item_ids, labels = training_labels(project=project, accuracy=people)
    labels_count = len(item_ids)
    if len(np.unique(labels)) < 2:
        raise JobSkipped(
            f"Training needs labels of at least two classes; there are {labels_count} labels "
            f"of {len(np.unique(labels))} class(es)."
        )
    labeled_ids, X_labeled, y = labeled_vectors(project=project, item_ids=item_ids, labels=labels)
    if len(np.unique(y)) < 2:
        raise JobSkipped("The labeled images are not embedded yet; the embedding job runs first.")
    lap("load_labels")
    job_progress(job=job, fraction=0.1, message=f"Fitting on {len(y)} labels")

    seed = run_seed(project=project, labels_count=labels_count)
    pool_ids, X_pool, is_done = pool_vectors(project=project)
    open_rows = np.flatnonzero(~is_done)
    self_training = project.self_training_threshold is not None
    # The head, its calibration folds (the out-of-fold predictions: the accuracy estimate,
    # the pre-selection threshold) and BALD's sampler, in one step.
    fitted = project_head_fit(
        project=project,
        X=X_labeled,
        y=y,
        X_unlabeled=X_pool[open_rows] if self_training else None,
        seed=seed,
    )
    assert fitted.out_of_fold is not None
    oof, estimate = fitted.out_of_fold, fitted.out_of_fold.estimate
    lap("fit")
    job_progress(job=job, fraction=0.4, message="Scoring the pool")

    probs = proba_for_classes(fitted.head, X_pool, class_ids) if len(pool_ids) else np.zeros((0, 0))
    rejected = rejected_classes_drop(
        project=project, pool_ids=pool_ids, probs=probs, class_ids=class_ids
    )
    predicted = class_ids[probs.argmax(axis=1)] if len(pool_ids) else pool_ids
    changed_per_label = predictions_changed(
        project=project, item_ids=pool_ids, predicted=predicted, labels_count=labels_count
    )
    lap("predict")
    scores = np.zeros(len(pool_ids))
    if len(open_rows):
        scores[open_rows] = acquisition_scores(
            strategy=project.strategy,
            k=min(project.retrain_every, len(open_rows)),
            fitted=fitted,
            probs=probs[open_rows],
            vectors=X_pool.take(open_rows),
            labeled=X_labeled,
            seed=seed,
        )
    lap("score")
    job_progress(job=job, fraction=0.6, message="Writing predictions")

    suggestions = _suggestion_source(
        project=project, labeled_ids=labeled_ids, labels=y, model_accuracy=estimate.accuracy
    )
    evidence = held_out_evidence(project=project, oof=oof, labeled_ids=labeled_ids, y=y)
    preselect = suggestion_threshold(project=project, suggestions=suggestions, evidence=evidence)
    pseudo_confidence = pseudo_label_confidence(probs, rejected)
    pseudo = pseudo_label_thresholds(
        project=project,
        evidence=evidence,
        open_probs=probs[open_rows] if len(open_rows) else np.zeros((0, len(class_ids))),
        open_confidence=pseudo_confidence[open_rows],
        class_ids=class_ids,
    )
    serving_kept = pseudo_labels_kept(project=project)
    kept = pseudo_labels_kept_certified(
        project=project,
        kept=serving_kept,
        audits=evidence.curve_audits(),
        pseudo=pseudo,
        pool_ids=pool_ids,
        predicted=predicted,
        confidence=pseudo_confidence,
        is_done=is_done,
    )
    reliability = reliability_table(evidence.confidence, evidence.correct)
    version = _version_write(
        project=project,
        job=job,
        class_ids=class_ids,
        pool_ids=pool_ids,
        probs=probs,
        scores=scores,
        suggestions=suggestions,
        recipe={
            "head": fitted.name,
            "strategy": project.strategy,
            "encoder": project.encoder_name,
            "batch": project.retrain_every,
            "seed": seed,
            "pseudo_labels": fitted.pseudo_labeled,
            # BALD's scores come from an MC-dropout network; suggestions from the head.
            "sampler": "mlp (MC dropout)" if fitted.sampler is not None else None,
        },
        labels_count=labels_count,
        accuracy=estimate,
        preselect=preselect,
        pseudo=pseudo,
        kept=kept,
        is_done=is_done,
        reliability=reliability,
        annotators=people,
        probability_left=rejected,
        changed_per_label=changed_per_label,
    )
    lap("write_predictions")
    version_switch(project=project, version=version)
    lap("switch")
    job.model_version = version
    job.message = f"Model v{version.number} on {labels_count} labels, " + (
        f"estimated accuracy {estimate.accuracy:.0%}"
        if estimate.accuracy is not None
        else "too few labels to estimate its accuracy"
    )
    return {
        "labels": labels_count,
        "head": fitted.name,
        "pool": int(len(pool_ids)),
        "pseudo_labels": fitted.pseudo_labeled,
        "estimated_accuracy": estimate.accuracy,
        "zero_shot_accuracy": suggestions.zero_shot_accuracy,
        "suggestion_source": suggestions.source,
        "preselect": preselect.as_dict(),
        "pseudo_labeled": version.metrics["pseudo_labeled"],
        "changed_per_label": changed_per_label,
        "rejected_classes_items": len(rejected),
        # the serving version's pseudo-labels the set in use could no longer carry
        "pseudo_labels_kept_dropped": len(serving_kept) - len(kept),
        "seconds": seconds,
    }


def _version_write(
    *,
    project: Project,
    job: Job,
    class_ids: np.ndarray,
    pool_ids: np.ndarray,
    probs: np.ndarray,
    scores: np.ndarray,
    suggestions: _Suggestions,
    recipe: dict,
    labels_count: int,
    accuracy,
    preselect: PreselectThreshold,
    pseudo: dict[int, PreselectThreshold],
    is_done: np.ndarray,
    kept: dict[int, int] | None = None,
    reliability: dict | None = None,
    annotators: dict[int, float] | None = None,
    probability_left: dict[int, float] | None = None,
    changed_per_label: float | None = None,
) -> ModelVersion:
    """A new ModelVersion with one prediction per pool item (not yet current). An unlabeled
    item is pseudo-labeled where the model's own prediction clears its class's threshold, or
    where it is one of the serving version's pseudo-labels (`kept`, `pseudo_labels_kept`,
    `pseudo_labels_kept_certified`) and the model still predicts that class."""
    zero_shot: dict[int, tuple[int, float]] = {}
    if suggestions.source == SuggestionSource.ZERO_SHOT:
        zero_shot = {
            item: (cls, conf)
            for item, cls, conf in Prediction.objects.filter(
                model_version=suggestions.zero_shot_version
            ).values_list("item_id", "predicted_class_id", "confidence")
        }
    version = model_version_create(
        project=project,
        kind=ModelVersion.Kind.MODEL,
        encoder_key=project.embedding_key,
        recipe={**recipe, "suggestions": suggestions.source, "job": job.pk},
        class_ids=class_ids.tolist(),
        labels_count=labels_count,
        estimated_accuracy=accuracy.accuracy,
        preselect_threshold=preselect.threshold,
        metrics={
            "accuracy_std": accuracy.std,
            "folds": accuracy.folds,
            "zero_shot_accuracy": suggestions.zero_shot_accuracy,
            "preselect": preselect.as_dict(),
            "pseudo_label_thresholds": {
                str(cls): cut.as_dict() for cls, cut in sorted(pseudo.items())
            },
            # Held-out precision by confidence: what a verification page expects of its tiles.
            "reliability": reliability,
            # Share of the pool whose predicted class changed since the serving
            # version, per label added (None: nothing to compare with): see
            # predictions_changed and the labeling policy.
            "changed_per_label": changed_per_label,
            # Measured accuracy per annotator id (Dawid-Skene on overlapping answers).
            "annotator_accuracy": {str(a): acc for a, acc in (annotators or {}).items()},
        },
    )
    best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    classes = class_ids[best] if len(probs) else np.zeros(0, dtype=np.int64)
    pseudo_confidence = pseudo_label_confidence(probs, probability_left or {})
    # The model's own prediction, even where zero-shot fills the suggestion: pseudo-labels
    # are the calibrated head's, under the thresholds measured on its held-out answers.
    fresh_rows = fresh_pseudo_labels(
        pseudo=pseudo, predicted=classes, confidence=pseudo_confidence, is_done=is_done
    ).tolist()
    predicted, confidence = classes.tolist(), pseudo_confidence.tolist()
    rounded = np.round(probs, 4).tolist()
    rows = []
    pseudo_count = kept_count = 0
    kept = kept or {}
    for i, item_id in enumerate(pool_ids.tolist()):
        cls, conf, source = predicted[i], confidence[i], SuggestionSource.MODEL
        fresh = fresh_rows[i]
        still = kept.get(item_id) == cls
        is_pseudo = bool(not is_done[i] and (fresh or still))
        if item_id in zero_shot:
            (cls, conf), source = zero_shot[item_id], SuggestionSource.ZERO_SHOT
            is_pseudo = is_pseudo and cls == predicted[i]
        pseudo_count += is_pseudo
        kept_count += bool(is_pseudo and not fresh)
        rows.append((item_id, rounded[i], cls, conf, float(scores[i]), source, is_pseudo))
    predictions_write(version, rows)
    version.metrics["pseudo_labeled"] = pseudo_count
    # Of them, kept from the version before without clearing this version's cut.
    version.metrics["pseudo_labeled_kept"] = kept_count
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    return version
