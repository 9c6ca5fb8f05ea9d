/** One SSE event as a client sees it. */
export interface SseEvent {
  id?: string;
  data: string;
}

/** Parses SSE text the way EventSource does (comments skipped, CRLF/LF/CR line ends). */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of text.split(/\r\n\r\n|\n\n|\r\r/)) {
    if (block.trim() === '') continue;
    const event: SseEvent = { data: '' };
    const data: string[] = [];
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      if (field === 'id') event.id = value;
    }
    if (data.length === 0) continue;
    event.data = data.join('\n');
    events.push(event);
  }
  return events;
}

/** The UI message stream parts (JSON) of an SSE body, without the closing [DONE]. */
export function parseParts(text: string): Array<Record<string, unknown>> {
  return parseSse(text)
    .filter((event) => event.data !== '[DONE]')
    .map((event) => JSON.parse(event.data) as Record<string, unknown>);
}

/** The reply text a client rebuilds from the text-delta parts. */
export function rebuildText(text: string): string {
  return parseParts(text)
    .filter((part) => part.type === 'text-delta')
    .map((part) => part.delta as string)
    .join('');
}

/** Reads a fetch response body to the end as text. */
export async function readAll(response: Response): Promise<string> {
  return await response.text();
}
