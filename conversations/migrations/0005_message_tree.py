"""Messages form a tree (parent, the conversation's active leaf, the active-branch flag).

Existing conversations become one branch: each message's parent is the one before it (by
sequence), the last one is the active leaf, and every message is on the active branch (the
column's default)."""

import django.db.models.deletion
from django.db import migrations, models

# Last, after the columns and indexes exist: ALTER TABLE cannot follow the deferred foreign
# key checks these updates leave pending in the migration's transaction.
ONE_BRANCH_PER_CONVERSATION = """
UPDATE conversations_message m SET parent_id = chain.previous_id
FROM (
    SELECT id, LAG(id) OVER (PARTITION BY conversation_id ORDER BY sequence) AS previous_id
    FROM conversations_message
) chain
WHERE m.id = chain.id AND chain.previous_id IS NOT NULL;

UPDATE conversations_conversation c SET active_leaf_id = last.id
FROM (
    SELECT DISTINCT ON (conversation_id) conversation_id, id
    FROM conversations_message ORDER BY conversation_id, sequence DESC
) last
WHERE c.id = last.conversation_id;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0004_db_defaults_for_bulk_loads'),
    ]

    operations = [
        migrations.AddField(
            model_name='conversation',
            name='active_leaf',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='conversations.message'),
        ),
        migrations.AddField(
            model_name='message',
            name='on_active_branch',
            field=models.BooleanField(db_default=True, default=True),
        ),
        migrations.AddField(
            model_name='message',
            name='parent',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='children', to='conversations.message'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(fields=['conversation', 'parent'], name='message_conversation_parent'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('on_active_branch', True)), fields=['conversation', 'sequence'], name='message_active_branch'),
        ),
        migrations.RunSQL(ONE_BRANCH_PER_CONVERSATION, reverse_sql=migrations.RunSQL.noop),
    ]
