from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "documents"

    def ready(self):
        from conversations.export import export_sections
        from documents import search_plan, services
        from documents.export import DOCUMENTS_EXPORT
        from raptorflow import hooks
        from search import tenant_indexes

        # Large organizations' chunk vectors get tenant indexes of their own (built, listed,
        # reconciled and dropped with the message vectors').
        tenant_indexes.register_table(search_plan.CHUNK_VECTORS)
        # An organization's documents (rows, chunks, vectors and files) go before it does.
        hooks.organization_deleting.register(services.unscoped_delete_organization_documents)
        # A person leaving an organization, or deleting their account, takes their private
        # documents along; the ones they shared stay with the organization.
        hooks.member_leaving.register(services.unscoped_delete_private_documents_of_member)
        hooks.account_deleting.register(services.unscoped_delete_private_documents_of_account)
        # backfill_embeddings and reindex_embeddings cover the chunks too.
        hooks.embeddings_backfill.register(services.unscoped_backfill_chunks)
        hooks.embeddings_dropping.register(services.unscoped_drop_chunk_vectors_of_other_models)
        # GET /api/auth/me/export lists the caller's own documents.
        export_sections.register(DOCUMENTS_EXPORT)
