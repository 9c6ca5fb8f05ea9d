import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Readable } from 'node:stream';
import { drainBody } from '../../src/llm/drain-body';
import { TSX_LOADER } from '../support/server-process';

/** A body made by `source`, which records how many bytes it gave and whether it was destroyed. */
function trackedBody(source: (give: (byteCount: number) => void, body: Readable) => void) {
  const seen = { bytes: 0, destroyed: false };
  // Not destroyed by itself once ended: only drainBody may destroy it.
  const body = new Readable({
    autoDestroy: false,
    read() {
      source((byteCount) => {
        seen.bytes += byteCount;
        this.push(Buffer.alloc(byteCount));
      }, this);
    },
    destroy(error, callback) {
      seen.destroyed = true;
      callback(error);
    },
  });
  return { body, seen };
}

describe('drainBody', () => {
  test('reads a body that ends to its end, without destroying it', async () => {
    let pulls = 0;
    const { body, seen } = trackedBody((give, stream) => {
      pulls += 1;
      if (pulls <= 3) give(100);
      else stream.push(null);
    });
    await drainBody(body, { timeoutMs: 10_000, maxBytes: 1024 });
    expect(seen).toEqual({ bytes: 300, destroyed: false });
  });

  test('drops a body that stays open, after timeoutMs', async () => {
    const { body, seen } = trackedBody(() => {});
    const started = Date.now();
    await drainBody(body, { timeoutMs: 100, maxBytes: 1024 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(seen).toEqual({ bytes: 0, destroyed: true });
  });

  test('drops a body that keeps sending, once past maxBytes', async () => {
    const { body, seen } = trackedBody((give) => give(1024));
    await drainBody(body, { timeoutMs: 10_000, maxBytes: 64 * 1024 });
    expect(seen.destroyed).toBe(true);
    // What was read, plus what the stream buffered ahead.
    expect(seen.bytes).toBeLessThanOrEqual(64 * 1024 + 32 * 1024);
  });

  test('resolves when the body fails', async () => {
    const { body } = trackedBody((_give, stream) => stream.destroy(new Error('socket hang up')));
    await expect(drainBody(body, { timeoutMs: 10_000, maxBytes: 1024 })).resolves.toBeUndefined();
  });

  test('does not keep the process alive while it waits', () => {
    // A body that never ends holds nothing open by itself; only the drain's timer could.
    const script = `require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'llm', 'drain-body.ts'))})
      .drainBody(new (require('node:stream').Readable)({ read() {} }), { timeoutMs: 60000, maxBytes: 1024 });`;
    const started = Date.now();
    const child = spawnSync(process.execPath, ['--import', TSX_LOADER, '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect({ status: child.status, stderr: child.stderr }).toEqual({ status: 0, stderr: '' });
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
