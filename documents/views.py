"""The knowledge base endpoints. Thin: validate, call a service or selector, serialize.
Scoping comes from TenantAPIView and the documents' SHARED scope: a document neither the
caller's own nor shared with their organization is a 404 for every verb."""

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from documents import selectors, services
from documents.filters import DocumentFilter
from documents.models import ChunkEmbedding, Document, DocumentChunk
from documents.serializers import (
    DocumentChunkSerializer,
    DocumentSearchInputSerializer,
    DocumentSearchResultsSerializer,
    DocumentSerializer,
    DocumentUpdateInputSerializer,
    DocumentUploadInputSerializer,
)
from raptorflow.api import TenantAPIView, validated
from raptorflow.errors import DomainError, NotFound
from raptorflow.openapi import error_responses
from raptorflow.pagination import paginator_with_ordering

TAGS = ["documents"]
# What an uploaded file may do when opened from the API's origin: nothing. `sandbox` makes
# an HTML file a unique opaque origin with scripts, forms and plugins off.
FILE_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"

DocumentPagination = paginator_with_ordering("-created_at", "-id")
ChunkPagination = paginator_with_ordering("index")


class DocumentTooLarge(DomainError):
    status_code = 413
    default_code = "payload_too_large"


class DocumentListCreateView(TenantAPIView):
    model = Document
    serializer_class = DocumentSerializer
    filterset_class = DocumentFilter
    pagination_class = DocumentPagination
    # The only multipart endpoint of the API (documents.uploads streams the file to disk).
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="documents_list",
        responses={200: DocumentSerializer(many=True)},
        tags=TAGS,
        description="Documents the caller can read (their own, and those shared with the organization), newest first.",
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(DocumentSerializer(page, many=True).data)

    @extend_schema(
        operation_id="documents_upload",
        request={"multipart/form-data": DocumentUploadInputSerializer},
        responses={
            201: DocumentSerializer,
            200: OpenApiResponse(DocumentSerializer, description="The caller can already read these exact bytes."),
            **error_responses(402, 413, 415),
        },
        tags=TAGS,
        description="Uploads a document (multipart `file`, optional `title` and `visibility`). It is processed in the "
        "background: status pending → processing → ready | failed. The type is sniffed from the bytes; unsupported "
        "types are a 415 with nothing stored.",
    )
    def post(self, request):
        data = request.data
        if getattr(request._request, "document_upload_too_large", False):
            limit = settings.DOCUMENT_MAX_BYTES
            raise DocumentTooLarge(f"The file is larger than {limit} bytes.", limit=limit)
        data = validated(DocumentUploadInputSerializer, data)
        document, created = services.document_upload(
            user=request.user,
            organization=self.organization,
            uploaded=data["file"],
            title=data.get("title"),
            visibility=data["visibility"],
        )
        return Response(DocumentSerializer(document).data, status=status.HTTP_201_CREATED if created else 200)


class DocumentDetailView(TenantAPIView):
    model = Document
    serializer_class = DocumentSerializer
    filter_backends: list = []

    @extend_schema(operation_id="documents_retrieve", responses={200: DocumentSerializer}, tags=TAGS)
    def get(self, request, id):
        return Response(DocumentSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="documents_update",
        request=DocumentUpdateInputSerializer,
        responses={200: DocumentSerializer, **error_responses(403)},
        tags=TAGS,
        description="Changes title and/or visibility: the uploader, an admin or an owner.",
    )
    def patch(self, request, id):
        data = validated(DocumentUpdateInputSerializer, request.data)
        document = services.document_update(
            user=request.user, membership=self.caller.membership, document=self.get_object(), **data
        )
        return Response(DocumentSerializer(document).data)

    @extend_schema(
        operation_id="documents_destroy",
        responses={204: None, **error_responses(403)},
        tags=TAGS,
        description="Deletes the document with its file, chunks and vectors: the uploader, an admin or an owner.",
    )
    def delete(self, request, id):
        services.document_delete(user=request.user, membership=self.caller.membership, document=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentFileView(TenantAPIView):
    model = Document
    filter_backends: list = []

    @extend_schema(
        operation_id="documents_file",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        tags=TAGS,
        description="The original file, as an attachment of type application/octet-stream (never rendered on "
        "the API's origin); the document's `content_type` says what it is.",
    )
    def get(self, request, id):
        document = self.get_object()
        response = FileResponse(
            services.storage().open(document.file, "rb"),
            as_attachment=True,
            filename=document.filename,
            # Never the sniffed type: a download, which no browser renders (the document's
            # `content_type` says what it is).
            content_type="application/octet-stream",
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = FILE_CSP
        response["Cache-Control"] = "private, no-store"
        return response


class DocumentChunksView(TenantAPIView):
    model = Document
    serializer_class = DocumentChunkSerializer
    filter_backends: list = []
    pagination_class = ChunkPagination

    @extend_schema(
        operation_id="documents_chunks",
        responses={200: DocumentChunkSerializer(many=True)},
        tags=TAGS,
        description="The document's chunks in order, each with its page or slide, heading and character offsets.",
    )
    def get(self, request, id):
        document = self.get_object()
        chunks = self.scoped(DocumentChunk).filter(document=document)
        page = self.paginate_queryset(chunks)
        return self.get_paginated_response(DocumentChunkSerializer(page, many=True).data)


class DocumentReprocessView(TenantAPIView):
    model = Document
    serializer_class = DocumentSerializer
    filter_backends: list = []

    @extend_schema(
        operation_id="documents_reprocess",
        request=None,
        responses={202: DocumentSerializer, **error_responses(403)},
        tags=TAGS,
        description="Reads and embeds the document again with the active embedding model (after a failure, or a "
        "model switch). Its current chunks stay searchable until the new ones replace them.",
    )
    def post(self, request, id):
        document = services.document_reprocess(
            user=request.user, membership=self.caller.membership, document=self.get_object()
        )
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)


class DocumentSearchView(TenantAPIView):
    model = ChunkEmbedding
    filter_backends: list = []
    pagination_class = None

    @extend_schema(
        operation_id="search_documents",
        request=DocumentSearchInputSerializer,
        responses={200: DocumentSearchResultsSerializer, **error_responses(404, 502, 503)},
        tags=["search"],
        description="The chunks of the caller's readable documents most similar to `query`, best first.",
    )
    def post(self, request):
        data = validated(DocumentSearchInputSerializer, request.data)
        document_ids = data.pop("document_ids", None)
        if document_ids is not None:
            wanted = set(document_ids)
            # Ids in a body are scoped like ids in a URL: one that is not readable is a 404.
            if self.scoped(Document).filter(id__in=wanted).count() != len(wanted):
                raise NotFound("No such document.")
        results = selectors.search_chunks(
            user=request.user, organization=self.organization, document_ids=document_ids, **data
        )
        body = {
            "query": data["query"],
            "model": results.model,
            "mode": results.mode,
            "results": [
                {
                    "chunk_id": hit.chunk_id,
                    "document_id": hit.document_id,
                    "title": hit.title,
                    "page": hit.page,
                    "heading": hit.heading,
                    "snippet": hit.snippet,
                    "char_start": hit.char_start,
                    "char_end": hit.char_end,
                    "similarity": hit.similarity,
                }
                for hit in results.hits
            ],
        }
        return Response(DocumentSearchResultsSerializer(body).data)
