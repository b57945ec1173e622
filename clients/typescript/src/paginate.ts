import { RaptorFlowError } from "./errors.js";

/** A page of a cursor-paginated list, as every list endpoint answers it. */
export interface Page<T> {
  next: string | null;
  previous?: string | null;
  results: T[];
}

type PageCall<T> = (cursor: string | undefined) => Promise<{
  data?: Page<T>;
  error?: unknown;
  response: Response;
}>;

/**
 * Every item of a cursor-paginated list, page after page, until `next` is null.
 *
 *     for await (const conversation of paginate((cursor) =>
 *       api.GET("/api/conversations", { params: { query: { cursor, page_size: 100 } } }))) { … }
 *
 * The call is typed by the endpoint it names; the next page's cursor is taken from `next`.
 * A failed page throws RaptorFlowError.
 */
export async function* paginate<T>(call: PageCall<T>): AsyncGenerator<T, void, undefined> {
  let cursor: string | undefined;
  for (;;) {
    const { data, error, response } = await call(cursor);
    if (error !== undefined || data === undefined || !response.ok) {
      throw RaptorFlowError.fromBody(response, error);
    }
    yield* data.results;
    if (!data.next) return;
    const next = new URL(data.next).searchParams.get("cursor");
    if (!next || next === cursor) return;
    cursor = next;
  }
}
