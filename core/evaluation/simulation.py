"""Simulated labeling: the real loop with an oracle annotator, and its learning curve.

`manage.py simulate` and `bench/label_efficiency.py` use this. A `Simulation` creates a
throwaway project, imports the dataset's train split (class folders as ground truth, which
the queue never reads), lets the embedding job run, and embeds the test split with the same
encoder (test images are never items). Each `run` then labels like a person who always
answers right: lease the next item, look at the suggestion shown, submit the true class,
through the same services the web app calls. The jobs they queue are run right away, here,
by `_drain` (the project's own jobs only; CLIP's only when asked for). Every `batch` labels
the submit requests a training run as in the app; after it the model is evaluated on the
test split.

The model evaluated is refitted from the same labels, vectors and seed through the function
the training run uses (`project_head_fit`), so it is the one that served; runs are
deterministic for a given seed. Several runs can share one prepared pool (the benchmark
does): `run` first resets every label, lease, job and model version of the project.
"""

import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from PIL import Image
from sklearn.metrics import f1_score

from core.effort import page_actions
from core.evaluation.datasets import SimulationError, dataset_open, subsample
from core.evaluation.effort import (
    ACTION_KINDS,
    COSTS,
    actions_count,
    card_action,
    dataset_accuracy,
    pseudo_label_hits_by_class,
)
from core.evaluation.metrics import TARGETS, area_under_curve, effort_summary
from core.imaging import ImageRejected, normalise_image
from core.models import (
    AUTO_ENCODER,
    Annotation,
    ColdStart,
    Item,
    Job,
    LabelingMode,
    Lease,
    ModelVersion,
    Prediction,
    Project,
    Skip,
    Strategy,
    SuggestionRejection,
    VerificationPage,
)
from core.selectors.common import embeddings_root
from core.services.cold_start import cold_start_write
from core.services.embeddings import embed_with_oom_retry, embedded_vectors, encoder_cache
from core.services.imports import ImportSource, items_import
from core.services.jobs import JobSkipped, job_execute, job_request
from core.services.labeling import next_task
from core.services.loop import training_request
from core.services.projects import project_create
from core.services.queue import annotation_submit
from core.services.training import (
    labeled_vectors,
    project_head_fit,
    run_seed,
    training_labels,
)
from core.services.verification import page_plan, page_submit
from core.services.versions import pool_vectors
from models_ml.encoders import safe_key
from models_ml.retraining import head_for

INITS = ("random", "typiclust", "zero-shot")


@dataclass(frozen=True)
class RunConfig:
    strategy: str = Strategy.RANDOM
    budget: int = 200  # labels (card answers and accepted page tiles)
    batch: int = 20
    seed: int = 0
    init: str = "random"
    self_training: float | None = None
    # What the labeling page serves (core/services/labeling.py): cards, pages or auto.
    mode: str = LabelingMode.CARDS
    # False: the annotator is never shown a pre-selection (every card is "choose a class").
    preselect: bool = True
    # False: the dataset figures count human labels only (no pseudo-labels exported).
    pseudo_labels: bool = True
    audit_share: float = 0.0
    # Of those audits (once the model has settled), the share drawn among the most confident
    # quarter of the open images (Project.audit_top_share).
    audit_top_share: float = 0.0
    # Stop once the pool's dataset accuracy reaches this and the served model 90 % of the
    # full-label accuracy (both goals of bench/human_effort.py); None: spend the budget.
    stop_at_dataset_accuracy: float | None = None
    # False: once the served model reaches 90 % of the full-label accuracy, no more training
    # runs (the annotator keeps labeling against the version that reached it; the rounds'
    # test accuracy is still that of its head refitted on the labels so far, `served_model`,
    # and they say `model_frozen`). Only for
    # sessions whose queue and labels do not depend on the model after that (random cards,
    # no pre-selection, no pseudo-labels: bench/human_effort.py's baseline), where it gives
    # the same seconds to both goals without retraining on every batch of a large pool.
    train_after_model_goal: bool = True

    def __post_init__(self):
        if self.mode not in LabelingMode.values:
            raise SimulationError(
                f"unknown mode {self.mode!r}; known: {', '.join(LabelingMode.values)}"
            )
        if self.strategy not in Strategy.values:
            raise SimulationError(
                f"unknown strategy {self.strategy!r}; known: {', '.join(Strategy.values)}"
            )
        if self.init not in INITS:
            raise SimulationError(f"unknown init {self.init!r}; known: {', '.join(INITS)}")
        if self.budget < 1 or self.batch < 1:
            raise SimulationError("budget and batch must be at least 1")
        if self.self_training is not None and not 0.5 <= self.self_training <= 1.0:
            raise SimulationError("--self-training is a confidence threshold from 0.5 to 1.0")
        if not self.train_after_model_goal and (
            self.stop_at_dataset_accuracy is None
            or self.strategy != Strategy.RANDOM
            or self.mode != LabelingMode.CARDS
            or self.preselect
            or self.pseudo_labels
        ):
            raise SimulationError(
                "train_after_model_goal=False is for random cards with no pre-selection and no "
                "pseudo-labels, stopping at a dataset accuracy: elsewhere the model still "
                "decides what is labeled"
            )


@dataclass
class _Prepared:
    project: Project
    user: object
    truth: dict[int, int]  # item id -> class id
    class_ids: np.ndarray
    test_images: list  # normalised PIL images of the test split
    test_labels: np.ndarray  # class ids
    setup: dict = field(default_factory=dict)
    full_accuracy: dict[tuple[str, str], float] = field(default_factory=dict)
    # Test vectors by embedding key: with the `auto` encoder a run may switch encoders.
    test_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    # The embedding the pool was prepared with; every run starts from it.
    initial_embedding: dict = field(default_factory=dict)


class Simulation:
    """One prepared pool (project, imported train split, embedded test split) and its runs.

    Use as a context manager: the project, its files and the oracle user are removed on exit.
    """

    def __init__(
        self,
        data: Path,
        *,
        encoder: str = AUTO_ENCODER,
        pool_size: int | None = None,
        test_size: int | None = None,
        data_seed: int = 0,
        zero_shot: bool = False,
        log: Callable[[str], None] = lambda message: None,
    ):
        self.data_path = Path(data)
        self.encoder = encoder
        self.pool_size = pool_size
        self.test_size = test_size
        self.data_seed = data_seed
        self.zero_shot = zero_shot
        self.log = log
        self._stack = ExitStack()
        self._prepared: _Prepared | None = None

    def __enter__(self) -> "Simulation":
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            _project_files_delete(prepared.project)
            # Annotations protect their classes: they go first, then everything else cascades.
            Annotation.objects.filter(item__project=prepared.project).delete()
            Project.objects.filter(pk=prepared.project.pk).delete()
            get_user_model().objects.filter(pk=prepared.user.pk).delete()
        self._stack.close()

    def _drain(self, project: Project) -> None:
        """Run the project's queued jobs here, and those they queue, until none is left (as an
        immediate task backend would, for this project only). A job another worker holds is
        waited for. Without `zero_shot`, CLIP's jobs end skipped instead of loading CLIP."""
        runners = {} if self.zero_shot else {Job.Kind.ZERO_SHOT: _no_clip}
        active = Job.objects.filter(
            project=project, status__in=(Job.Status.QUEUED, Job.Status.RUNNING)
        )
        while (job := active.order_by("id").first()) is not None:
            if (
                job.status == Job.Status.RUNNING
                or job_execute(job_id=job.pk, runners=runners) is None
            ):
                time.sleep(0.05)  # claimed by a worker elsewhere: it finishes it

    # --- preparation -------------------------------------------------------------------------

    def _prepare(self) -> None:
        started = time.perf_counter()
        dataset = self._stack.enter_context(dataset_open(self.data_path))
        train = subsample(dataset.train, self.pool_size, self.data_seed)
        test = subsample(dataset.test, self.test_size, self.data_seed + 1)

        user = get_user_model().objects.create_user(f"simulated-oracle-{uuid.uuid4().hex[:8]}")
        project = project_create(
            name=f"simulation {self.data_path.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            created_by=user,
            class_names=dataset.classes,
            encoder_name=self.encoder,
            strategy=Strategy.RANDOM,
            lease_seconds=86_400,
        )
        self._prepared = _Prepared(project, user, {}, np.zeros(0), [], np.zeros(0))
        class_of = dict(project.classes.values_list("name", "pk"))
        self.log(f"importing {len(train)} of {len(dataset.train)} train images")
        encoder_cache.clear()
        t0 = time.perf_counter()
        report = items_import(
            project=project,
            sources=(ImportSource(name, lambda name=name: dataset.read(name)) for name, _ in train),
            labels_as="ground-truth",
        )  # requests the embedding job
        self._drain(project)
        import_embed_s = time.perf_counter() - t0
        project.refresh_from_db()
        if not project.embedding_key:
            raise SimulationError("The embedding job did not run; see the jobs of the project.")
        truth = dict(Item.objects.filter(project=project).values_list("pk", "ground_truth_id"))
        self.log(f"embedding {len(test)} test images with {project.encoder_used}")
        test_images, test_labels, test_rejected = self._test_images(dataset, test, class_of)
        embed_job = Job.objects.filter(project=project, kind=Job.Kind.EMBED).last()
        self._prepared = _Prepared(
            project=project,
            user=user,
            truth=truth,
            class_ids=np.array(sorted(class_of.values()), dtype=np.int64),
            test_images=test_images,
            test_labels=test_labels,
            initial_embedding={
                "embedding_key": project.embedding_key,
                "embedding_dim": project.embedding_dim,
                "encoder_used": project.encoder_used,
            },
            setup={
                "data": str(self.data_path),
                "classes": dataset.classes,
                "train_images_available": len(dataset.train),
                "pool_size": len(report.imported),
                "pool_duplicates": len(report.duplicates),
                "pool_rejected": report.rejected[:20],
                "test_images_available": len(dataset.test),
                "test_size": int(len(test_labels)),
                "test_rejected": test_rejected[:20],
                "subsample": "stratified by class, numpy default_rng(data_seed)",
                "data_seed": self.data_seed,
                "encoder_requested": self.encoder,
                "encoder_used": project.encoder_used,
                "embedding_key": project.embedding_key,
                "encoder_notice": project.encoder_notice,
                "embedding_dim": project.embedding_dim,
                "embed_images_per_s": (embed_job.metrics or {}).get("images_per_s")
                if embed_job
                else None,
                "import_and_embed_s": round(import_embed_s, 2),
            },
        )
        t0 = time.perf_counter()
        self._test_vectors(project)
        self._prepared.setup["test_embed_s"] = round(time.perf_counter() - t0, 2)
        self._prepared.setup["prepare_s"] = round(time.perf_counter() - started, 2)

    def _test_images(self, dataset, test, class_of):
        """Test images go through the same normalisation as imported ones."""
        images, labels, rejected = [], [], []
        for name, class_name in test:
            try:
                normalised = normalise_image(
                    dataset.read(name),
                    max_pixels=settings.ANNOTATOR_MAX_IMAGE_PIXELS,
                    thumbnail_size=settings.ANNOTATOR_THUMBNAIL_SIZE,
                )
            except ImageRejected as error:
                rejected.append({"file": name, "reason": str(error)})
                continue
            images.append(Image.open(BytesIO(normalised.content)).convert("RGB"))
            labels.append(class_of[class_name])
        return images, np.asarray(labels, dtype=np.int64), rejected

    def _test_vectors(self, project: Project) -> np.ndarray:
        """The test split under the encoder the project's embeddings are in (cached by key)."""
        prepared = self._prepared
        key = project.embedding_key
        if key not in prepared.test_vectors:
            encoder = encoder_cache.get(project.encoder_used, project=project)
            if safe_key(encoder.key) != key:
                raise SimulationError(f"encoder {project.encoder_used} no longer gives {key}")
            images = prepared.test_images
            result, _ = embed_with_oom_retry(encoder, images, list(range(len(images))), 128)
            if len(result.ids) != len(images):
                raise SimulationError(f"{len(result.failed)} test images could not be embedded")
            prepared.test_vectors[key] = result.vectors.astype(np.float32)
        return prepared.test_vectors[key]

    @property
    def setup(self) -> dict:
        return dict(self._ready().setup)

    def _ready(self) -> _Prepared:
        if self._prepared is None or not self._prepared.truth:
            raise RuntimeError("use the Simulation as a context manager")
        return self._prepared

    def full_label_accuracy(self) -> tuple[float, str]:
        """(test accuracy, head name) of the head the app would train on every pool label:
        the curve's ceiling, same encoder and recipe (the head does not depend on the
        strategy)."""
        prepared = self._ready()
        ids = np.array(sorted(prepared.truth), dtype=np.int64)
        labeled_ids, X = embedded_vectors(project=prepared.project, item_ids=ids.tolist())
        y = np.array([prepared.truth[i] for i in labeled_ids.tolist()], dtype=np.int64)
        head_name, head = head_for(labels=y, seed=0)
        project = prepared.project
        project.refresh_from_db(fields=["embedding_key", "encoder_used"])
        cache_key = (head_name, project.embedding_key)
        if cache_key not in prepared.full_accuracy:
            if "calibrate" in head.get_params():
                head.set_params(calibrate=False)  # accuracy only: calibration cannot change it
            head.fit(X, y)
            predicted = head.predict(self._test_vectors(project))
            prepared.full_accuracy[cache_key] = float((predicted == prepared.test_labels).mean())
        return prepared.full_accuracy[cache_key], head_name

    # --- one run -----------------------------------------------------------------------------

    def _reset(self, config: RunConfig) -> Project:
        prepared = self._ready()
        project = prepared.project
        Annotation.objects.filter(item__project=project).delete()
        Lease.objects.filter(item__project=project).delete()
        VerificationPage.objects.filter(project=project).delete()
        SuggestionRejection.objects.filter(item__project=project).delete()
        Skip.objects.filter(item__project=project).delete()
        Project.objects.filter(pk=project.pk).update(current_model_version=None)
        ModelVersion.objects.filter(project=project).delete()
        Job.objects.filter(project=project).delete()
        rng = np.random.default_rng(config.seed)
        items = list(Item.objects.filter(project=project).order_by("pk"))
        for item, key in zip(items, rng.random(len(items)), strict=True):
            item.random_key, item.annotation_count, item.is_done = float(key), 0, False
        Item.objects.bulk_update(items, ["random_key", "annotation_count", "is_done"], 2000)
        Project.objects.filter(pk=project.pk).update(
            strategy=config.strategy,
            retrain_every=config.batch,
            cold_start=ColdStart.TYPICLUST if config.init == "typiclust" else ColdStart.RANDOM,
            self_training_threshold=config.self_training,
            labeling_mode=config.mode,
            audit_share=config.audit_share,
            audit_top_share=config.audit_top_share,
            seed=config.seed,
            labels_submitted=0,
            labels_at_last_training_request=0,
            encoder_chosen="",
            encoder_comparison={},
            **prepared.initial_embedding,
        )
        project.refresh_from_db()
        return project

    def run(self, config: RunConfig) -> dict:
        """Label `config.budget` items with the oracle; returns settings, rounds and summary."""
        prepared = self._ready()
        started = time.perf_counter()
        project = self._reset(config)
        if config.init == "typiclust":
            cold_start_write(project=project)
        elif config.init == "zero-shot":
            job = job_request(project=project, kind=Job.Kind.ZERO_SHOT, reason="simulation")
            self._drain(project)
            job.refresh_from_db()
            if job.status != Job.Status.SUCCEEDED:
                raise SimulationError(
                    f"--init zero-shot: the CLIP job ended {job.status}: {job.message}"
                )
        classes = {c.pk: c for c in project.classes.all()}
        truth = prepared.truth
        model_target = None
        if config.stop_at_dataset_accuracy is not None:
            model_target = 0.9 * self.full_label_accuracy()[0]
        rounds: list[dict] = []
        # per card of the round: (suggestion right, source, pre-selected, audit)
        shown: list[tuple[bool, str, bool, bool]] = []
        round_started = time.perf_counter()
        labels = 0
        next_round = config.batch
        effort: Counter = Counter()  # the annotator's actions (and tile looks) so far
        counts: Counter = Counter()  # this round's
        frozen = False  # no more training runs (`train_after_model_goal`)
        while labels < config.budget:
            project.refresh_from_db(fields=["current_model_version", "labels_submitted"])
            task = next_task(project=project, user=prepared.user, mode=config.mode)
            if task is None:
                break
            if task.page is not None:
                # The oracle looks at every tile and marks exactly the wrong ones.
                page = task.page
                wrong = {i for i in page.item_ids if truth[i] != page.label_class_id}
                answer = page_submit(page=page, user=prepared.user, rejected_ids=wrong)
                counts.update(page_actions(tiles=len(page.item_ids), marked=len(wrong)))
                counts["pages"] += 1
                counts["verified"] += answer.accepted
                labels += answer.accepted
            else:
                lease, suggestion = task.card.lease, task.card.suggestion
                answer_class = classes[truth[lease.item.pk]]
                annotation_submit(
                    item=lease.item,
                    user=prepared.user,
                    label_class=answer_class,
                    shown_prediction=suggestion,
                )
                right = suggestion is not None and suggestion.predicted_class_id == answer_class.pk
                pre = config.preselect and suggestion is not None and suggestion.preselected
                shown.append(
                    (
                        right,
                        suggestion.source if suggestion is not None else "none",
                        pre,
                        lease.audit_class_id is not None,
                    )
                )
                counts[card_action(preselected=pre, preselected_right=right)] += 1
                counts["audit_top"] += lease.audit_of_top
                labels += 1
            if not frozen:
                self._drain(project)  # the training runs these labels requested, now
            if labels >= next_round:
                row = self._round(project, labels, shown, round_started, counts, effort, config)
                row["model_frozen"] = frozen
                rounds.append(row)
                frozen = frozen or (
                    not config.train_after_model_goal
                    and (row["test_accuracy"] or 0) >= model_target
                )
                shown, counts, round_started = [], Counter(), time.perf_counter()
                next_round = (labels // config.batch + 1) * config.batch
                if (
                    model_target is not None
                    and row["dataset_accuracy"] >= config.stop_at_dataset_accuracy
                    and any((r["test_accuracy"] or 0) >= model_target for r in rounds)
                ):
                    break
        if shown or counts:  # the last, partial batch: train on it as "train now" would
            if not frozen:
                training_request(project=project, reason="simulation: end of budget")
                self._drain(project)
            row = self._round(project, labels, shown, round_started, counts, effort, config)
            row["model_frozen"] = frozen
            rounds.append(row)
        comparisons = Job.objects.filter(
            project=project, kind=Job.Kind.CHOOSE_ENCODER, status=Job.Status.SUCCEEDED
        ).order_by("id")
        return {
            "settings": {**asdict(config), **self.setup},
            "rounds": rounds,
            "summary": self._summary(rounds),
            # With the `auto` encoder: every comparison made during the run (what was measured,
            # what was chosen), as the dashboard shows the latest.
            "encoder_comparisons": [job.metrics for job in comparisons],
            "seconds": round(time.perf_counter() - started, 2),
        }

    def _round(
        self,
        project: Project,
        labels: int,
        shown: list,
        started: float,
        counts: Counter,
        effort: Counter,
        config: RunConfig,
    ) -> dict:
        project.refresh_from_db()
        version = project.current_model_version
        right_pre = [right for right, _, pre, _ in shown if pre]
        effort.update(counts)
        accuracy_of_pool, coverage, by_class = self._dataset_accuracy(project, version, config)
        pseudo_right = sum(right for right, _ in by_class.values())
        pseudo_used = sum(used for _, used in by_class.values())
        row = {
            "labels": labels,
            "model_version": None,
            "head": None,
            "test_accuracy": None,
            "test_macro_f1": None,
            "estimated_accuracy": None,
            "cards": len(shown),
            "prefill_accuracy": round(float(np.mean([r for r, *_ in shown])), 4) if shown else None,
            "prefill_sources": dict(Counter(source for _, source, _, _ in shown)),
            # Cards shown with a class pre-selected (Enter accepts it), and how often that
            # class was the true one: what the annotator's single key press is worth.
            "preselected_share": round(float(np.mean([pre for _, _, pre, _ in shown])), 4)
            if shown
            else None,
            "preselected_right": round(float(np.mean(right_pre)), 4) if right_pre else None,
            "preselected_cards": len(right_pre),
            "preselected_right_cards": int(sum(right_pre)),
            # Cards whose suggestion (pre-selected or not) was the true class: the images the
            # model had right but not surely enough for a page or a pre-selection.
            "cards_suggestion_right": int(sum(right for right, *_ in shown)),
            "audit_cards": sum(audit for *_, audit in shown),
            "audit_top_cards": counts["audit_top"],  # of those, drawn among the most confident
            # Verification pages served this round, tiles accepted (labels) and marked wrong.
            "pages": counts["pages"],
            "verified": counts["verified"],
            "tiles_marked": counts["toggle"],
            "encoder": project.encoder_used,
            # Human effort (core/effort.py): this round's actions and tiles looked at, the
            # seconds the cost model gives them, and the totals so far.
            "actions": {kind: counts[kind] for kind in ACTION_KINDS},
            "tile_looks": counts["tile_look"],
            "human_seconds": COSTS.seconds(counts),
            "actions_total": actions_count(effort),
            "tile_looks_total": effort["tile_look"],
            "human_seconds_total": COSTS.seconds(effort),
            "human_seconds_total_tile_1s": COSTS.with_tile_look(1.0).seconds(effort),
            # The pool's labels as an export gives them (human, else the served version's
            # pseudo-label under its per-class thresholds): right share, coverage.
            "dataset_accuracy": accuracy_of_pool,
            "dataset_coverage": coverage,
            # Those pseudo-labels (items no person labeled): how many, and the share right.
            "pseudo_labels_used": pseudo_used,
            "pseudo_label_precision": round(pseudo_right / pseudo_used, 4) if pseudo_used else None,
            # The same class by class, {class id: [used, right]}: a pooled cut's promise holds
            # over all classes together, and can fail in one of them.
            "pseudo_labels_by_class": {
                str(cls): [used, right] for cls, (right, used) in sorted(by_class.items())
            },
            "seconds": None,
        }
        if version is not None and version.kind == ModelVersion.Kind.MODEL:
            if config.mode != LabelingMode.CARDS:
                # Why the next task is or is not a page: whether the model has settled (the
                # auto mode's rule) and the page the serving version would make now.
                plan = page_plan(project=project, user=self._ready().user)
                row.update(
                    changed_per_label=(version.metrics or {}).get("changed_per_label"),
                    page_plan_tiles=len(plan.tiles) if plan is not None else 0,
                    page_plan_seconds_per_label=round(plan.seconds_per_label, 3)
                    if plan is not None
                    else None,
                )
            job = Job.objects.filter(model_version=version).first()
            accuracy, f1, head_name = self._evaluate(project, version)
            row.update(
                model_version=version.number,
                head=head_name,
                test_accuracy=round(accuracy, 4),
                test_macro_f1=round(f1, 4),
                estimated_accuracy=version.estimated_accuracy,
                preselect_threshold=version.preselect_threshold,
                pseudo_labels=(version.recipe or {}).get("pseudo_labels"),
                pseudo_labeled=(version.metrics or {}).get("pseudo_labeled"),
                pseudo_labeled_kept=(version.metrics or {}).get("pseudo_labeled_kept"),
                training_run_seconds=(job.metrics or {}).get("seconds") if job else None,
            )
        row["seconds"] = round(time.perf_counter() - started, 3)
        return row

    def _dataset_accuracy(
        self, project: Project, version: ModelVersion | None, config: RunConfig
    ) -> tuple[float, float, dict[int, tuple[int, int]]]:
        """(accuracy, coverage) of the pool's labels and {class: (right, used)} of its
        pseudo-labels."""
        human = dict(
            Annotation.objects.filter(item__project=project, is_current=True).values_list(
                "item_id", "label_class_id"
            )
        )
        pseudo: dict[int, int] = {}
        if config.pseudo_labels and version is not None:
            pseudo = dict(
                Prediction.objects.filter(model_version=version, pseudo_labeled=True)
                .exclude(predicted_class=None)
                .values_list("item_id", "predicted_class_id")
            )
        truth = self._ready().truth
        accuracy, coverage = dataset_accuracy(truth=truth, human=human, pseudo=pseudo)
        return (
            accuracy,
            coverage,
            pseudo_label_hits_by_class(truth=truth, human=human, pseudo=pseudo),
        )

    def _evaluate(self, project: Project, version: ModelVersion) -> tuple[float, float, str]:
        """Score the model that served (see `served_model`) on the test split."""
        prepared = self._ready()
        head_name, head = served_model(project=project, version=version)
        # argmax: calibration cannot change it
        predicted = head.predict(self._test_vectors(project))
        accuracy = float((predicted == prepared.test_labels).mean())
        f1 = float(
            f1_score(
                prepared.test_labels,
                predicted,
                labels=prepared.class_ids,
                average="macro",
                zero_division=0,
            )
        )
        return accuracy, f1, head_name

    def _summary(self, rounds: list[dict]) -> dict:
        scored = [r for r in rounds if r["test_accuracy"] is not None]
        if not scored:
            return {"full_label_accuracy": None, "aulc": None}
        full, head = self.full_label_accuracy()
        chance = 1.0 / len(self._ready().class_ids)
        summary = {"full_label_accuracy": round(full, 4), "full_label_head": head}
        for target in TARGETS:
            reached = next(
                (r["labels"] for r in scored if r["test_accuracy"] >= target * full), None
            )
            summary[f"labels_to_{round(target * 100)}pct"] = reached
        summary["aulc"] = round(area_under_curve(rounds, chance), 4)
        summary["final_accuracy"] = scored[-1]["test_accuracy"]
        prefill = [r["prefill_accuracy"] for r in rounds if r["prefill_accuracy"] is not None]
        summary["mean_prefill_accuracy"] = round(float(np.mean(prefill)), 4) if prefill else None
        share = [r["preselected_share"] for r in rounds if r["preselected_share"] is not None]
        summary["mean_preselected_share"] = round(float(np.mean(share)), 4) if share else None
        right = [r["preselected_right"] for r in rounds if r["preselected_right"] is not None]
        summary["min_preselected_right"] = min(right) if right else None
        cards = sum(r["preselected_cards"] for r in rounds)
        hits = sum(r["preselected_right_cards"] for r in rounds)
        summary["preselected_cards"] = cards
        summary["preselected_precision"] = round(hits / cards, 4) if cards else None
        summary["encoder_final"] = rounds[-1]["encoder"] if rounds else None
        summary.update(effort_summary(rounds, full, len(self._ready().truth)))
        return summary


def served_model(*, project: Project, version: ModelVersion) -> tuple[str, object]:
    """The head of `version` refitted from the same labels, vectors, seed and recipe, through
    the function the training run uses: the model that served (the app keeps predictions,
    not heads). Valid while the labels are those the version was trained on."""
    item_ids, labels = training_labels(project=project)
    _, X, y = labeled_vectors(project=project, item_ids=item_ids, labels=labels)
    _, X_pool, is_done = pool_vectors(project=project)
    self_training = project.self_training_threshold is not None
    fitted = project_head_fit(
        project=project,
        X=X,
        y=y,
        X_unlabeled=X_pool[~is_done] if self_training else None,
        seed=run_seed(project=project, labels_count=version.labels_count),
        evidence=False,
    )
    return fitted.name, fitted.head


def _no_clip(job: Job) -> None:
    raise JobSkipped("this simulation runs without CLIP (zero_shot=False)")


def _project_files_delete(project: Project) -> None:
    """The simulation project's stored images and its embeddings (it is deleted after)."""
    try:
        shutil.rmtree(default_storage.path(f"projects/{project.pk}"), ignore_errors=True)
    except NotImplementedError:  # storage without local paths (S3): one file at a time
        for image, thumbnail in Item.objects.filter(project=project).values_list(
            "image", "thumbnail"
        ):
            default_storage.delete(image)
            default_storage.delete(thumbnail)
    shutil.rmtree(embeddings_root(project=project), ignore_errors=True)
