import { existsSync } from 'node:fs';
import path from 'node:path';
import express, { Router, type Response } from 'express';
import { AppError } from '../errors/app-error';

/**
 * The page's own policy: its scripts, styles and fonts come from this service only (no inline
 * script, nothing remote), it talks to this service only, and it shows no remote image, so a
 * model's reply rendered as Markdown can neither run script nor load anything from elsewhere.
 * The API's responses keep their stricter `default-src 'none'` (security.ts).
 */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

/** A year: the assets' names carry a hash of their content, so a new build is new names. */
const YEAR_MS = 365 * 24 * 3600 * 1000;

/**
 * The chat page (web/, built by `npm run build` into `directory`): `GET /` and its hashed assets.
 * The page itself is revalidated on every load, so a deploy shows at once; its assets are cached
 * for good. Without a build, `GET /` says how to make one.
 */
export function webPage(directory: string): Router {
  const router = Router();
  const index = path.join(directory, 'index.html');
  const pageHeaders = (response: Response) => {
    response.setHeader('content-security-policy', PAGE_CSP);
    // The page may load its own assets, which the API's same-origin policy allows anyway.
    response.setHeader('cross-origin-resource-policy', 'same-origin');
  };
  router.get(['/', '/index.html'], (_request, response) => {
    if (!existsSync(index)) throw new AppError('not_found', 'The web page is not built: run `npm run build`.');
    pageHeaders(response);
    response.setHeader('cache-control', 'no-cache');
    response.sendFile(index);
  });
  router.use(
    '/assets',
    express.static(path.join(directory, 'assets'), {
      index: false,
      maxAge: YEAR_MS,
      immutable: true,
      setHeaders: (response) => pageHeaders(response as unknown as Response),
    }),
  );
  return router;
}
