import type { ReplyMetadata } from './api-client';
import type { ReplyStatus } from './reply-status';

const milliseconds = (value: number | null | undefined) =>
  value == null ? '—' : value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(value < 10_000 ? 2 : 1)} s`;

/** A reply's facts, on demand: tokens, time to first token, duration, model, status. */
export function ReplyDetails({ metadata, status }: { metadata: ReplyMetadata | undefined; status: ReplyStatus | undefined }) {
  const usage = metadata?.usage;
  const tokens = usage
    ? `${usage.promptTokens} prompt + ${usage.completionTokens} reply = ${usage.totalTokens}${metadata?.usageEstimated ? ' (estimated)' : ''}`
    : '—';
  return (
    <details className="reply-details">
      <summary>Details</summary>
      <dl>
        <dt>Status</dt>
        <dd>{status ?? '—'}</dd>
        <dt>Tokens</dt>
        <dd>{tokens}</dd>
        <dt>First token after</dt>
        <dd>{milliseconds(metadata?.timeToFirstTokenMs)}</dd>
        <dt>Duration</dt>
        <dd>{milliseconds(metadata?.durationMs)}</dd>
        {metadata?.model && (
          <>
            <dt>Model</dt>
            <dd>{metadata.model}</dd>
          </>
        )}
        {metadata?.finishReason && (
          <>
            <dt>Finish reason</dt>
            <dd>{metadata.finishReason}</dd>
          </>
        )}
      </dl>
    </details>
  );
}
