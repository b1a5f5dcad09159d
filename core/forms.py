from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from core.models import Project, Role
from core.querysets import ITEM_STATUSES
from core.services.classes import class_names_check
from core.services.exports import EXPORT_FORMATS
from core.services.projects import SETTINGS_FIELDS


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    class_names = forms.CharField(
        label="Classes",
        required=False,
        help_text="One per line or comma-separated; you can also import them from folder names.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def clean_class_names(self) -> list[str]:
        raw = self.cleaned_data.get("class_names", "").replace(",", "\n")
        try:
            return class_names_check([n for n in raw.splitlines() if n.strip()])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class ProjectSettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = SETTINGS_FIELDS
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "guideline": forms.Textarea(attrs={"rows": 6}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        used = self.instance.encoder_used if self.instance.pk else ""
        field = self.fields["encoder_name"]
        # What the setting asks for and what the embeddings really are can differ (auto, or a
        # fallback while weights are missing): say which is in use right beside it.
        field.help_text = f"In use now: {used}. {field.help_text}" if used else field.help_text


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args, roles: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if roles is not None:  # only the roles the person filling it in may give
            self.fields["role"].choices = [c for c in Role.choices if c[0] in roles]

    def clean_username(self):
        username = self.cleaned_data["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise forms.ValidationError(f"No user named {username!r}.")
        return user


class SignupForm(UserCreationForm):
    """An account made from an invitation link: its email is where password resets go."""

    email = forms.EmailField(help_text="Where a password-reset link is sent.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class InvitationForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)
    days = forms.IntegerField(min_value=1, max_value=30, initial=7, label="Valid for (days)")
    max_uses = forms.IntegerField(min_value=1, max_value=500, initial=1, label="People it admits")

    def __init__(self, *args, roles: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if roles is not None:
            self.fields["role"].choices = [c for c in Role.choices if c[0] in roles]


class LabelClassForm(forms.Form):
    name = forms.CharField(max_length=100)
    hotkey = forms.CharField(max_length=1, required=False)


def item_numbers(text: str) -> list[int]:
    """Image numbers as people type them ("12, 57 #301"), in order; ValidationError for
    anything else."""
    numbers = []
    for token in text.replace(",", " ").split():
        token = token.removeprefix("#")
        if not token.isdigit() or len(token) > 18:
            raise forms.ValidationError(f"{token!r} is not an image number (e.g. 12, 57).")
        numbers.append(int(token))
    return numbers


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*,.zip"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(d, initial) for d in data]
        return [single(data, initial)] if data else []


class ImportForm(forms.Form):
    files = MultipleFileField(help_text="Images and/or zip files (ImageFolder trees welcome).")
    labels_as = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Ignore folder names"),
            ("ground-truth", "Folder names are ground truth (evaluation only)"),
            ("annotations", "Folder names are labels (imported as my annotations)"),
        ],
    )


class ExportForm(forms.Form):
    """Export options, shared by the project page and the API."""

    format = forms.ChoiceField(
        choices=[(spec.name, spec.label) for spec in EXPORT_FORMATS.values()]
    )
    include_pseudo_labels = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        label="Add pseudo-labels at or above confidence",
        help_text="Empty: human labels only.",
    )
    audited_pseudo_labels = forms.BooleanField(
        required=False,
        label="Add the model's audited pseudo-labels",
        help_text="Unlabeled images the model in use puts above its class's threshold (set "
        "for the project's pseudo-label precision, checked by audits); the audit goes in "
        "the export's metadata.",
    )
    split = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=0.99,
        label="Validation fraction",
        help_text="Above 0 and below 1; empty: no train/val split.",
    )

    def clean(self):
        data = super().clean()
        if data.get("audited_pseudo_labels") and data.get("include_pseudo_labels") is not None:
            raise forms.ValidationError(
                "Choose one pseudo-label rule: the audited thresholds, or one confidence."
            )
        return data

    def options(self) -> dict:
        """The export options, as export_download and export_request take them."""
        data = self.cleaned_data
        return {
            "fmt": data["format"],
            "min_confidence": data["include_pseudo_labels"],
            "audited": bool(data.get("audited_pseudo_labels")),
            "val_fraction": data["split"],
        }

    def clean_split(self) -> float | None:
        value = self.cleaned_data.get("split")
        if value is not None and value <= 0:
            raise forms.ValidationError(
                "The validation fraction must be above 0 (leave it empty for no split)."
            )
        return value


class BrowseForm(forms.Form):
    """Image browser filters (GET); every field optional."""

    status = forms.ChoiceField(required=False, choices=[("all", "All"), *ITEM_STATUSES.items()])
    label_class = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    annotator = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    predicted_class = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    min_confidence = forms.FloatField(required=False, min_value=0, max_value=1)
    max_confidence = forms.FloatField(required=False, min_value=0, max_value=1)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    similar_to = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        classes = [("", "any")] + [(c.pk, c.name) for c in project.classes.all()]
        self.fields["label_class"].choices = classes
        self.fields["predicted_class"].choices = classes
        self.fields["annotator"].choices = [("", "anyone")] + [
            (m.user_id, m.user.username)
            for m in project.memberships.select_related("user").order_by("user__username")
        ]


def form_errors_text(form: forms.BaseForm) -> str:
    """A form's errors as one sentence per field, named by its label as the page shows it
    ("Validation fraction: Ensure this value is less than or equal to 0.99."), not by the
    field's Python name."""
    parts = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = field.label if field is not None and field.label else name.replace("_", " ")
        prefix = "" if name == "__all__" else f"{str(label).rstrip(':')}: "
        parts.append(prefix + " ".join(str(e) for e in errors))
    return " ".join(parts)
