"""Each extension point is declared once and everything else agrees with its registry:
job kinds (core/job_kinds.py), query strategies (models_ml/strategies.py), export formats
(core/services/exports.py) and encoders (models_ml/encoders.py, tests/models_ml)."""

import inspect
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils.module_loading import import_string
from drf_spectacular.generators import SchemaGenerator

from core.forms import ExportForm
from core.job_kinds import HEAVY_JOB_KINDS, JOB_KINDS, UNCOALESCED_JOB_KINDS
from core.models import Job, Project, Strategy
from core.services import loop
from core.services.exports import EXPORT_FORMATS
from models_ml.strategies import STRATEGIES


@pytest.mark.django_db
def test_the_migrations_hold_every_registered_choice():
    """A new job kind or strategy needs its migration: the database's choices and the
    `one waiting job per kind` constraint follow the registries."""
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_job_kinds_are_the_registry_and_each_body_and_hook_is_real():
    assert Job.Kind.values == list(JOB_KINDS)
    assert [Job.Kind(kind).label for kind in JOB_KINDS] == [s.label for s in JOB_KINDS.values()]
    for kind, spec in JOB_KINDS.items():
        body = import_string(spec.runner)
        assert list(inspect.signature(body).parameters) == ["job"], kind
        if spec.then:
            hook = import_string(spec.then)
            assert hook.__module__ == loop.__name__, kind  # the loop's rules live in one place
            assert list(inspect.signature(hook).parameters) == ["job", "metrics"], kind
    assert UNCOALESCED_JOB_KINDS == ("import",)
    assert set(HEAVY_JOB_KINDS) == {"import", "export", "pretrain"}
    constraint = next(c for c in Job._meta.constraints if c.name == "job_one_queued_per_kind")
    assert ("kind__in", UNCOALESCED_JOB_KINDS) in constraint.condition.children[1].children


def test_strategies_are_the_registry_in_the_model_the_api_and_simulate():
    assert Strategy.values == list(STRATEGIES)
    assert Project._meta.get_field("strategy").choices == [
        (name, spec.label) for name, spec in STRATEGIES.items()
    ]
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert sorted(schema["components"]["schemas"]["StrategyEnum"]["enum"]) == sorted(STRATEGIES)
    from core.management.commands.simulate import Command

    parser = Command().create_parser("manage.py", "simulate")
    option = next(a for a in parser._actions if "--strategy" in a.option_strings)
    assert list(option.choices) == list(STRATEGIES)


def test_export_formats_are_the_registry_in_the_form_the_api_and_the_command():
    assert [value for value, _ in ExportForm().fields["format"].choices] == list(EXPORT_FORMATS)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/projects/{project_id}/export/{export_format}/"]["get"]
    (path_format,) = [p for p in operation["parameters"] if p["name"] == "export_format"]
    assert sorted(path_format["schema"]["enum"]) == sorted(EXPORT_FORMATS)
    content_types = set(operation["responses"]["200"]["content"])
    assert content_types == {s.content_type.split(";")[0] for s in EXPORT_FORMATS.values()}
    from core.management.commands.export_labels import Command

    parser = Command().create_parser("manage.py", "export_labels")
    option = next(a for a in parser._actions if "--format" in a.option_strings)
    assert list(option.choices) == list(EXPORT_FORMATS)


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", list(EXPORT_FORMATS))
def test_every_export_format_writes_a_file_with_its_extension(fmt, tmp_path):
    from core.services.exports import export_job_name, export_write
    from core.services.imports import ImportSource, items_import
    from tests.factories import project_with_members
    from tests.images import rgb_png

    project, admin, _ = project_with_members()
    source = ImportSource("cat/1.png", lambda: rgb_png(1))
    items_import(project=project, sources=[source], labels_as="annotations", annotator=admin)
    summary = export_write(project=project, fmt=fmt, path=tmp_path / f"out.{fmt}")
    assert summary.rows == 1 and (tmp_path / f"out.{fmt}").stat().st_size > 0
    job = Job(project=project, kind=Job.Kind.EXPORT, params={"format": fmt}, pk=1)
    assert export_job_name(job).endswith(f".{EXPORT_FORMATS[fmt].extension}")
