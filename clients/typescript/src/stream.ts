import { RaptorFlowError } from "./errors.js";
import type { components } from "./schema.js";
import { readServerSentEvents } from "./sse.js";

/** One event of a streamed reply: `context`, `delta`…, then `done` or `error`. */
export type ReplyEvent = components["schemas"]["ReplyEvent"];
export type ReplyEventName = ReplyEvent["event"];
export type ReplyEventOf<N extends ReplyEventName> = Extract<ReplyEvent, { event: N }>;

const EVENT_NAMES: ReadonlySet<string> = new Set<ReplyEventName>(["context", "delta", "done", "error"]);

/** What a streamed reply knows of itself while it is read, for resuming it elsewhere. */
export interface ReplyStreamState {
  /** The reply's id (`X-Reply-Id`), once the server has sent it. */
  replyId: string | undefined;
  /** The id of the last event read (`id:`), once the server numbers its events. */
  lastEventId: string | undefined;
  /** True once `done` or `error` has been read. */
  finished: boolean;
}

export interface ReplyStream extends AsyncIterable<ReplyEvent>, ReplyStreamState {}

/** Opens (or re-opens) the event stream: the first response, then a resume from an event id. */
export interface ReplyStreamSource {
  open(): Promise<Response>;
  /** The resume request, or null when there is nothing to resume from. */
  resume(state: ReplyStreamState): Promise<Response> | null;
  /** How many times a stream cut short may be resumed. */
  maxResumes: number;
}

/**
 * Typed events from a reply's event stream. A stream that breaks before `done`/`error`
 * is resumed from the last event id when the server numbers its events and tells the
 * reply's id; where it cannot (no id yet, or the resume endpoint answers 404), the
 * stream ends with a RaptorFlowError `stream_interrupted` — the reply itself is kept by
 * the server (a partial one as `incomplete`) and can be read with the message list.
 */
export function replyStream(source: ReplyStreamSource): ReplyStream {
  const state: ReplyStreamState = { replyId: undefined, lastEventId: undefined, finished: false };

  async function* events(): AsyncGenerator<ReplyEvent> {
    let response = await source.open();
    let resumes = 0;
    for (;;) {
      if (!response.ok) {
        if (resumes > 0 && response.status === 404) throw interrupted(state);
        throw await RaptorFlowError.fromResponse(response);
      }
      state.replyId = response.headers.get("X-Reply-Id") ?? state.replyId;
      if (!response.body) throw interrupted(state);
      try {
        for await (const raw of readServerSentEvents(response.body)) {
          if (!EVENT_NAMES.has(raw.event)) continue;
          if (raw.id !== undefined) state.lastEventId = raw.id;
          const event = {
            event: raw.event,
            data: JSON.parse(raw.data) as unknown,
            ...(raw.id === undefined ? {} : { id: raw.id }),
          } as ReplyEvent;
          if (event.event === "done" || event.event === "error") state.finished = true;
          yield event;
          if (state.finished) return;
        }
      } catch (error) {
        if (error instanceof RaptorFlowError) throw error;
        // A cut connection: resumed below when possible.
      }
      if (state.finished) return;
      const next = resumes < source.maxResumes ? source.resume(state) : null;
      if (next === null) throw interrupted(state);
      resumes += 1;
      response = await next;
    }
  }

  const iterator = events();
  return Object.assign(state, {
    [Symbol.asyncIterator]: () => iterator,
  });
}

function interrupted(state: ReplyStreamState): RaptorFlowError {
  return new RaptorFlowError(0, "stream_interrupted", "The reply's event stream ended before `done` or `error`.", {
    detail: { code: "stream_interrupted", message: `reply ${state.replyId ?? "(no id)"}` },
  });
}
