/** A refusal from the API: its HTTP status and the `{ error: { code, message } }` of its body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** From `Retry-After`, when the API says how long to wait. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** Reads a response that is not ok; never throws. */
  static async from(response: Response): Promise<ApiError> {
    let code = `http_${response.status}`;
    let message = response.statusText || `The service answered ${response.status}.`;
    try {
      const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
      if (typeof body.error?.code === 'string') code = body.error.code;
      if (typeof body.error?.message === 'string') message = body.error.message;
    } catch {
      // Not JSON (a proxy's HTML page): the status says enough.
    }
    return new ApiError(response.status, code, message, retryAfterSeconds(response.headers.get('retry-after')));
  }
}

/** `Retry-After` is either seconds or an HTTP date. */
function retryAfterSeconds(header: string | null): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** Codes after which the service stored nothing of the turn (the question may be sent again). */
export const NOTHING_STORED = new Set([
  'unauthorized',
  'invalid_request',
  'invalid_json',
  'context_too_long',
  'generation_in_progress',
  'message_id_conflict',
  'payload_too_large',
  'rate_limited',
  'chat_not_found',
]);
