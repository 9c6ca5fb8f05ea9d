import { useLayoutEffect, useRef } from 'react';

/** Keeps a scrolling element at its bottom as `content` grows, unless the reader scrolled up. */
export function useStickToBottom<T extends HTMLElement>(content: unknown) {
  const element = useRef<T>(null);
  const atBottom = useRef(true);
  useLayoutEffect(() => {
    const target = element.current;
    if (!target) return;
    const follow = () => {
      atBottom.current = target.scrollHeight - target.scrollTop - target.clientHeight < 48;
    };
    target.addEventListener('scroll', follow, { passive: true });
    return () => target.removeEventListener('scroll', follow);
  }, []);
  useLayoutEffect(() => {
    const target = element.current;
    if (target && atBottom.current) target.scrollTop = target.scrollHeight;
  }, [content]);
  return element;
}
