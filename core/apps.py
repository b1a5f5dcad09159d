from django.apps import AppConfig


class CoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "core"
    verbose_name = "Annotation"

    def ready(self) -> None:
        from django.urls import register_converter

        from core.converters import IdConverter

        # `<id:…>` in every URL of ours (pages, API, websockets): see core/converters.py.
        register_converter(IdConverter, "id")
