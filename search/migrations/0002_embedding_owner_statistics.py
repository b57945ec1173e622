from django.db import migrations


class Migration(migrations.Migration):
    """An owner belongs to one organization, so filtering on both is no more selective than
    on the owner alone; without these statistics the planner multiplies the two
    selectivities and underestimates a tenant's rows about a hundredfold, which skews its
    choice between the b-tree and the HNSW index."""

    dependencies = [("search", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE STATISTICS IF NOT EXISTS embedding_owner_dependencies (dependencies, ndistinct) "
                "ON organization_id, owner_id, model FROM search_messageembedding"
            ),
            reverse_sql="DROP STATISTICS IF EXISTS embedding_owner_dependencies",
        ),
    ]
