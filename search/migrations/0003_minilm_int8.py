from django.conf import settings
from django.db import migrations

OLD_MODEL = "all-MiniLM-L6-v2"


def keep_serving_the_old_local_model(apps, schema_editor):
    """The local provider's default became all-MiniLM-L6-v2-int8. A database whose vectors
    were made by all-MiniLM-L6-v2 (the default until now, still served on ONNX Runtime in
    fp32) keeps it as the active model, so search never compares int8 queries with fp32
    vectors; `manage.py reindex_embeddings --model all-MiniLM-L6-v2-int8` switches over
    without a gap. Only where the settings leave the model to the default: any other
    configuration meant what it said, and a recorded switch is left as it is."""
    ActiveEmbeddingModel = apps.get_model("search", "ActiveEmbeddingModel")
    MessageEmbedding = apps.get_model("search", "MessageEmbedding")
    if (settings.EMBEDDING_PROVIDER or "local").lower() != "local" or settings.EMBEDDING_MODEL:
        return
    if ActiveEmbeddingModel.objects.exists() or not MessageEmbedding.objects.filter(model=OLD_MODEL).exists():
        return
    ActiveEmbeddingModel.objects.create(pk=1, provider="local", model=OLD_MODEL, dimensions=384)


class Migration(migrations.Migration):
    """The HNSW index of the new default local model (as 0001 made the old one's; frozen SQL,
    built CONCURRENTLY so a large table keeps taking writes), and the old model kept active
    where its vectors are."""

    atomic = False
    dependencies = [("search", "0002_embedding_owner_statistics")]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS embedding_hnsw_all_minilm_l6_v2_int8_5a02ab28 "
                "ON search_messageembedding USING hnsw ((embedding::vector(384)) vector_cosine_ops) "
                "WITH (m = 16, ef_construction = 64) WHERE model = 'all-MiniLM-L6-v2-int8'"
            ),
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS embedding_hnsw_all_minilm_l6_v2_int8_5a02ab28",
        ),
        migrations.RunPython(keep_serving_the_old_local_model, migrations.RunPython.noop, atomic=True),
    ]
