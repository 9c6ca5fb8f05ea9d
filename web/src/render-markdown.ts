import DOMPurify from 'dompurify';
import { Marked } from 'marked';

const markdown = new Marked({ gfm: true, async: false });

/** What Markdown makes, and nothing else: no forms, frames, media, styles or SVG. */
const ALLOWED_TAGS = [
  'a', 'b', 'blockquote', 'br', 'caption', 'code', 'col', 'colgroup', 'dd', 'del', 'details', 'div', 'dl', 'dt', 'em',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'img', 'input', 'kbd', 'li', 'mark', 'ol', 'p', 'pre', 's', 'span',
  'strong', 'sub', 'summary', 'sup', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'ul',
];
const ALLOWED_ATTR = ['align', 'alt', 'checked', 'class', 'colspan', 'disabled', 'href', 'rowspan', 'src', 'start', 'title', 'type'];
const LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);
// Only pictures carried in the reply itself; anything else would be a request to elsewhere.
const INLINE_IMAGE = /^data:image\/(?:png|gif|jpeg|webp);base64,/i;

function createSanitizer() {
  const purify = DOMPurify(window);
  // After DOMPurify's own checks (event handlers gone, `javascript:` and other unsafe URIs gone).
  purify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A') {
      const href = node.getAttribute('href');
      if (href !== null && !isSafeLink(href)) node.removeAttribute('href');
      if (node.hasAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer');
      }
    } else if (node.tagName === 'IMG') {
      if (!INLINE_IMAGE.test(node.getAttribute('src') ?? '')) {
        const alt = node.getAttribute('alt');
        node.replaceWith(document.createTextNode(alt ? `[image: ${alt}]` : ''));
      }
    } else if (node.tagName === 'INPUT') {
      // Task list boxes only, and not to be ticked.
      if (node.getAttribute('type') === 'checkbox') node.setAttribute('disabled', '');
      else node.remove();
    }
    // Classes are for code languages only: a reply must not borrow the page's own looks.
    const className = node.getAttribute('class');
    if (className !== null && !/^language-[\w+-]+$/.test(className)) node.removeAttribute('class');
  });
  return purify;
}

function isSafeLink(href: string): boolean {
  try {
    return LINK_PROTOCOLS.has(new URL(href, window.location.href).protocol);
  } catch {
    return false;
  }
}

let sanitizer: ReturnType<typeof createSanitizer> | undefined;

/**
 * A reply's Markdown as HTML that is safe to insert: nothing in it can run script, load anything
 * from elsewhere (remote images are replaced by their alt text), or navigate this page (links
 * open in a new tab, without opener or referrer; other than http(s) and mailto they are dropped).
 */
export function renderMarkdown(text: string): string {
  sanitizer ??= createSanitizer();
  const html = markdown.parse(text) as string;
  return sanitizer.sanitize(html, { ALLOWED_TAGS, ALLOWED_ATTR, ALLOW_DATA_ATTR: false, ALLOW_ARIA_ATTR: false });
}
