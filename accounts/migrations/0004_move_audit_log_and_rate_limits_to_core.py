"""The audit log and the rate-limit windows move to the core app (`raptorflow`): a change of
model state only. Their tables and rows stay exactly where they are (the core models keep
the `accounts_…` table names); raptorflow 0001 adopts them."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_workspace_exclusion'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='AuditLog'),
                migrations.DeleteModel(name='RateLimitWindow'),
            ],
            database_operations=[],
        ),
    ]
