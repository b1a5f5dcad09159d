from django import forms
from django.contrib.auth import get_user_model

from core.models import Project, Role
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

    def cleaned_class_names(self) -> list[str]:
        raw = self.cleaned_data.get("class_names", "").replace(",", "\n")
        names = [n.strip() for n in raw.splitlines() if n.strip()]
        return list(dict.fromkeys(names))


class ProjectSettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = SETTINGS_FIELDS
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)

    def clean_username(self):
        username = self.cleaned_data["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise forms.ValidationError(f"No user named {username!r}.")
        return user


class LabelClassForm(forms.Form):
    name = forms.CharField(max_length=100)
    hotkey = forms.CharField(max_length=1, required=False)


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
