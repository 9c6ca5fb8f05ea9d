import type { IncomingMessage } from 'node:http';
import type { TraceContext } from '../chat/ports';

/**
 * A `traceparent` of version 00 (W3C Trace Context): trace id and parent id, lowercase hex, not
 * all zeros. A later version may carry more fields after the flags; its first four are read alike.
 */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Longest `tracestate` passed on: 32 members of the common size; a longer one is dropped, as the spec allows. */
const MAX_TRACESTATE_LENGTH = 512;

/**
 * The client's trace context, when its `traceparent` is well formed; else undefined (the
 * specification says to start afresh rather than pass on what cannot be read). The service does
 * not trace by itself: it passes the context on to the upstream request as it came, so the
 * provider's side joins the client's trace, and logs it.
 */
export function traceContextOf(request: IncomingMessage): TraceContext | undefined {
  const traceparent = request.headers.traceparent;
  if (typeof traceparent !== 'string') return undefined;
  const fields = TRACEPARENT.exec(traceparent.trim());
  if (!fields) return undefined;
  const [, version, traceId, parentId, , rest] = fields as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) return undefined;
  const tracestate = request.headers.tracestate;
  const state = typeof tracestate === 'string' && tracestate.length <= MAX_TRACESTATE_LENGTH && /^[\x20-\x7e]*$/.test(tracestate) ? tracestate.trim() : '';
  return state ? { traceparent: fields[0], tracestate: state } : { traceparent: fields[0] };
}

/** The trace id of a context (its second field), as logs and trace backends name it. */
export function traceIdOf(context: TraceContext): string {
  return context.traceparent.slice(3, 35);
}
