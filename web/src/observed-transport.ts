import { DefaultChatTransport, type UIMessageChunk } from 'ai';
import type { ChatMessage } from './api-client';

type Options = NonNullable<ConstructorParameters<typeof DefaultChatTransport<ChatMessage>>[0]>;

/**
 * The AI SDK's DefaultChatTransport, unchanged, that also reports each stream's `abort` part:
 * useChat drops it, and it is the only sign that the service stopped a reply (cancelled by a
 * DELETE from anywhere, or cut by a shutdown) rather than finished it.
 */
export class ObservedTransport extends DefaultChatTransport<ChatMessage> {
  readonly #onAbortPart: (reason: string | undefined) => void;

  constructor(options: Options, onAbortPart: (reason: string | undefined) => void) {
    super(options);
    this.#onAbortPart = onAbortPart;
  }

  protected override processResponseStream(stream: ReadableStream<Uint8Array>): ReadableStream<UIMessageChunk> {
    const onAbortPart = this.#onAbortPart;
    return super.processResponseStream(stream).pipeThrough(
      new TransformStream<UIMessageChunk, UIMessageChunk>({
        transform(chunk, controller) {
          if (chunk.type === 'abort') onAbortPart(chunk.reason);
          controller.enqueue(chunk);
        },
      }),
    );
  }
}
