import path from 'node:path';
import express, { Router, type RequestHandler, type Response } from 'express';
import { DOCS_CSP, DOCS_HTML, DOCS_INITIALIZER } from './api-docs-page';
import { buildOpenApiDocument, type ApiDescriptionOptions } from './openapi-document';

/**
 * swagger-ui-dist's folder. Its `getAbsoluteFSPath()` would do, but requiring the package's index
 * also loads its 1.5 MB browser bundle into the server, for nothing.
 */
const SWAGGER_UI_DIRECTORY = path.dirname(require.resolve('swagger-ui-dist/package.json'));

/**
 * The files of swagger-ui-dist the page loads, and only those: the package also holds a demo page
 * and initializer that load the Petstore from another host.
 */
const SWAGGER_UI_FILES = new Set(['/swagger-ui.css', '/swagger-ui-bundle.js', '/favicon-32x32.png']);

/**
 * `GET /openapi.json`, the OpenAPI document of this app (built once, at its first request), and `GET /docs`, Swagger
 * UI on it, served from this service's own files. Both are public, like /healthz: mount them before
 * the key check.
 */
export function apiDocsRoutes(options: ApiDescriptionOptions): Router {
  const router = Router();
  // Built at the first request, not at start: most processes are never asked for it.
  let document: string | undefined;
  const pageHeaders = (response: Response) => {
    response.setHeader('content-security-policy', DOCS_CSP);
    response.setHeader('cache-control', 'no-cache');
  };

  router.get('/openapi.json', (_request, response) => {
    response.setHeader('cache-control', 'no-cache');
    document ??= JSON.stringify(buildOpenApiDocument(options));
    response.type('application/json').send(document);
  });
  router.get('/docs', (_request, response) => {
    pageHeaders(response);
    response.type('html').send(DOCS_HTML);
  });
  router.use('/docs/assets', docsAssets(pageHeaders));
  return router;
}

/** Swagger UI's files, and our initializer; anything else under /docs/assets is left to the 404. */
function docsAssets(pageHeaders: (response: Response) => void): RequestHandler {
  const serveFile = express.static(SWAGGER_UI_DIRECTORY, { index: false });
  return (request, response, next) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      next();
      return;
    }
    if (request.path === '/docs-initializer.js') {
      pageHeaders(response);
      response.type('text/javascript').send(DOCS_INITIALIZER);
      return;
    }
    if (!SWAGGER_UI_FILES.has(request.path)) {
      next();
      return;
    }
    void serveFile(request, response, next);
  };
}
