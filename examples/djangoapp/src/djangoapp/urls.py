"""Routes: the same API as the sample service."""

from django.urls import path

from djangoapp.notes import views

urlpatterns = [
    path("", views.index, name="index"),
    path("health", views.health, name="health"),
    path("metrics", views.metrics_view, name="metrics"),
    path("notes", views.notes, name="notes"),
    path("notes/<int:note_id>", views.note, name="note"),
]

handler404 = "djangoapp.notes.views.not_found"
handler500 = "djangoapp.notes.views.server_error"
