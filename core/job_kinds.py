"""Job kinds: the one place a background job kind is declared.

Everything else derives from `JOB_KINDS`: `Job.Kind` (the model's choices), which kinds
coalesce (`Job`'s "one waiting per kind" constraint), which count as a user's heavy jobs
(core/services/quotas.py), the body the worker runs (imported by its dotted path when a
job of the kind runs, so the web process never imports torch), and what the loop does when
one succeeds (`then`, a function of core/services/loop.py called with the finished job).

Adding a kind: one entry here, its body, and a migration for the new choice
(tests/core/test_registries.py checks they agree).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class JobKind:
    value: str
    label: str
    runner: str  # dotted path of the job body: `body(job) -> metrics dict | None`
    coalesce: bool = True  # a request joins the waiting job of its kind
    heavy: bool = False  # counts to a user's ANNOTATOR_USER_ACTIVE_JOBS
    then: str = ""  # dotted path of `hook(job)`, run after the job succeeds


JOB_KINDS: dict[str, JobKind] = {
    kind.value: kind
    for kind in [
        JobKind(
            "embed",
            "Embed images",
            "core.services.embeddings.items_embed_run",
            then="core.services.loop.after_embedding",
        ),
        JobKind("zero_shot", "CLIP zero-shot suggestions", "core.services.zero_shot.zero_shot_run"),
        JobKind(
            "train",
            "Training run",
            "core.services.training.training_run",
            then="core.services.loop.after_training",
        ),
        JobKind(
            "pretrain",
            "In-domain SSL pretraining",
            "core.services.pretraining.pretrain_run",
            heavy=True,
            then="core.services.loop.after_pretraining",
        ),
        JobKind("export", "Export labels", "core.services.exports.export_run", heavy=True),
        JobKind(
            "choose_encoder",
            "Encoder comparison",
            "core.services.encoder_choice.encoder_choice_run",
            then="core.services.loop.after_encoder_choice",
        ),
        JobKind(
            "import",
            "Import images",
            "core.services.uploads.import_run",
            coalesce=False,
            heavy=True,
        ),
    ]
}

UNCOALESCED_JOB_KINDS = tuple(kind for kind, spec in JOB_KINDS.items() if not spec.coalesce)
HEAVY_JOB_KINDS = tuple(kind for kind, spec in JOB_KINDS.items() if spec.heavy)
