import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { drainBody } from '../../src/llm/drain-body';
import { TSX_LOADER } from '../support/server-process';

/** A body made by `source`, which records how many bytes it gave and whether it was cancelled. */
function trackedBody(source: (give: (byteCount: number) => void, controller: ReadableStreamDefaultController<Uint8Array>) => void) {
  const seen = { bytes: 0, cancelled: false };
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      source((byteCount) => {
        seen.bytes += byteCount;
        controller.enqueue(new Uint8Array(byteCount));
      }, controller);
    },
    cancel() {
      seen.cancelled = true;
    },
  });
  return { reader: body.getReader(), seen };
}

describe('drainBody', () => {
  test('reads a body that ends to its end, without cancelling it', async () => {
    let pulls = 0;
    const { reader, seen } = trackedBody((give, controller) => {
      pulls += 1;
      if (pulls <= 3) give(100);
      else controller.close();
    });
    await drainBody(reader, { timeoutMs: 10_000, maxBytes: 1024 });
    expect(seen).toEqual({ bytes: 300, cancelled: false });
  });

  test('cancels a body that stays open, after timeoutMs', async () => {
    const { reader, seen } = trackedBody(() => {});
    const started = Date.now();
    await drainBody(reader, { timeoutMs: 100, maxBytes: 1024 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(seen).toEqual({ bytes: 0, cancelled: true });
  });

  test('cancels a body that keeps sending, once past maxBytes', async () => {
    const { reader, seen } = trackedBody((give) => give(1024));
    await drainBody(reader, { timeoutMs: 10_000, maxBytes: 64 * 1024 });
    expect(seen.cancelled).toBe(true);
    // What was read, plus the one chunk the stream pulls ahead.
    expect(seen.bytes).toBeLessThanOrEqual(66 * 1024);
  });

  test('resolves when the body fails', async () => {
    const { reader } = trackedBody((give, controller) => controller.error(new Error('socket hang up')));
    await expect(drainBody(reader, { timeoutMs: 10_000, maxBytes: 1024 })).resolves.toBeUndefined();
  });

  test('does not keep the process alive while it waits', () => {
    // A body that never ends holds nothing open by itself; only the drain's timer could.
    const script = `require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'llm', 'drain-body.ts'))})
      .drainBody(new ReadableStream().getReader(), { timeoutMs: 60000, maxBytes: 1024 });`;
    const started = Date.now();
    const child = spawnSync(process.execPath, ['--import', TSX_LOADER, '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect({ status: child.status, stderr: child.stderr }).toEqual({ status: 0, stderr: '' });
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
