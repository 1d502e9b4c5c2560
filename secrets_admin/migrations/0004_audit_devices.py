from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("secrets_admin", "0003_change_requests"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditOutbox",
            fields=[
                ("seq", models.BigIntegerField(primary_key=True, serialize=False)),
                ("created", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="AuditDeviceCursor",
            fields=[
                ("name", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("seq", models.BigIntegerField(default=0)),
                ("updated", models.DateTimeField()),
                ("error", models.TextField(blank=True)),
            ],
        ),
    ]
