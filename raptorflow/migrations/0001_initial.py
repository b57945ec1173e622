"""Adopts the audit log and rate-limit tables that accounts created (accounts 0004 let go of
them): state only, nothing is created, copied or dropped. Their content types move along,
so operators' admin permissions on the audit log carry over."""

import django.utils.timezone
from django.db import migrations, models

MOVED = ('auditlog', 'ratelimitwindow')


def move_content_types(apps, schema_editor, source='accounts', destination='raptorflow'):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    for model in MOVED:
        if not ContentType.objects.filter(app_label=destination, model=model).exists():
            ContentType.objects.filter(app_label=source, model=model).update(app_label=destination)


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, source='raptorflow', destination='accounts')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0004_move_audit_log_and_rate_limits_to_core'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AuditLog',
                    fields=[
                        ('id', models.BigAutoField(primary_key=True, serialize=False)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('action', models.CharField(db_index=True, max_length=64)),
                        ('actor_id', models.UUIDField(blank=True, null=True)),
                        ('actor_email', models.CharField(blank=True, max_length=254)),
                        ('organization_id', models.UUIDField(blank=True, db_index=True, null=True)),
                        ('target_type', models.CharField(blank=True, max_length=64)),
                        ('target_id', models.CharField(blank=True, max_length=64)),
                        ('ip_address', models.GenericIPAddressField(blank=True, null=True)),
                        ('request_id', models.CharField(blank=True, max_length=64)),
                        ('details', models.JSONField(blank=True, default=dict)),
                    ],
                    options={
                        'db_table': 'accounts_auditlog',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='RateLimitWindow',
                    fields=[
                        ('key', models.CharField(max_length=200, primary_key=True, serialize=False)),
                        ('count', models.PositiveIntegerField()),
                        ('expires_at', models.DateTimeField(db_index=True)),
                    ],
                    options={
                        'db_table': 'accounts_ratelimitwindow',
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
