"""Release 2.0: Note.author, an expand step.

Nullable without a default, so the column is added in place (ALTER TABLE ... ADD COLUMN
on PostgreSQL and on SQLite, no table copy) and 1.0.0, which never names it, keeps
working on the new schema. Reversible: unapplying it drops the column.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]

    operations = [
        migrations.AddField(model_name="note", name="author", field=models.TextField(null=True)),
    ]
