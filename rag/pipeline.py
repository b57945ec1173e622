"""The seed's RAG interface (its "Get Context for RAG" snippet runs with this import):

    from rag.pipeline import get_rag_pipeline

    pipeline = get_rag_pipeline()
    context = await pipeline.retrieve_context(query=user_message, conversation_id=conversation_id)
    augmented = await pipeline.augment_prompt(query=user_message, context=context)
    augmented.full_prompt  # plus .messages (with .score), .token_count, .chat_messages()

The coroutines wrap the sync core (rag.context) with asgiref's sync_to_async; the app
itself stays WSGI. A pipeline made for a caller (`get_rag_pipeline(user=..., organization=...)`)
only finds that caller's own conversations, read through raptorflow.tenancy.scoped() like the
API views read them; without one, the conversation's own owner and organization are the
caller (`unscoped_conversation_and_caller`), so context still never crosses owners or
organizations.
"""

from asgiref.sync import sync_to_async

from conversations.models import Conversation
from rag.context import AugmentedPrompt, RetrievedContext, context_retrieve, prompt_augment
from raptorflow.tenancy import scoped

__all__ = ["AugmentedPrompt", "RagPipeline", "RetrievedContext", "get_rag_pipeline"]


class RagPipeline:
    def __init__(self, *, user=None, organization=None):
        if (user is None) != (organization is None):
            raise ValueError("Give both user and organization, or neither")
        self.user = user
        self.organization = organization

    def _caller_and_conversation(self, conversation_id):
        if self.user is not None:
            conversation = scoped(Conversation, user=self.user, organization=self.organization).get(pk=conversation_id)
            return self.user, self.organization, conversation
        return unscoped_conversation_and_caller(conversation_id)

    def retrieve_context_sync(self, query: str, conversation_id) -> RetrievedContext:
        user, organization, conversation = self._caller_and_conversation(conversation_id)
        return context_retrieve(user=user, organization=organization, conversation=conversation, query=query)

    def augment_prompt_sync(self, query: str, context: RetrievedContext) -> AugmentedPrompt:
        return prompt_augment(query=query, context=context)

    async def retrieve_context(self, query: str, conversation_id) -> RetrievedContext:
        return await sync_to_async(self.retrieve_context_sync)(query, conversation_id)

    async def augment_prompt(self, query: str, context: RetrievedContext) -> AugmentedPrompt:
        return await sync_to_async(self.augment_prompt_sync)(query, context)


def unscoped_conversation_and_caller(conversation_id):
    """(owner, organization, conversation) of any conversation. Unscoped on purpose:
    server-side agent code names a conversation, and its owner becomes the caller, so every
    read after this one is scoped to that owner."""
    conversation = Conversation.objects.select_related("owner", "organization").get(pk=conversation_id)
    return conversation.owner, conversation.organization, conversation


def get_rag_pipeline(*, user=None, organization=None) -> RagPipeline:
    return RagPipeline(user=user, organization=organization)
