"""Input and output shapes of the documents endpoints."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from documents.models import Document, DocumentChunk, DocumentKind, DocumentStatus, Visibility
from raptorflow.api import StrictSerializer
from search.selectors import MODES
from search.serializers import SearchOptionsSerializer

TITLE_MAX = 300


class DocumentUploadInputSerializer(StrictSerializer):
    """multipart/form-data: the file, and optionally its title and who may read it."""

    file = serializers.FileField(
        allow_empty_file=False,
        help_text="PDF, DOCX, PPTX, HTML, Markdown, plain text or CSV, up to DOCUMENT_MAX_BYTES (25 MB by default). "
        "The type is told from the bytes, not the name.",
    )
    title = serializers.CharField(max_length=TITLE_MAX, required=False, allow_blank=True,
                                  help_text="Defaults to the file name without its extension.")
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)


class DocumentUpdateInputSerializer(StrictSerializer):
    title = serializers.CharField(max_length=TITLE_MAX, required=False)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)

    def validate_title(self, value):
        if not value.strip():
            raise serializers.ValidationError("A title cannot be blank.")
        return value.strip()


class ProgressSerializer(serializers.Serializer):
    chunks_done = serializers.IntegerField(min_value=0)
    chunks_total = serializers.IntegerField(min_value=0, help_text="0 until the document has been read and split.")


class DocumentSerializer(serializers.ModelSerializer):
    uploader_id = serializers.UUIDField(source="owner_id", allow_null=True,
                                        help_text="Null once the uploader's account is deleted.")
    status = serializers.ChoiceField(choices=DocumentStatus.choices)
    visibility = serializers.ChoiceField(choices=Visibility.choices)
    kind = serializers.ChoiceField(choices=DocumentKind.choices, help_text="The type sniffed from the bytes.")
    error = serializers.CharField(allow_null=True, help_text="Why processing failed, when status is failed.")
    error_code = serializers.CharField(
        allow_null=True,
        help_text="password_protected, no_text, corrupt, too_large_unpacked, too_many_pages, too_much_text, "
        "too_slow, embedding_unavailable or internal.",
    )
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = [
            "id", "title", "visibility", "uploader_id", "filename", "kind", "content_type", "size_bytes", "sha256",
            "status", "error", "error_code", "progress", "page_count", "embedding_model", "processed_at",
            "created_at", "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, document) -> dict:
        return ProgressSerializer({"chunks_done": document.chunks_done, "chunks_total": document.chunks_total}).data

    def to_representation(self, document):
        data = super().to_representation(document)
        data["error"] = document.error or None
        data["error_code"] = document.error_code or None
        return data


class DocumentChunkSerializer(serializers.ModelSerializer):
    document_id = serializers.UUIDField()
    page = serializers.IntegerField(allow_null=True, help_text="Page (PDF) or slide (PPTX), from 1.")

    class Meta:
        model = DocumentChunk
        fields = ["id", "document_id", "index", "page", "heading", "text", "char_start", "char_end", "token_count"]
        read_only_fields = fields


class DocumentSearchInputSerializer(SearchOptionsSerializer, StrictSerializer):
    """The body of POST /api/search/documents."""

    document_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, min_length=1, max_length=100,
        help_text="Search only these documents (each must be readable by the caller, else 404).",
    )


class DocumentSearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.UUIDField()
    document_id = serializers.UUIDField()
    title = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    heading = serializers.CharField(allow_blank=True)
    snippet = serializers.CharField()
    char_start = serializers.IntegerField()
    char_end = serializers.IntegerField()
    similarity = serializers.FloatField(help_text="max(0, 1 - cosine distance).")


class DocumentSearchResultsSerializer(serializers.Serializer):
    query = serializers.CharField()
    model = serializers.CharField(help_text="The embedding model whose vectors were searched.")
    mode = serializers.ChoiceField(choices=MODES)
    results = DocumentSearchHitSerializer(many=True)

