import type { Response } from 'express';
import { AppError } from '../errors/app-error';
import { ownerOf } from './authenticate';

/** Counts `response` as one of its API key's open event streams until it closes, or refuses it. */
export type StreamAdmission = (response: Response) => void;

/**
 * At most `maxPerKey` event streams (POST streams and resumes together) open at once for each API
 * key. A stream counts from its admission until its response closes, which for a reply that has
 * ended is when its reader has taken the rest (or been disconnected as too slow): opening streams
 * and never reading them would otherwise hold connections, and the replies behind them, without end.
 * The returned function throws AppError rate_limited, with Retry-After, when the key is at its limit.
 */
export function openStreamLimit(maxPerKey: number): StreamAdmission {
  const openByKey = new Map<string, number>();
  const release = (key: string) => {
    const open = (openByKey.get(key) ?? 1) - 1;
    if (open > 0) openByKey.set(key, open);
    else openByKey.delete(key);
  };
  return (response) => {
    // Its client has already gone: nothing will be held open, and its 'close' will not come again.
    if (response.destroyed) return;
    const key = ownerOf(response);
    const open = openByKey.get(key) ?? 0;
    if (open >= maxPerKey) {
      throw new AppError('rate_limited', `Too many event streams are open for this API key (at most ${maxPerKey}); close one first.`, {
        retryAfterSeconds: 1,
      });
    }
    openByKey.set(key, open + 1);
    response.once('close', () => release(key));
  };
}
