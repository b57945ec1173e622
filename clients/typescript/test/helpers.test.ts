/**
 * The helpers against a fetch double (no server): what a live server cannot be made to do
 * on cue — a stream cut mid-reply, a resume endpoint that is not there (404), two tabs
 * racing a refresh. scripts/e2e.sh runs these with `node --test` before the live run.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  createRaptorFlowClient,
  memoryTokenStore,
  RaptorFlowError,
  type ReplyEvent,
  readServerSentEvents,
} from "@raptorflow/client";

const BASE = "http://api.test";
const encoder = new TextEncoder();

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** An event stream that sends `chunks` and then breaks (or ends, when `complete`). */
function eventStream(chunks: string[], { complete, replyId }: { complete: boolean; replyId?: string }): Response {
  // One chunk per read, then the end or the break (an error in start() would drop the
  // chunks still queued, as a cut connection does not).
  const queue = [...chunks];
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = queue.shift();
      if (chunk !== undefined) controller.enqueue(encoder.encode(chunk));
      else if (complete) controller.close();
      else controller.error(new TypeError("terminated"));
    },
  });
  const headers: Record<string, string> = { "Content-Type": "text/event-stream" };
  if (replyId) headers["X-Reply-Id"] = replyId;
  return new Response(body, { status: 200, headers });
}

const message = {
  id: "m",
  conversation_id: "c",
  role: "assistant",
  content: "Hi there",
  metadata: {},
  created_at: "2026-11-28T00:00:00Z",
};
const CONTEXT = 'id: 1\nevent: context\ndata: {"user_message": {}, "context": []}\n\n';
const DELTA_1 = 'id: 2\nevent: delta\ndata: {"text": "Hi "}\n\n';
const DELTA_2 = 'id: 3\nevent: delta\ndata: {"text": "there"}\n\n';
const DONE = `id: 4\nevent: done\ndata: ${JSON.stringify({ message, usage: {} })}\n\n`;

async function collect(stream: AsyncIterable<ReplyEvent>): Promise<ReplyEvent[]> {
  const events: ReplyEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

test("server-sent events split anywhere, keepalives and CRLF included, parse whole", async () => {
  const wire = ': keepalive\r\n\r\nevent: delta\r\ndata: {"text":\r\ndata: "a"}\r\nid: 7\r\n\r\n';
  const pieces = wire.match(/[\s\S]{1,3}/g) ?? [];
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of pieces) controller.enqueue(encoder.encode(piece));
      controller.close();
    },
  });
  const events = [];
  for await (const event of readServerSentEvents(body)) events.push(event);
  assert.deepEqual(events, [{ event: "delta", data: '{"text":\n"a"}', id: "7" }]);
});

test("a cut stream resumes from the last event id and ends with done", async () => {
  const requests: Request[] = [];
  const fetch = async (request: Request) => {
    requests.push(request);
    if (request.url.endsWith("/reply")) return eventStream([CONTEXT, DELTA_1], { complete: false, replyId: "r1" });
    return eventStream([DELTA_2, DONE], { complete: true });
  };
  const rf = createRaptorFlowClient({ baseUrl: BASE, tokens: memoryTokenStore({ access: "a", refresh: "r" }), fetch });

  const events = await collect(rf.streamReply("c", { content: "Hi?" }));

  assert.deepEqual(
    events.map((e) => e.event),
    ["context", "delta", "delta", "done"],
  );
  const resume = requests[1];
  assert.ok(resume);
  assert.equal(new URL(resume.url).pathname, "/api/conversations/c/replies/r1/events");
  assert.equal(resume.headers.get("Last-Event-ID"), "2");
  assert.equal(resume.headers.get("Authorization"), "Bearer a");
});

test("where the server cannot resume (404), a cut stream ends in stream_interrupted", async () => {
  const fetch = async (request: Request) =>
    request.url.endsWith("/reply")
      ? eventStream([CONTEXT, DELTA_1], { complete: false, replyId: "r1" })
      : json(404, { error: { code: "not_found", message: "Not found." } });
  const rf = createRaptorFlowClient({ baseUrl: BASE, tokens: memoryTokenStore({ access: "a", refresh: "r" }), fetch });
  const events: ReplyEvent[] = [];

  await assert.rejects(
    async () => {
      for await (const event of rf.streamReply("c", { content: "Hi?" })) events.push(event);
    },
    (error: unknown) => error instanceof RaptorFlowError && error.code === "stream_interrupted",
  );
  assert.deepEqual(
    events.map((e) => e.event),
    ["context", "delta"],
  );
});

test("a stream without event ids is not resumed", async () => {
  let calls = 0;
  const fetch = async () => {
    calls += 1;
    return eventStream(['event: delta\ndata: {"text": "x"}\n\n'], { complete: false, replyId: "r1" });
  };
  const rf = createRaptorFlowClient({ baseUrl: BASE, tokens: memoryTokenStore({ access: "a", refresh: "r" }), fetch });

  await assert.rejects(collect(rf.streamReply("c", { content: "Hi?" })), /ended before/);
  assert.equal(calls, 1);
});

test("a refused reply is a RaptorFlowError with the server's code", async () => {
  const fetch = async () => json(402, { error: { code: "quota_exceeded", message: "Out of replies.", limit: 5 } });
  const rf = createRaptorFlowClient({ baseUrl: BASE, tokens: memoryTokenStore({ access: "a", refresh: "r" }), fetch });

  await assert.rejects(
    collect(rf.streamReply("c", { content: "Hi?" })),
    (error: unknown) => error instanceof RaptorFlowError && error.status === 402 && error.detail?.limit === 5,
  );
});

test("concurrent 401s share one refresh, and the rotated refresh token is stored", async () => {
  let refreshes = 0;
  const fetch = async (request: Request) => {
    if (new URL(request.url).pathname === "/api/auth/refresh") {
      refreshes += 1;
      await new Promise((resolve) => setTimeout(resolve, 20));
      return json(200, { access: "a2", refresh: "r2" });
    }
    return request.headers.get("Authorization") === "Bearer a2"
      ? json(200, { user: {}, organization: {}, role: "owner" })
      : json(401, { error: { code: "token_not_valid", message: "Expired." } });
  };
  const tokens = memoryTokenStore({ access: "a1", refresh: "r1" });
  const rf = createRaptorFlowClient({ baseUrl: BASE, tokens, fetch });

  const answers = await Promise.all([1, 2, 3].map(() => rf.api.GET("/api/auth/me")));

  assert.deepEqual(
    answers.map((a) => a.response.status),
    [200, 200, 200],
  );
  assert.equal(refreshes, 1);
  assert.deepEqual(await tokens.get(), { access: "a2", refresh: "r2" });
});

test("losing a refresh race to another tab uses the winner's tokens instead of signing out", async () => {
  const tokens = memoryTokenStore({ access: "a1", refresh: "r1" });
  let signedOut = false;
  const fetch = async (request: Request) => {
    if (new URL(request.url).pathname === "/api/auth/refresh") {
      await tokens.set({ access: "a2", refresh: "r2" }); // the other tab stored its rotation meanwhile
      return json(401, { error: { code: "refresh_token_reused", message: "Already used." } });
    }
    return request.headers.get("Authorization") === "Bearer a2"
      ? json(200, { user: {}, organization: {}, role: "owner" })
      : json(401, { error: { code: "token_not_valid", message: "Expired." } });
  };
  const rf = createRaptorFlowClient({ baseUrl: BASE, tokens, fetch, onSignOut: () => void (signedOut = true) });

  const { response } = await rf.api.GET("/api/auth/me");

  assert.equal(response.status, 200);
  assert.equal(signedOut, false);
});

test("a refused refresh token clears the tokens and signs out", async () => {
  const tokens = memoryTokenStore({ access: "a1", refresh: "r1" });
  let signedOut = false;
  const fetch = async (request: Request) =>
    new URL(request.url).pathname === "/api/auth/refresh"
      ? json(401, { error: { code: "token_not_valid", message: "Token is invalid or expired." } })
      : json(401, { error: { code: "token_not_valid", message: "Expired." } });
  const rf = createRaptorFlowClient({ baseUrl: BASE, tokens, fetch, onSignOut: () => void (signedOut = true) });

  const { error, response } = await rf.api.GET("/api/auth/me");

  assert.equal(response.status, 401);
  assert.equal(error?.error.code, "token_not_valid");
  assert.equal(signedOut, true);
  assert.equal(await tokens.get(), null);
});

test("a server error while refreshing keeps the session", async () => {
  const tokens = memoryTokenStore({ access: "a1", refresh: "r1" });
  const fetch = async (request: Request) =>
    new URL(request.url).pathname === "/api/auth/refresh"
      ? json(503, { error: { code: "unavailable", message: "Try again." } })
      : json(401, { error: { code: "token_not_valid", message: "Expired." } });
  const rf = createRaptorFlowClient({ baseUrl: BASE, tokens, fetch });

  await assert.rejects(rf.api.GET("/api/auth/me"), (error: unknown) => error instanceof RaptorFlowError && error.status === 503);
  assert.deepEqual(await tokens.get(), { access: "a1", refresh: "r1" });
});
