import createClient, { type Client } from "openapi-fetch";

import { RaptorFlowError, unwrap } from "./errors.js";
import { paginate } from "./paginate.js";
import type { components, paths } from "./schema.js";
import { type ReplyStream, replyStream } from "./stream.js";
import type { TokenPair, TokenStore } from "./tokens.js";

type Schemas = components["schemas"];
export type TokenResponse = Schemas["TokenResponse"];
export type ReplyInput = Omit<Schemas["ReplyInputRequest"], "stream">;

export interface RaptorFlowClientOptions {
  /** The API's origin, e.g. `https://api.yourdomain.com` (no trailing `/api`). */
  baseUrl: string;
  /** Where the tokens live (memoryTokenStore on the server, localStorageTokenStore in the browser). */
  tokens: TokenStore;
  /** Called after the session ended because its refresh token no longer works. */
  onSignOut?: () => void | Promise<void>;
  /** A fetch to use instead of the global one (Next.js's extended fetch, a test double). */
  fetch?: (request: Request) => Promise<Response>;
  /** How many times a cut reply stream is resumed (default 3). */
  maxStreamResumes?: number;
}

export interface RaptorFlowClient {
  /** Every endpoint, typed from the schema: `api.GET("/api/conversations", …)`. */
  api: Client<paths>;
  /** fetch with the access token attached and refreshed once on a 401 (for what `api` cannot express). */
  fetch: (request: Request) => Promise<Response>;
  /** Signs in with the ID token `@react-oauth/google` hands over; stores the tokens. */
  signInWithGoogleIdToken(idToken: string): Promise<TokenResponse>;
  /** The Google authorization URL of the redirect flow (state is kept by the server). */
  startGoogleSignIn(): Promise<Schemas["GoogleLoginOutput"]>;
  /** Completes the redirect flow with the `code` and `state` Google sent back; stores the tokens. */
  completeGoogleSignIn(params: { code: string; state: string }): Promise<TokenResponse>;
  /** Revokes the session on the server (best effort) and forgets the tokens. */
  signOut(): Promise<void>;
  /** A reply generated as server-sent events: `for await (const event of streamReply(…))`. */
  streamReply(conversationId: string, input: ReplyInput, options?: { idempotencyKey?: string; signal?: AbortSignal }): ReplyStream;
  /** Resumes a reply's events after `lastEventId` (on another page load, say). */
  resumeReply(conversationId: string, replyId: string, lastEventId?: string, options?: { signal?: AbortSignal }): ReplyStream;
  /** Every item of a cursor-paginated list; see paginate(). */
  paginate: typeof paginate;
}

const AUTH_ENDPOINTS_WITHOUT_REFRESH = ["/api/auth/refresh", "/api/auth/google/token", "/api/auth/google/callback"];

/**
 * The client of the RaptorFlow API. Requests carry the stored access token; a 401 on a
 * request that carried one refreshes the tokens once and repeats the request. Concurrent
 * 401s share one refresh (the server accepts each refresh token once). When the refresh
 * token is refused the tokens are cleared and `onSignOut` runs — except when another tab
 * already rotated it (401 `refresh_token_reused` within the server's grace period) and
 * left newer tokens in a shared store: those are used instead.
 */
export function createRaptorFlowClient(options: RaptorFlowClientOptions): RaptorFlowClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const store = options.tokens;
  const send = (request: Request) => (options.fetch ?? globalThis.fetch)(request);
  let refreshing: Promise<string | null> | null = null;

  async function endSession(): Promise<void> {
    await store.clear();
    await options.onSignOut?.();
  }

  async function refresh(): Promise<string | null> {
    const tokens = await store.get();
    if (!tokens) return null;
    const response = await send(
      new Request(`${baseUrl}/api/auth/refresh`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ refresh: tokens.refresh }),
      }),
    );
    if (response.ok) {
      const pair = (await response.json()) as TokenPair;
      await store.set({ access: pair.access, refresh: pair.refresh });
      return pair.access;
    }
    if (response.status === 401 || response.status === 400) {
      const error = await RaptorFlowError.fromResponse(response);
      const now = await store.get();
      if (error.code === "refresh_token_reused" && now && now.refresh !== tokens.refresh) {
        return now.access; // another tab won the rotation and stored its tokens
      }
      await endSession();
      return null;
    }
    // 429, 5xx: the session may still be good; this request fails, the tokens stay.
    throw await RaptorFlowError.fromResponse(response);
  }

  /** One refresh at a time: every caller waiting for it gets its outcome. */
  function refreshOnce(): Promise<string | null> {
    refreshing ??= refresh().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  async function authorizedFetch(request: Request): Promise<Response> {
    const tokens = await store.get();
    const path = new URL(request.url).pathname;
    if (!tokens || AUTH_ENDPOINTS_WITHOUT_REFRESH.includes(path)) return send(request);
    const again = request.clone();
    const first = new Request(request, { headers: withBearer(request.headers, tokens.access) });
    const response = await send(first);
    if (response.status !== 401) return response;
    const current = await store.get();
    const access = current && current.access !== tokens.access ? current.access : await refreshOnce();
    if (access === null) return response;
    await response.body?.cancel();
    return send(new Request(again, { headers: withBearer(again.headers, access) }));
  }

  const api = createClient<paths>({ baseUrl, fetch: authorizedFetch });

  async function signedIn(call: Promise<TokenResponse>): Promise<TokenResponse> {
    const body = await call;
    await store.set({ access: body.access, refresh: body.refresh });
    return body;
  }

  function eventStream(open: () => Promise<Response>, conversationId: string, signal?: AbortSignal): ReplyStream {
    return replyStream({
      open,
      maxResumes: options.maxStreamResumes ?? 3,
      resume: (state) =>
        state.replyId === undefined || state.lastEventId === undefined
          ? null
          : authorizedFetch(eventsRequest(conversationId, state.replyId, state.lastEventId, signal)),
    });
  }

  function eventsRequest(conversationId: string, replyId: string, lastEventId: string | undefined, signal?: AbortSignal) {
    const headers: Record<string, string> = { Accept: "text/event-stream, application/json" };
    if (lastEventId !== undefined) headers["Last-Event-ID"] = lastEventId;
    const url = `${baseUrl}/api/conversations/${encodeURIComponent(conversationId)}/replies/${encodeURIComponent(replyId)}/events`;
    return new Request(url, { headers, signal });
  }

  return {
    api,
    fetch: authorizedFetch,
    signInWithGoogleIdToken: (idToken) =>
      signedIn(unwrap(api.POST("/api/auth/google/token", { body: { id_token: idToken } }))),
    startGoogleSignIn: () => unwrap(api.GET("/api/auth/google/login")),
    completeGoogleSignIn: (params) =>
      signedIn(unwrap(api.GET("/api/auth/google/callback", { params: { query: params } }))),
    async signOut() {
      const tokens = await store.get();
      try {
        if (tokens) await api.POST("/api/auth/logout", { body: { refresh: tokens.refresh } });
      } finally {
        await store.clear();
      }
    },
    streamReply(conversationId, input, streamOptions = {}) {
      // JSON too: an error before the stream starts (400, 402, 503…) is answered as JSON.
      const headers: Record<string, string> = {
        "Content-Type": "application/json",
        Accept: "text/event-stream, application/json",
      };
      if (streamOptions.idempotencyKey) headers["Idempotency-Key"] = streamOptions.idempotencyKey;
      const url = `${baseUrl}/api/conversations/${encodeURIComponent(conversationId)}/reply`;
      const open = () =>
        authorizedFetch(
          new Request(url, {
            method: "POST",
            headers,
            body: JSON.stringify({ ...input, stream: true }),
            signal: streamOptions.signal,
          }),
        );
      return eventStream(open, conversationId, streamOptions.signal);
    },
    resumeReply(conversationId, replyId, lastEventId, resumeOptions = {}) {
      const open = () => authorizedFetch(eventsRequest(conversationId, replyId, lastEventId, resumeOptions.signal));
      return eventStream(open, conversationId, resumeOptions.signal);
    },
    paginate,
  };
}

function withBearer(headers: Headers, access: string): Headers {
  const next = new Headers(headers);
  next.set("Authorization", `Bearer ${access}`);
  return next;
}
