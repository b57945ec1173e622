"""The caller's documents in GET /api/auth/me/export, through the export's hook point
(conversations.export.export_sections): the documents they uploaded in the token's
organization, private and shared, described (not their files)."""

from conversations.export import ExportSection
from documents.models import Document
from documents.serializers import DocumentSerializer
from raptorflow.tenancy import scoped


def _collect(user, organization):
    return scoped(Document, user=user, organization=organization).filter(owner=user).order_by("created_at", "id")


DOCUMENTS_EXPORT = ExportSection(
    name="documents",
    field=DocumentSerializer(many=True, help_text="The documents the caller uploaded (their files are not included)."),
    collect=_collect,
)
