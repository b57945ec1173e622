"""Messages form a tree, end to end through HTTP with a stubbed OpenAI: edit, regenerate,
activate and a second answer through /reply; the active branch, sibling positions and the
context a reply is given follow the branch shown."""

import httpx
import pytest

from conversations.models import Conversation, Message
from tests.rag.conftest import OPENAI_URL, openai_completion, reply_url, sent_prompt


def url(conversation, message, action) -> str:
    return f"/api/conversations/{conversation.id}/messages/{message}/{action}"


def branch(client, conversation) -> list[dict]:
    response = client.get(f"/api/conversations/{conversation.id}/messages")
    assert response.status_code == 200
    return response.json()["results"]


def contents(messages) -> list[str]:
    return [m["content"] for m in messages]


def positions(messages) -> list[tuple[int, int]]:
    return [(m["sibling_index"], m["sibling_count"]) for m in messages]


@pytest.fixture
def answers(respx_mock):
    """OpenAI answering "answer 1", "answer 2", … in turn; the route records each prompt."""
    count = {"n": 0}

    def answer(request):
        count["n"] += 1
        return httpx.Response(200, json=openai_completion(f"answer {count['n']}"))

    return respx_mock.post(OPENAI_URL).mock(side_effect=answer)


@pytest.fixture
def conversation(make_conversation):
    return make_conversation(title="Launch plan")


def ask(client, conversation, content):
    response = client.post(reply_url(conversation), {"content": content}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_edit_regenerate_and_activate_back_and_forth(owner_client, all_keys, answers, conversation):
    first = ask(owner_client, conversation, "Which city first?")  # answer 1
    question_1, answer_1 = first["user_message"]["id"], first["message"]["id"]

    # Another answer to the same question, from the same history.
    regenerated = owner_client.post(url(conversation, answer_1, "regenerate"), {}, format="json")
    assert regenerated.status_code == 201, regenerated.content
    answer_2 = regenerated.json()["message"]
    assert answer_2["content"] == "answer 2"
    assert answer_2["parent_id"] == question_1
    assert answer_2["sibling_ids"] == [answer_1, answer_2["id"]]
    assert (answer_2["sibling_index"], answer_2["sibling_count"]) == (1, 2)
    # The earlier answer is a sibling, never context for its replacement.
    assert "answer 1" not in sent_prompt(answers)
    shown = branch(owner_client, conversation)
    assert contents(shown) == ["Which city first?", "answer 2"]
    assert positions(shown) == [(0, 1), (1, 2)]

    second = ask(owner_client, conversation, "And the budget?")  # answer 3, after answer 2
    question_2 = second["user_message"]["id"]
    assert second["user_message"]["parent_id"] == answer_2["id"]
    assert "answer 2" in sent_prompt(answers) and "answer 1" not in sent_prompt(answers)

    # Edit the second question and have it answered: a sibling question with its own answer.
    edited = owner_client.post(
        url(conversation, question_2, "edit"), {"content": "And the budget for Berlin?", "reply": True}, format="json"
    )
    assert edited.status_code == 201, edited.content
    edit_1 = edited.json()["user_message"]
    assert edit_1["parent_id"] == answer_2["id"]
    assert (edit_1["sibling_index"], edit_1["sibling_count"]) == (1, 2)
    assert edited.json()["message"]["content"] == "answer 4"
    prompt = sent_prompt(answers)
    assert "And the budget for Berlin?" in prompt
    # Context is the edited question's own history: not the version it replaces, nor its answer.
    assert "And the budget?" not in prompt and "answer 3" not in prompt and "answer 1" not in prompt
    context_ids = {item["message_id"] for item in edited.json()["context"]}
    assert context_ids == {question_1, answer_2["id"]}

    # Edit it again, without an answer this time.
    again = owner_client.post(url(conversation, question_2, "edit"), {"content": "Budget for Paris?"}, format="json")
    assert again.status_code == 201, again.content
    edit_2 = again.json()
    assert (edit_2["sibling_index"], edit_2["sibling_count"], edit_2["role"]) == (2, 3, "user")
    shown = branch(owner_client, conversation)
    assert contents(shown) == ["Which city first?", "answer 2", "Budget for Paris?"]
    assert positions(shown) == [(0, 1), (1, 2), (2, 3)]
    assert shown[2]["sibling_ids"] == [question_2, edit_1["id"], edit_2["id"]]
    assert all(m["on_active_branch"] for m in shown)

    # Back to the first version of the question: its newest descendant (answer 3) is the leaf.
    activated = owner_client.post(url(conversation, question_2, "activate"), format="json")
    assert activated.status_code == 200, activated.content
    assert activated.json()["active_leaf_id"] == second["message"]["id"]
    assert contents(activated.json()["results"]) == ["Which city first?", "answer 2", "And the budget?", "answer 3"]
    assert contents(branch(owner_client, conversation)) == [
        "Which city first?", "answer 2", "And the budget?", "answer 3"
    ]
    # Back to the first answer, then forth to the Berlin edit.
    owner_client.post(url(conversation, answer_1, "activate"), format="json")
    shown = branch(owner_client, conversation)
    assert contents(shown) == ["Which city first?", "answer 1"]
    assert positions(shown) == [(0, 1), (0, 2)]
    owner_client.post(url(conversation, edit_1["id"], "activate"), format="json")
    assert contents(branch(owner_client, conversation)) == [
        "Which city first?", "answer 2", "And the budget for Berlin?", "answer 4"
    ]
    recent = owner_client.get(f"/api/conversations/{conversation.id}/messages/recent?limit=2").json()["results"]
    assert contents(recent) == ["And the budget for Berlin?", "answer 4"]

    # Every stored message counts, on every branch; sequences stay unique.
    row = Conversation.objects.get(pk=conversation.pk)
    stored = Message.objects.filter(conversation=conversation)
    assert row.message_count == stored.count() == 8
    assert sorted(stored.values_list("sequence", flat=True)) == list(range(1, 9))
    flagged = set(stored.filter(on_active_branch=True).values_list("content", flat=True))
    assert flagged == {"Which city first?", "answer 2", "And the budget for Berlin?", "answer 4"}
    assert str(row.active_leaf_id) == edited.json()["message"]["id"]
    # The export shows the conversation as its owner sees it: the active branch.
    export = owner_client.get("/api/auth/me/export").json()
    assert contents(export["conversations"][0]["messages"]) == contents(branch(owner_client, conversation))
    # Quotas count every generated message (4 answers) and every question (2 asked, 2 edits).
    usage = owner_client.get("/api/billing/usage").json()
    assert usage["messages"]["used"] == 8


def test_reply_with_message_id_of_an_answered_question_adds_a_sibling_answer(
    owner_client, all_keys, answers, conversation
):
    first = ask(owner_client, conversation, "Tagline ideas?")
    ask(owner_client, conversation, "Shorter please.")

    response = owner_client.post(
        reply_url(conversation), {"message_id": first["user_message"]["id"]}, format="json"
    )

    assert response.status_code == 201
    answer = response.json()["message"]
    assert answer["parent_id"] == first["user_message"]["id"]
    assert (answer["sibling_index"], answer["sibling_count"]) == (1, 2)
    assert contents(branch(owner_client, conversation)) == ["Tagline ideas?", "answer 3"]
    assert "Shorter please." not in sent_prompt(answers)


def test_edit_and_regenerate_honour_the_idempotency_key(owner_client, all_keys, answers, conversation):
    first = ask(owner_client, conversation, "Channel mix?")
    headers = {"HTTP_IDEMPOTENCY_KEY": "regen-1"}

    regenerated = [
        owner_client.post(url(conversation, first["message"]["id"], "regenerate"), {}, format="json", **headers)
        for _ in range(2)
    ]
    edit_headers = {"HTTP_IDEMPOTENCY_KEY": "edit-1"}
    body = {"content": "Channel mix for B2B?", "reply": True}
    edits = [
        owner_client.post(url(conversation, first["user_message"]["id"], "edit"), body, format="json", **edit_headers)
        for _ in range(2)
    ]
    reused = owner_client.post(
        url(conversation, first["user_message"]["id"], "edit"), {"content": "Other"}, format="json", **edit_headers
    )

    assert [r.status_code for r in regenerated] == [201, 200]
    assert regenerated[0].json()["message"]["id"] == regenerated[1].json()["message"]["id"]
    assert [r.status_code for r in edits] == [201, 200]
    assert edits[0].json()["message"]["id"] == edits[1].json()["message"]["id"]
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert answers.call_count == 3
    assert Message.objects.filter(conversation=conversation).count() == 5


def test_edit_of_an_answer_and_regenerate_of_a_question_are_400(owner_client, all_keys, answers, conversation):
    first = ask(owner_client, conversation, "Budget?")

    edit = owner_client.post(url(conversation, first["message"]["id"], "edit"), {"content": "x"}, format="json")
    regenerate = owner_client.post(url(conversation, first["user_message"]["id"], "regenerate"), {}, format="json")
    stream_without_reply = owner_client.post(
        url(conversation, first["user_message"]["id"], "edit"), {"content": "x", "stream": True}, format="json"
    )

    assert edit.status_code == 400 and "message_id" in edit.json()["error"]["fields"]
    assert regenerate.status_code == 400 and "message_id" in regenerate.json()["error"]["fields"]
    assert stream_without_reply.status_code == 400 and "stream" in stream_without_reply.json()["error"]["fields"]
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_outsider_and_teammate_cannot_edit_regenerate_or_activate(
    owner_client, outsider_client, teammate_client, all_keys, answers, conversation
):
    first = ask(owner_client, conversation, "Budget?")
    leaf = Conversation.objects.get(pk=conversation.pk).active_leaf_id

    for client in (outsider_client, teammate_client):
        for message, action, body in [
            (first["user_message"]["id"], "edit", {"content": "Hijacked", "reply": True}),
            (first["message"]["id"], "regenerate", {}),
            (first["user_message"]["id"], "activate", None),
        ]:
            response = client.post(url(conversation, message, action), body, format="json")
            assert response.status_code == 404, (action, response.content)

    assert Message.objects.filter(conversation=conversation).count() == 2
    assert Conversation.objects.get(pk=conversation.pk).active_leaf_id == leaf
    assert answers.call_count == 1


def test_a_message_of_another_conversation_is_404(owner_client, all_keys, answers, conversation, make_conversation):
    other = make_conversation(title="Other", messages=[("user", "Elsewhere")])
    foreign = Message.objects.get(conversation=other)

    for action, body in [("edit", {"content": "x"}), ("regenerate", {}), ("activate", None)]:
        response = owner_client.post(url(conversation, foreign.id, action), body, format="json")
        assert response.status_code == 404

    assert not Message.objects.filter(conversation=conversation).exists()


def test_messages_on_other_branches_stay_searchable_and_are_marked(
    owner_client, all_keys, answers, conversation, embed
):
    first = ask(owner_client, conversation, "Vegan protein bars for marathon runners")
    owner_client.post(
        url(conversation, first["user_message"]["id"], "edit"), {"content": "Gluten-free snacks"}, format="json"
    )
    embed(*Message.objects.filter(conversation=conversation))

    response = owner_client.get("/api/search/semantic-search/global", {"query": "vegan protein bars", "limit": 5})

    assert response.status_code == 200
    hits = {hit["content"]: hit for hit in response.json()["results"]}
    assert hits["Vegan protein bars for marathon runners"]["on_active_branch"] is False
    assert hits["Gluten-free snacks"]["on_active_branch"] is True


def test_the_seed_pipeline_draws_context_from_the_active_branch_only(owner_client, owner, org, make_conversation):
    from rag.pipeline import get_rag_pipeline

    conversation = make_conversation(
        messages=[("user", "Launch in Lisbon first?"), ("assistant", "Lisbon has a strong running scene.")]
    )
    question = Message.objects.get(conversation=conversation, sequence=1)
    edited = owner_client.post(url(conversation, question.id, "edit"), {"content": "Launch in Porto first?"},
                               format="json")
    assert edited.status_code == 201

    pipeline = get_rag_pipeline(user=owner, organization=org)
    context = pipeline.retrieve_context_sync("Where do we launch?", conversation.id)

    assert {m.content for m in context.messages} == {"Launch in Porto first?"}
