import type { components } from "./schema.js";

type ErrorDetail = components["schemas"]["ErrorDetail"];

/**
 * Every error the API answers, in its one shape (`{"error": {code, message, fields?}}`),
 * plus what the client itself reports (a network failure, a stream cut short).
 */
export class RaptorFlowError extends Error {
  override readonly name = "RaptorFlowError";
  /** The HTTP status; 0 when no response arrived. */
  readonly status: number;
  /** Stable machine-readable code, e.g. `validation_error`, `not_found`, `quota_exceeded`. */
  readonly code: string;
  /** Validation errors by field name (400). */
  readonly fields: Record<string, string[]>;
  /** The whole error object as the server sent it (`limit`, `resets_at`, `quota`, `providers`…). */
  readonly detail: ErrorDetail | undefined;
  /** Seconds to wait before retrying (429), from the Retry-After header. */
  readonly retryAfter: number | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { fields?: Record<string, string[]>; detail?: ErrorDetail; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.code = code;
    this.fields = options.fields ?? {};
    this.detail = options.detail;
    this.retryAfter = options.retryAfter;
  }

  /** The error a non-2xx response stands for (its body is read here). */
  static async fromResponse(response: Response): Promise<RaptorFlowError> {
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      body = undefined;
    }
    return RaptorFlowError.fromBody(response, body);
  }

  /** The error of a response whose body was already parsed (openapi-fetch's `error`). */
  static fromBody(response: Response, body: unknown): RaptorFlowError {
    const retryAfterHeader = response.headers.get("Retry-After");
    const retryAfter = retryAfterHeader === null ? undefined : Number(retryAfterHeader);
    const detail = isErrorBody(body) ? body.error : undefined;
    if (detail === undefined) {
      return new RaptorFlowError(response.status, `http_${response.status}`, response.statusText || "Request failed", {
        retryAfter,
      });
    }
    return new RaptorFlowError(response.status, detail.code, detail.message, {
      fields: detail.fields,
      detail,
      retryAfter,
    });
  }
}

function isErrorBody(body: unknown): body is { error: ErrorDetail } {
  if (typeof body !== "object" || body === null || !("error" in body)) return false;
  const error = (body as { error: unknown }).error;
  return typeof error === "object" && error !== null && "code" in error && "message" in error;
}

/** The result of an openapi-fetch call: `data`, or a RaptorFlowError thrown for `error`. */
export async function unwrap<D, E>(
  call: Promise<{ data?: D; error?: E; response: Response }>,
): Promise<Exclude<D, undefined>> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) {
    throw RaptorFlowError.fromBody(response, error);
  }
  return data as Exclude<D, undefined>;
}
