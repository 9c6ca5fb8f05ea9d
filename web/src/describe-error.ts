import { ApiError } from './api-error';

function wait(seconds: number): string {
  if (seconds < 90) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  return `${Math.ceil(seconds / 60)} minutes`;
}

/** An error from the API, the network or a reply's stream, in words for the person using the page. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const { status, message } = error;
    if (status === 401) return `Your API key is missing or was refused: ${message} Enter a valid key.`;
    if (error.code === 'generation_in_progress') return `${message} It is shown here as it arrives; wait for its end, or stop it.`;
    if (status === 429) {
      const retry = error.retryAfterSeconds === undefined ? 'Try again in a moment.' : `Try again in ${wait(error.retryAfterSeconds)}.`;
      return `Too many requests (rate limit): ${message} ${retry}`;
    }
    if (status === 502) return `The model provider failed: ${message} Try again.`;
    if (status === 504) return `The model provider did not answer in time: ${message} Try again.`;
    if (status === 503) return `The service is unavailable for now: ${message} Try again shortly.`;
    if (status >= 500) return `The service failed: ${message}`;
    return message;
  }
  // fetch() rejects with a TypeError when the service cannot be reached or the connection drops.
  if (error instanceof TypeError) return 'Could not reach the service. Check your connection, then reload the chat.';
  // An `error` part of the reply's stream: its errorText.
  if (error instanceof Error) return `The reply failed: ${error.message}`;
  return 'Something went wrong.';
}
