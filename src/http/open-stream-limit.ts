import type { Response } from 'express';
import { AppError } from '../errors/app-error';
import { ownerOf } from './authenticate';

/** Counts `response` as one of its API key's open event streams until it closes, or refuses it. */
export type StreamAdmission = (response: Response) => void | Promise<void>;

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
    if (open >= maxPerKey) throw tooManyStreams(maxPerKey);
    openByKey.set(key, open + 1);
    response.once('close', () => release(key));
  };
}

/**
 * The same limit counted across every instance (multi-instance mode): `takeSlot` takes one of the
 * key's slots in the shared store, or gives null when all are taken. A slot is given back when its
 * response closes, and lapses by itself if its instance dies.
 */
export function sharedStreamLimit(takeSlot: (ownerId: string, limit: number) => Promise<(() => void) | null>, maxPerKey: number): StreamAdmission {
  return async (response) => {
    if (response.destroyed) return;
    let closed = false;
    const onClose = () => (closed = true);
    response.once('close', onClose);
    const release = await takeSlot(ownerOf(response), maxPerKey).finally(() => response.off('close', onClose));
    if (!release) throw tooManyStreams(maxPerKey);
    if (closed) release();
    else response.once('close', release);
  };
}

function tooManyStreams(maxPerKey: number): AppError {
  return new AppError('rate_limited', `Too many event streams are open for this API key (at most ${maxPerKey}); close one first.`, {
    retryAfterSeconds: 1,
  });
}
