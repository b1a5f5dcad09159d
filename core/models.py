"""The domain: projects, their classes and images, who labels what, and model outputs.

Queue rules that must hold under concurrency live in constraints here, not only in
Python: one lease per (item, slot), one slot per (item, annotator), one current
annotation per (item, annotator). See core/services/queue.py for how they are used.
"""

import random
import re
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.job_kinds import JOB_KINDS, UNCOALESCED_JOB_KINDS
from core.querysets import ItemQuerySet, ProjectQuerySet
from models_ml.strategies import STRATEGIES


def random_seed() -> int:
    return random.randrange(2**31)


AUTO_ENCODER = "auto"
"""The encoder setting that lets measurement choose (core/services/encoder_choice.py)."""

SSL_ENCODER_PREFIX = "ssl:job-"
"""`ssl:job-<id>`: the encoder that pretraining job <id> wrote for its project. The worker
finds the file under the project's encoders folder; no server path is stored or shown."""

# An encoder setting: auto, pixels[:size], ssl:job-<id>, or a model name (timm names, with a
# pretrained tag or an `hf-hub:org/name` prefix). Never a file path: the server's files are
# not the project admin's to choose (air-gapped weights go in ANNOTATOR_WEIGHTS_DIR).
ENCODER_NAME_RE = re.compile(
    r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.\-]*(:[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)?)?$"
)


def ssl_encoder_name(job_id: int) -> str:
    return f"{SSL_ENCODER_PREFIX}{job_id}"


def ssl_encoder_job_id(name: str) -> int | None:
    """The pretraining job of an `ssl:job-<id>` encoder name, else None."""
    rest = name.removeprefix(SSL_ENCODER_PREFIX)
    return int(rest) if rest != name and rest.isascii() and rest.isdigit() else None


def encoder_name_validator(value: str) -> None:
    if not ENCODER_NAME_RE.match(value or ""):
        raise ValidationError(
            "An encoder name (auto, pixels, a model name such as "
            "tf_efficientnet_lite0.in1k, or ssl:job-<id>), not a file path."
        )


class Role(models.TextChoices):
    """A member's role in a project; what each may do is core/roles.py's table."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"
    ANNOTATOR = "annotator", "Annotator"


# Acquisition strategies: one member per entry of models_ml.strategies.STRATEGIES, where each
# is declared (Strategy.ENTROPY == "entropy", …).
Strategy = models.TextChoices(
    "Strategy",
    [(name.upper(), (name, spec.label or name)) for name, spec in STRATEGIES.items()],
)


class SuggestionSource(models.TextChoices):
    NONE = "", "None"
    MODEL = "model", "Trained model"
    ZERO_SHOT = "zero_shot", "CLIP zero-shot"


class ColdStart(models.TextChoices):
    """How the queue orders images before any model is trained."""

    RANDOM = "random", "Random order"
    TYPICLUST = "typiclust", "TypiClust: the most typical image of each cluster first"


class AnnotationSource(models.TextChoices):
    HUMAN = "human", "Labeled in the app"
    IMPORT = "import", "Imported with the images"
    REVIEW = "review", "Set in the review queue"
    VERIFIED = "verified", "Accepted on a verification page"


class ExtraAnswers(models.TextChoices):
    """With annotators_per_item = k > 1: which images get the 2nd..k-th answer."""

    DOUBTFUL = "doubtful", "Where the first answer is in doubt (see core/services/queue.py)"
    EVERYWHERE = "everywhere", "Every image gets k answers"


class LabelingMode(models.TextChoices):
    """What the labeling page serves (core/services/labeling.py decides)."""

    AUTO = "auto", "Auto: cards while the model learns, then pages where they cost fewer seconds"
    CARDS = "cards", "One image at a time"
    PAGES = "pages", "Verification pages while the model has confident ones, then cards"


class Project(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    guideline = models.TextField(
        blank=True,
        max_length=20_000,
        help_text="How to label this project (Markdown): shown beside every card, toggled "
        "with the ? key.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    strategy = models.CharField(max_length=32, choices=Strategy.choices, default=Strategy.ENTROPY)
    retrain_every = models.PositiveIntegerField(
        default=20,
        validators=[MinValueValidator(1)],
        help_text="Start a training run after this many new labels.",
    )
    encoder_name = models.CharField(
        max_length=200,
        default=AUTO_ENCODER,
        validators=[encoder_name_validator],
        help_text="'auto' (measure the available encoders on your labels and use the best), "
        "a timm name with pretrained tag, 'pixels', or ssl:job-<id> (an encoder this "
        "project pretrained).",
    )
    annotators_per_item = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    extra_answers = models.CharField(
        max_length=12,
        choices=ExtraAnswers.choices,
        default=ExtraAnswers.DOUBTFUL,
        help_text="With more than one annotator per image: ask for the extra answers only "
        "where the answers disagree, a confident model disagrees, or the annotator is "
        "unmeasured or measured below 90 % (and on 10 % of images, to keep measuring), or "
        "everywhere.",
    )
    lease_seconds = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(10), MaxValueValidator(86_400)]
    )
    self_training_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="Refit each model with its own predictions above this confidence as extra "
        "labels (self-training). Empty: off.",
    )
    cold_start = models.CharField(
        max_length=16,
        choices=ColdStart.choices,
        default=ColdStart.RANDOM,
        help_text="Order of the images before the first model: random, or TypiClust on the "
        "embeddings (one typical image per cluster, so the first labels cover the data).",
    )
    preselect_precision = models.FloatField(
        default=0.9,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="Pre-select a suggestion only where suggestions that confident were right at "
        "least this often on the labels so far (cross-validated); below it the likely classes "
        "are shown ranked and none is selected.",
    )
    labeling_mode = models.CharField(
        max_length=8,
        choices=LabelingMode.choices,
        default=LabelingMode.AUTO,
        help_text="Auto serves single cards while the model is still learning fast, then a "
        "page of images the model puts in one class (accept it with one key, click the wrong "
        "ones) when that costs fewer annotator seconds per label than single cards, "
        "alternating it with the cards the model learns most from.",
    )
    page_size = models.PositiveSmallIntegerField(
        default=36,
        validators=[MinValueValidator(8), MaxValueValidator(36)],
        help_text="Images on a verification page (8-36; each has its own key).",
    )
    pseudo_label_precision = models.FloatField(
        default=0.95,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="Pseudo-label an unlabeled image only above a confidence cut where the audits "
        "(random unlabeled images answered as cards) show pseudo-labels right at least this "
        "often: for all classes together by a calibration curve, and for each class by its own.",
    )
    audit_share = models.FloatField(
        default=0.2,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of cards that show an image drawn at random among the open ones, "
        "without a suggestion: their answers certify the pseudo-label cuts before any image is "
        "pseudo-labeled, and measure the pseudo-labels' precision after.",
    )
    audit_top_share = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of those audits (once the model has settled) drawn among the most "
        "confident quarter of the open images instead of all of them: more evidence where the "
        "pseudo-label cuts are, for the calibration curve that certifies them. Off by default: "
        "measured, half of them bought no seconds on 10,000 Fashion-MNIST images and cost 8 % "
        "on 1,000 CIFAR-10 images.",
    )
    seed = models.PositiveIntegerField(
        default=random_seed,
        help_text="Seeds the random choices of the strategies (same seed, same queue).",
    )
    current_model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The retrain trigger: new labels counted as they arrive; a training run is requested when
    # labels_submitted - labels_at_last_training_request reaches retrain_every (one conditional
    # UPDATE decides, so concurrent submits request one run, not several).
    labels_submitted = models.PositiveIntegerField(default=0)
    labels_at_last_training_request = models.PositiveIntegerField(default=0)
    # What the embedding job actually used: the configured encoder, or the pixels baseline while
    # its weights are missing (encoder_notice then says which model, where we looked, the fix).
    embedding_key = models.CharField(max_length=300, blank=True)
    embedding_dim = models.PositiveIntegerField(default=0)
    encoder_used = models.CharField(max_length=300, blank=True)
    encoder_notice = models.JSONField(default=dict, blank=True)
    # With encoder_name "auto": the encoder measurement chose (empty: none yet, start with the
    # first available in models_ml.encoders.preferred_encoders) and the latest comparison.
    encoder_chosen = models.CharField(max_length=300, blank=True)
    encoder_comparison = models.JSONField(default=dict, blank=True)
    zero_shot_notice = models.JSONField(default=dict, blank=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(annotators_per_item__gte=1, annotators_per_item__lte=10),
                name="project_annotators_per_item_range",
            ),
            models.CheckConstraint(
                condition=Q(lease_seconds__gte=10), name="project_lease_seconds_min"
            ),
            models.CheckConstraint(
                condition=Q(retrain_every__gte=1), name="project_retrain_every_min"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """`ssl:job-<id>` must name a pretraining run of this project that finished."""
        job_id = ssl_encoder_job_id(self.encoder_name or "")
        if (
            job_id is not None
            and not Job.objects.filter(
                pk=job_id, project_id=self.pk, kind=Job.Kind.PRETRAIN, status=Job.Status.SUCCEEDED
            ).exists()
        ):
            raise ValidationError(
                {"encoder_name": f"No finished pretraining job #{job_id} in this project."}
            )


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Invitation(models.Model):
    """A link that makes whoever opens it (signing up if needed) a member with `role`, until
    it expires, is used `max_uses` times or is revoked. Only the token's SHA-256 is stored:
    the link is shown once, to the member who made it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(uses__lte=models.F("max_uses")), name="invitation_uses_le_max"
            ),
        ]

    def __str__(self) -> str:
        return f"invitation to {self.project} as {self.role}"


class LabelClass(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classes")
    name = models.CharField(max_length=100)
    order = models.PositiveIntegerField(default=0)
    hotkey = models.CharField(max_length=1, blank=True)
    description = models.TextField(
        blank=True, max_length=2_000, help_text="What belongs in this class (Markdown)."
    )
    # Images of the project that show the class (chosen by an admin), beside the guideline.
    examples = models.ManyToManyField("Item", blank=True, related_name="example_of")

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="labelclass_unique_name"),
            models.UniqueConstraint(
                fields=["project", "hotkey"],
                condition=~Q(hotkey=""),
                name="labelclass_unique_hotkey",
            ),
        ]

    def __str__(self) -> str:
        return self.name


def random_queue_key() -> float:
    return random.random()


def item_image_path(item: "Item", filename: str) -> str:
    # Server-chosen names only: the uploaded name is kept in original_name, never on disk.
    return f"projects/{item.project_id}/items/{item.content_hash[:2]}/{filename}"


class Item(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    image = models.FileField(upload_to=item_image_path, max_length=300)
    thumbnail = models.FileField(upload_to=item_image_path, max_length=300)
    content_hash = models.CharField(
        max_length=64, help_text="SHA-256 of the decoded, normalised RGB pixels."
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original_name = models.CharField(max_length=500)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stored_bytes = models.PositiveBigIntegerField(
        default=0, help_text="Bytes of the stored image and thumbnail (counts to the quota)."
    )
    split = models.CharField(
        max_length=16, blank=True, help_text="train/test/val folder it was imported from."
    )
    review_state = models.CharField(
        max_length=16,
        choices=[("unreviewed", "Not reviewed"), ("accepted", "Accepted by a reviewer"),
                 ("changed", "Changed by a reviewer")],
        default="unreviewed",
        help_text="What the review queue decided (core/services/queue.py annotation_review).",
    )  # fmt: skip
    ground_truth = models.ForeignKey(
        LabelClass,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Label known at import; for evaluation only, never shown to annotators.",
    )
    # A stored random key gives a stable random queue order without ORDER BY RANDOM().
    random_key = models.FloatField(default=random_queue_key)
    annotation_count = models.PositiveIntegerField(default=0)
    is_done = models.BooleanField(
        default=False, help_text="annotation_count has reached the project's annotators_per_item."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ItemQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="item_unique_hash")
        ]
        indexes = [
            models.Index(fields=["project", "is_done", "random_key", "id"], name="item_queue_idx")
        ]

    def __str__(self) -> str:
        return f"{self.original_name} (#{self.pk})"


class ModelVersion(models.Model):
    """One set of predictions over a project's pool, made by one recipe.

    CLIP zero-shot suggestions are a version too (kind zero_shot), so every prediction
    names what made it and the queue reads one version only.
    """

    class Kind(models.TextChoices):
        MODEL = "model", "Trained model"
        ZERO_SHOT = "zero_shot", "CLIP zero-shot"
        COLD_START = "cold_start", "Cold-start order (no model yet)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MODEL)
    encoder_key = models.CharField(max_length=300, blank=True)
    recipe = models.JSONField(default=dict, blank=True)
    class_ids = models.JSONField(
        default=list, help_text="LabelClass ids in the column order of the probabilities."
    )
    labels_count = models.PositiveIntegerField(default=0)
    estimated_accuracy = models.FloatField(null=True, blank=True)
    preselect_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Suggestions at or above this confidence are pre-selected; None: never "
        "(too few labels to know, or no confidence is right often enough).",
    )
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="modelversion_unique")
        ]

    def __str__(self) -> str:
        return f"{self.project} v{self.number} ({self.kind})"


class Prediction(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="predictions"
    )
    probabilities = models.JSONField(help_text="Aligned with model_version.class_ids.")
    predicted_class = models.ForeignKey(
        LabelClass, null=True, on_delete=models.CASCADE, related_name="+"
    )
    confidence = models.FloatField()
    acquisition_score = models.FloatField(help_text="Higher = ask first.")
    source = models.CharField(
        max_length=16, choices=SuggestionSource.choices, default=SuggestionSource.MODEL
    )
    pseudo_labeled = models.BooleanField(
        default=False,
        help_text="At or above its class's pseudo-label threshold in this version (exports "
        "and the dataset figures use it for unlabeled images).",
    )
    item_open = models.BooleanField(
        default=True,
        help_text=(
            "False once the item needs no more answers, so that the queue's index skips it. "
            "May lag behind item.is_done (the queue checks that too), never run ahead of it."
        ),
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "item"], name="prediction_unique_per_version"
            )
        ]
        indexes = [
            models.Index(
                fields=["model_version", "item_open", "-acquisition_score", "item"],
                name="prediction_queue_idx",
            ),
            # Verification pages: the most confident open predictions first.
            models.Index(
                fields=["model_version", "item_open", "-confidence", "item"],
                name="prediction_confident_idx",
            ),
        ]

    # Classes an annotator said the item is not (SuggestionRejection), set by the queue when
    # it shows the suggestion: never pre-selected, never ranked.
    rejected_class_ids: frozenset[int] = frozenset()

    def __str__(self) -> str:
        return f"{self.item_id} → {self.predicted_class_id} ({self.confidence:.2f})"

    @property
    def preselected(self) -> bool:
        """Whether the labeling page selects this suggestion, so that Enter accepts it: only
        at or above its version's threshold (where held-out suggestions that confident were
        right at least the project's target share of the time)."""
        threshold = self.model_version.preselect_threshold
        return (
            self.predicted_class_id is not None
            and self.predicted_class_id not in self.rejected_class_ids
            and threshold is not None
            and self.confidence >= threshold
        )


class Lease(models.Model):
    """An item handed to one annotator until `expires_at`; kept (completed) once answered.

    With annotators_per_item = k, an item has slots 0..k-1. The unique (item, slot)
    constraint is what guarantees no two annotators ever hold the same slot, on every
    database; completed leases keep their slot so an item is never served k+1 times.
    """

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="leases")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="leases"
    )
    slot = models.PositiveSmallIntegerField(default=0)
    token = models.UUIDField(default=uuid.uuid4, editable=False)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    page = models.ForeignKey(
        "VerificationPage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leases",
        help_text="The verification page this item is a tile of; None: a single card.",
    )
    # Served as an audit card (shown without a suggestion): the class, version and confidence
    # of the model's prediction for the image. The lease is kept once answered, so the audit's
    # result is the annotator's current answer for the item (core/selectors/progress.py).
    # None: an ordinary card.
    audit_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    audit_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    audit_confidence = models.FloatField(null=True, blank=True)
    audit_of_open = models.BooleanField(
        default=False,
        help_text="An audit drawn uniformly among all the open images (the evidence the "
        "pseudo-label cuts are certified on); False for audits drawn among pseudo-labeled "
        "images only (before migration 0016), which certify nothing.",
    )
    audit_of_top = models.BooleanField(
        default=False,
        help_text="An audit drawn uniformly among the most confident quarter of the open "
        "images (Project.audit_top_share): evidence for the calibration curve only, which "
        "models the chance of being right given the confidence; not a random sample of the "
        "open images.",
    )
    audit_pseudo_label = models.BooleanField(
        default=False,
        help_text="The audited image was one of the drawing version's pseudo-labels: the "
        "audit is then one of the random sample that measures the pseudo-labels' precision "
        "(recorded when drawn: older versions' predictions are not kept).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "slot"], name="lease_unique_slot"),
            models.UniqueConstraint(fields=["item", "annotator"], name="lease_unique_annotator"),
        ]
        indexes = [
            models.Index(fields=["annotator", "completed_at", "expires_at"], name="lease_user_idx")
        ]

    def __str__(self) -> str:
        return f"lease item={self.item_id} slot={self.slot} user={self.annotator_id}"


class Skip(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="skips")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skips"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="skip_unique")]

    def __str__(self) -> str:
        return f"skip item={self.item_id} user={self.annotator_id}"


class VerificationPage(models.Model):
    """A page of images the model puts in one class, leased to one annotator as a whole.

    Each tile is a Lease (with `page` set), so the queue's constraints keep a tile off every
    other screen. Accepting stores a `verified` annotation per tile left unmarked; a marked
    tile goes back to the queue with a SuggestionRejection. `rejected_ids` keeps the last
    answer, so that reopening the page (Backspace) shows it and a changed answer is applied
    as a difference (core/services/verification.py)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pages")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pages"
    )
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    item_ids = models.JSONField(default=list, help_text="The tiles, in the order shown.")
    confidences = models.JSONField(default=list, help_text="The model's, per tile.")
    rejected_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["annotator", "project", "completed_at"], name="page_user_idx")
        ]

    def __str__(self) -> str:
        return f"page #{self.pk}: {len(self.item_ids)} × {self.label_class_id}"


class SuggestionRejection(models.Model):
    """An annotator said this item is not `label_class` (a marked tile of a page): its next
    suggestion, page and pseudo-label leave that class out."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="rejections")
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    page = models.ForeignKey(
        VerificationPage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "label_class"], name="rejection_unique")
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} is not {self.label_class_id}"


class Annotation(models.Model):
    """One answer. Changing an answer adds a row and marks the old one not current."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    label_class = models.ForeignKey(LabelClass, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(
        max_length=16, choices=AnnotationSource.choices, default=AnnotationSource.HUMAN
    )
    suggested_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suggestion_source = models.CharField(
        max_length=16, choices=SuggestionSource.choices, default=SuggestionSource.NONE, blank=True
    )
    suggestion_confidence = models.FloatField(null=True, blank=True)
    suggestion_model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suggestion_accepted = models.BooleanField(
        null=True, blank=True, help_text="The answer equals the suggestion shown; None: none shown."
    )
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    page = models.ForeignKey(
        "VerificationPage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="annotations",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    is_current = models.BooleanField(default=True)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="superseded_by"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "annotator"],
                condition=Q(is_current=True),
                name="annotation_one_current_per_annotator",
            )
        ]
        indexes = [
            models.Index(
                fields=["annotator", "is_current", "created_at"], name="annotation_user_idx"
            ),
            models.Index(fields=["item", "is_current"], name="annotation_item_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.label_class_id} by {self.annotator_id}"


class Job(models.Model):
    """One background job (embedding, zero-shot, training, SSL pretraining) and its progress.

    Per project and kind at most one job runs and at most one waits (partial unique
    constraints): a request that arrives while one waits joins it (coalescing), and the
    running job hands over to the waiting one when it ends (core/services/jobs.py).
    Imports are the exception to "one waits": each carries its own uploaded files, so they
    queue one behind the other (still one running per project).
    """

    # One member per entry of core/job_kinds.py (Job.Kind.EMBED == "embed", …).
    Kind = models.TextChoices(
        "Kind", [(kind.upper(), (kind, spec.label)) for kind, spec in JOB_KINDS.items()]
    )

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        SKIPPED = "skipped", "Nothing to do"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True, help_text="Why it was requested.")
    requests = models.PositiveIntegerField(default=1, help_text="Requests coalesced into it.")
    params = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    worker = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind"],
                condition=Q(status="queued") & ~Q(kind__in=UNCOALESCED_JOB_KINDS),
                name="job_one_queued_per_kind",
            ),
            models.UniqueConstraint(
                fields=["project", "kind"],
                condition=Q(status="running"),
                name="job_one_running_per_kind",
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="job_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return (end - self.started_at).total_seconds()
