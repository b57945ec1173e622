// A Next.js-style use of the installed tarball: type-checked by scripts/e2e.sh in a scratch
// project that depends on nothing but @raptorflow/client. The seed's calls are written as
// the seed writes them.
import {
  createRaptorFlowClient,
  localStorageTokenStore,
  memoryTokenStore,
  RaptorFlowError,
  type components,
  type ReplyEventOf,
  unwrap,
} from "@raptorflow/client";

export async function seedFlows(baseUrl: string, jwtToken: string, refresh: string): Promise<void> {
  const rf = createRaptorFlowClient({ baseUrl, tokens: memoryTokenStore({ access: jwtToken, refresh }) });

  const conversation = await unwrap(
    rf.api.POST("/api/conversations", { body: { title: "Q4 Marketing Strategy", agent_type: "strategy" } }),
  );
  const message = await unwrap(
    rf.api.POST("/api/conversations/{id}/messages", {
      params: { path: { id: conversation.id } },
      body: { role: "user", content: "What should be our Q4 focus?" },
    }),
  );
  await unwrap(
    rf.api.POST("/api/search/embed-and-store", {
      body: { message_id: message.id, conversation_id: conversation.id, text: "What should be our Q4 focus?" },
    }),
  );
  // The seed's semantic-search body, exactly: {query, limit}.
  const hits = await unwrap(
    rf.api.POST("/api/search/semantic-search", {
      params: { query: { conversation_id: conversation.id } },
      body: {
        query: "budget allocation",
        limit: 5,
      },
    }),
  );
  const similarity: number = hits.results[0]?.similarity ?? 0;

  for await (const event of rf.streamReply(conversation.id, { content: "Draft three subject lines." })) {
    if (event.event === "delta") console.log(event.data.text);
    if (event.event === "done") {
      const done: ReplyEventOf<"done"> = event;
      const reply: components["schemas"]["Message"] = done.data.message;
      console.log(reply.content, similarity);
    }
  }
  for await (const c of rf.paginate((cursor) => rf.api.GET("/api/conversations", { params: { query: { cursor } } }))) {
    const title: string = c.title;
    console.log(title);
  }
  try {
    await unwrap(rf.api.PATCH("/api/conversations/{id}", { params: { path: { id: conversation.id } }, body: { title: "" } }));
  } catch (error) {
    if (error instanceof RaptorFlowError) console.log(error.status, error.code, error.fields.title);
  }
}

export function browserClient(): void {
  const rf = createRaptorFlowClient({ baseUrl: "https://api.example.com", tokens: localStorageTokenStore() });
  void rf.signInWithGoogleIdToken("id-token-from-react-oauth-google");
}
