from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("secrets_admin", "0005_hygiene_index")]

    operations = [
        migrations.AddField(
            model_name="secretsummary",
            name="keys",
            field=models.JSONField(default=dict),
        ),
    ]
