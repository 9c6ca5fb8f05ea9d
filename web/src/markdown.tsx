import { useMemo } from 'react';
import { renderMarkdown } from './render-markdown';

/** A reply's Markdown, sanitized (render-markdown.ts): the one place HTML is set directly. */
export function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  return <div className="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}
