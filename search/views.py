"""The seven search endpoints (SPEC §4 "Search"). Thin: validate, call a service or
selector, serialize. Ids in URLs, query strings and bodies go through TenantAPIView's
scoping, so another tenant's conversation, message or embedding is a 404 like a missing one.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from conversations.models import Conversation, Message
from raptorflow.api import TenantAPIView, validated
from raptorflow.openapi import error_responses
from search import selectors, services
from search.models import MessageEmbedding
from search.providers import get_embedding_provider
from search.serializers import (
    BatchEmbedInputSerializer,
    BatchEmbedOutputSerializer,
    EmbedAndStoreInputSerializer,
    EmbeddingSerializer,
    EmbeddingStatsSerializer,
    EmbedTextInputSerializer,
    EmbedTextOutputSerializer,
    GlobalSearchQuerySerializer,
    SearchResultsSerializer,
    SemanticSearchInputSerializer,
    SemanticSearchScopeSerializer,
)

TAGS = ["search"]


def _embedding_body(row: MessageEmbedding, status_: str) -> dict:
    return {
        "id": row.id,
        "message_id": row.message_id,
        "conversation_id": row.conversation_id,
        "model": row.model,
        "dimensions": row.dimensions,
        "text_sha256": row.text_sha256,
        "status": status_,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _results_body(query: str, results: selectors.SearchResults) -> dict:
    return {
        "query": query,
        "model": results.model,
        "mode": results.mode,
        "count": len(results.hits),
        "results": [hit.__dict__ for hit in results.hits],
    }


class SearchAPIView(TenantAPIView):
    model = MessageEmbedding
    filter_backends: list = []
    pagination_class = None


class EmbedTextView(SearchAPIView):
    @extend_schema(
        operation_id="search_embed_text",
        request=EmbedTextInputSerializer,
        responses={200: EmbedTextOutputSerializer, **error_responses(502, 503)},
        tags=TAGS,
        description="The vector of a text with the active embedding model (nothing is stored).",
    )
    def post(self, request):
        data = validated(EmbedTextInputSerializer, request.data)
        provider, vector = services.text_embed(organization=self.organization, text=data["text"])
        return Response({"embedding": vector, "model": provider.model, "dimensions": provider.dimensions})


class EmbedAndStoreView(SearchAPIView):
    @extend_schema(
        operation_id="search_embed_and_store",
        request=EmbedAndStoreInputSerializer,
        responses={201: EmbeddingSerializer, 200: EmbeddingSerializer, **error_responses(404, 502, 503)},
        tags=TAGS,
        description=(
            "Embeds one of the caller's messages (its content, or `text`) and stores the vector: 201 when "
            "created, 200 when the same text was already embedded (nothing is done) or the text changed. "
            "Brings a message whose embedding was deleted back into search."
        ),
    )
    def post(self, request):
        data = validated(EmbedAndStoreInputSerializer, request.data)
        conversation = self.get_scoped_or_404(Conversation, id=data["conversation_id"])
        message = self.get_scoped_or_404(Message, id=data["message_id"], conversation=conversation)
        row, outcome = services.embedding_store(message=message, text=data.get("text"))
        code = status.HTTP_201_CREATED if outcome == services.CREATED else status.HTTP_200_OK
        return Response(EmbeddingSerializer(_embedding_body(row, outcome)).data, status=code)


class SemanticSearchView(SearchAPIView):
    @extend_schema(
        operation_id="search_semantic_search",
        parameters=[
            OpenApiParameter(
                "conversation_id",
                OpenApiTypes.UUID,
                required=False,
                description="Search this conversation only (exact); without it, all of the caller's conversations.",
            )
        ],
        request=SemanticSearchInputSerializer,
        responses={200: SearchResultsSerializer, **error_responses(404, 502, 503)},
        tags=TAGS,
        description="The caller's messages most similar to `query`, best first.",
    )
    def post(self, request):
        # A plain dict, not the QueryDict: DRF reads an empty optional field of a QueryDict as
        # absent, and `?conversation_id=` would silently search every conversation.
        scope = validated(SemanticSearchScopeSerializer, request.query_params.dict())
        data = validated(SemanticSearchInputSerializer, request.data)
        conversation_id = None
        if "conversation_id" in scope:
            conversation_id = self.get_scoped_or_404(Conversation, id=scope["conversation_id"]).id
        results = selectors.search_messages(
            user=request.user, organization=self.organization, conversation_id=conversation_id, **data
        )
        return Response(SearchResultsSerializer(_results_body(data["query"], results)).data)


class GlobalSemanticSearchView(SearchAPIView):
    @extend_schema(
        operation_id="search_semantic_search_global",
        parameters=[GlobalSearchQuerySerializer],
        responses={200: SearchResultsSerializer, **error_responses(502, 503)},
        tags=TAGS,
        description="The most similar messages across all of the caller's own conversations.",
    )
    def get(self, request):
        data = validated(GlobalSearchQuerySerializer, request.query_params.dict())  # as in POST: `?limit=` is a 400
        results = selectors.search_messages(user=request.user, organization=self.organization, **data)
        return Response(SearchResultsSerializer(_results_body(data["query"], results)).data)


class EmbeddingStatsView(SearchAPIView):
    @extend_schema(
        operation_id="search_embedding_stats",
        responses={200: EmbeddingStatsSerializer},
        tags=TAGS,
        description="The caller's vectors by model and how many of their messages the active model covers.",
    )
    def get(self, request):
        stats = selectors.embedding_stats(user=request.user, organization=self.organization)
        return Response(EmbeddingStatsSerializer(stats).data)


class EmbeddingDeleteView(SearchAPIView):
    @extend_schema(
        operation_id="search_embeddings_destroy",
        responses={204: None},
        tags=TAGS,
        description=(
            "Deletes the embedding (and the message's vectors of any other model) and takes the message out of "
            "search until it is embedded again on purpose (embed-and-store or batch-embed with its id)."
        ),
    )
    def delete(self, request, id):
        services.embedding_delete(embedding=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class BatchEmbedView(SearchAPIView):
    @extend_schema(
        operation_id="search_batch_embed",
        request=BatchEmbedInputSerializer,
        responses={200: BatchEmbedOutputSerializer, **error_responses(404, 502, 503)},
        tags=TAGS,
        description=(
            "Embeds up to 256 of the caller's messages (`message_ids`, on purpose: also those taken out of "
            "search) or a whole conversation (`conversation_id`: its messages still in search). A foreign or "
            "unknown id anywhere makes the request a 404 with nothing written."
        ),
    )
    def post(self, request):
        data = validated(BatchEmbedInputSerializer, request.data)
        if "message_ids" in data:
            wanted = set(data["message_ids"])
            messages = list(self.scoped(Message).filter(id__in=wanted).order_by("created_at", "id"))
            if len(messages) != len(wanted):
                raise NotFound("One or more messages were not found.")
            on_purpose = True
        else:
            conversation = self.get_scoped_or_404(Conversation, id=data["conversation_id"])
            messages = list(self.scoped(Message).filter(conversation=conversation).order_by("sequence"))
            on_purpose = False
        result = services.embeddings_store(
            items=[(message, message.content) for message in messages],
            provider=get_embedding_provider(),
            on_purpose=on_purpose,
        )
        body = {
            "model": result.model,
            "dimensions": result.dimensions,
            "requested": len(messages),
            "created": result.count(services.CREATED),
            "updated": result.count(services.UPDATED),
            "unchanged": result.count(services.UNCHANGED),
            "skipped": result.count(services.SKIPPED),
            "results": [
                {
                    "message_id": message.id,
                    "embedding_id": getattr(result.embeddings.get(message.id), "id", None),
                    "status": result.statuses[message.id],
                }
                for message in messages
            ],
        }
        return Response(BatchEmbedOutputSerializer(body).data)
