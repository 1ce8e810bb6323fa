"""The Note model; which fields it has depends on the installed release (releases.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from djangoapp.releases import features_from_version

FEATURES = features_from_version(settings.BLUEGREEN_VERSION)


class Note(models.Model):
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    colour = models.TextField(null=True)
    version = models.TextField(null=True)
    if FEATURES.author:
        # Migration 0002 (release 2.0): nullable, so 1.x keeps working on the new schema.
        author = models.TextField(null=True)

    class Meta:
        db_table = "notes"

    def as_dict(self) -> dict:
        note = {
            "id": self.pk,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
            "colour": self.colour,
            "version": self.version,
        }
        if FEATURES.author:
            note["author"] = self.author
        return note
