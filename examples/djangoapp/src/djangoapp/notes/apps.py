from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "djangoapp.notes"
    label = "notes"
    default_auto_field = "django.db.models.BigAutoField"
