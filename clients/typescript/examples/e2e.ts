/**
 * The seed's flows through @raptorflow/client against a live server, failing loudly on
 * anything unexpected. Run by scripts/e2e.sh (CI) with:
 *   RAPTORFLOW_URL      the server's origin
 *   RAPTORFLOW_ACCESS   an access token from `manage.py issue_token` (short-lived in CI)
 *   RAPTORFLOW_REFRESH  its refresh token
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import {
  type Conversation,
  createRaptorFlowClient,
  memoryTokenStore,
  RaptorFlowError,
  type ReplyEvent,
  unwrap,
} from "@raptorflow/client";

const baseUrl = required("RAPTORFLOW_URL");
const tokens = memoryTokenStore({ access: required("RAPTORFLOW_ACCESS"), refresh: required("RAPTORFLOW_REFRESH") });
let signedOut = false;
let refreshes = 0;
const rf = createRaptorFlowClient({
  baseUrl,
  tokens,
  onSignOut: () => void (signedOut = true),
  // The global fetch, counting refreshes to show that concurrent 401s share one.
  fetch: (request) => {
    if (new URL(request.url).pathname === "/api/auth/refresh") refreshes += 1;
    return fetch(request);
  },
});
const { api } = rf;

async function main(): Promise<void> {
  const me = await unwrap(api.GET("/api/auth/me"));
  step(`signed in as ${me.user.email} in ${me.organization.name} (${me.role})`);

  // Create Conversation (seed §2)
  const conversation = await unwrap(
    api.POST("/api/conversations", { body: { title: "Q4 Marketing Strategy", agent_type: "strategy" } }),
  );
  assert.equal(conversation.status, "active");
  assert.equal(conversation.message_count, 0);
  step(`conversation ${conversation.id}`);

  // Add Message & Get Context (seed §3)
  const message = await unwrap(
    api.POST("/api/conversations/{id}/messages", {
      params: { path: { id: conversation.id } },
      body: { role: "user", content: "What should be our Q4 focus?" },
    }),
  );
  assert.equal(message.content, "What should be our Q4 focus?");
  const embedding = await unwrap(
    api.POST("/api/search/embed-and-store", {
      body: { message_id: message.id, conversation_id: conversation.id, text: "What should be our Q4 focus?" },
    }),
  );
  assert.equal(embedding.message_id, message.id);
  step(`message ${message.id} embedded as ${embedding.id} (${embedding.model})`);

  const inConversation = await unwrap(
    api.POST("/api/search/semantic-search", {
      params: { query: { conversation_id: conversation.id } },
      body: { query: "budget allocation", limit: 5 },
    }),
  );
  assert.ok(inConversation.results.some((hit) => hit.message_id === message.id), "semantic search finds the message");
  const global = await unwrap(
    api.GET("/api/search/semantic-search/global", { params: { query: { query: "Q4 focus", limit: 5 } } }),
  );
  assert.ok(global.results.some((hit) => hit.message_id === message.id), "global search finds the message");
  step(`semantic search: ${inConversation.results.length} in the conversation, ${global.results.length} globally`);

  // A streamed reply through the helper (the stub model on loopback answers it).
  const events: ReplyEvent[] = [];
  let text = "";
  for await (const event of rf.streamReply(conversation.id, { content: "Draft three subject lines." })) {
    events.push(event);
    if (event.event === "delta") text += event.data.text;
    if (event.event === "error") throw new Error(`reply failed: ${event.data.code} ${event.data.message}`);
  }
  const names = events.map((event) => event.event);
  assert.equal(names[0], "context");
  assert.equal(names.at(-1), "done");
  assert.ok(names.includes("delta"));
  const done = events.at(-1);
  assert.ok(done?.event === "done");
  assert.equal(done.data.message.content, text);
  assert.equal(done.data.message.role, "assistant");
  step(`streamed reply: ${names.length} events, "${text.trim()}"`);

  const recent = await unwrap(
    api.GET("/api/conversations/{id}/messages/recent", {
      params: { path: { id: conversation.id }, query: { limit: 2 } },
    }),
  );
  assert.deepEqual(
    recent.results.map((m) => m.role),
    ["user", "assistant"],
  );
  step("recent: the reply is the newest message");

  const renamed = await unwrap(
    api.PATCH("/api/conversations/{id}", {
      params: { path: { id: conversation.id } },
      body: { title: "Q4 Marketing Strategy (final)" },
    }),
  );
  assert.equal(renamed.title, "Q4 Marketing Strategy (final)");
  const byTitle = await unwrap(api.GET("/api/conversations/search/by-title", { params: { query: { q: "final" } } }));
  assert.ok(byTitle.results.some((c) => c.id === conversation.id), "title search finds the renamed conversation");
  step("renamed and found by title");

  // A paginated list walked to the end.
  const created: string[] = [];
  for (let i = 0; i < 5; i += 1) {
    const c = await unwrap(api.POST("/api/conversations", { body: { title: `Campaign ${i}`, agent_type: "content" } }));
    created.push(c.id);
  }
  const walked: Conversation[] = [];
  for await (const c of rf.paginate((cursor) =>
    api.GET("/api/conversations", { params: { query: { cursor, page_size: 2, agent_type: "content" } } }),
  )) {
    walked.push(c);
  }
  assert.deepEqual(new Set(walked.map((c) => c.id)), new Set(created));
  assert.equal(walked.length, created.length);
  step(`paginated: ${walked.length} conversations over ${Math.ceil(walked.length / 2)} pages`);

  // A validation error surfaced as RaptorFlowError naming the field.
  const refused = await unwrap(
    // @ts-expect-error — agent_type is an enum; the server refuses what the types refuse.
    api.POST("/api/conversations", { body: { title: "Bad", agent_type: "astrologer" } }),
  ).catch((error: unknown) => error);
  assert.ok(refused instanceof RaptorFlowError, "a validation error is a RaptorFlowError");
  assert.equal(refused.status, 400);
  assert.equal(refused.code, "validation_error");
  assert.ok(refused.fields.agent_type?.length, "the error names agent_type");
  step(`validation error: ${refused.code} on ${Object.keys(refused.fields).join(", ")}`);

  // Delete; the conversation is then a 404 like anything outside the caller's reach.
  const deleted = await api.DELETE("/api/conversations/{id}", { params: { path: { id: conversation.id } } });
  assert.equal(deleted.response.status, 204);
  const gone = await unwrap(api.GET("/api/conversations/{id}", { params: { path: { id: conversation.id } } })).catch(
    (error: unknown) => error,
  );
  assert.ok(gone instanceof RaptorFlowError && gone.status === 404 && gone.code === "not_found");
  step("deleted; reading it again is a 404");

  // An expired access token, refreshed transparently: concurrent calls share one refresh.
  const before = await tokens.get();
  assert.ok(before);
  const expiresAt = jwtExpiry(before.access);
  const wait = Math.max(0, expiresAt * 1000 - Date.now() + 1500);
  step(`waiting ${Math.round(wait / 1000)} s for the access token to expire`);
  await new Promise((resolve) => setTimeout(resolve, wait));
  const refreshesBefore = refreshes;
  const [first, second] = await Promise.all([unwrap(api.GET("/api/auth/me")), unwrap(api.GET("/api/conversations"))]);
  assert.equal(first.user.id, me.user.id);
  assert.ok(second.results.length >= created.length);
  const after = await tokens.get();
  assert.ok(after && after.access !== before.access && after.refresh !== before.refresh, "tokens were rotated");
  assert.equal(signedOut, false);
  assert.equal(refreshes - refreshesBefore, 1, "two concurrent calls shared one refresh");
  step("the expired access token was refreshed once for two concurrent calls, which both answered");

  // A refresh token that no longer works ends the session cleanly.
  await tokens.set({ access: before.access, refresh: before.refresh });
  const ended = await unwrap(api.GET("/api/auth/me")).catch((error: unknown) => error);
  assert.ok(ended instanceof RaptorFlowError && ended.status === 401);
  assert.equal(signedOut, true);
  assert.equal(await tokens.get(), null);
  step("a spent refresh token signs out: tokens cleared, onSignOut called");
  console.log(`e2e: all flows passed (${randomUUID().slice(0, 8)})`);
}

function jwtExpiry(token: string): number {
  const payload = token.split(".")[1];
  assert.ok(payload);
  return (JSON.parse(Buffer.from(payload, "base64url").toString()) as { exp: number }).exp;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function step(text: string): void {
  console.log(`e2e: ${text}`);
}

main().catch((error: unknown) => {
  console.error("e2e: FAILED", error);
  process.exit(1);
});
