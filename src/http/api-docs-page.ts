/**
 * The files of the /docs page that are ours: its HTML and the script that starts Swagger UI. They
 * live here rather than as .html/.js files because the build (tsc) and the image copy `dist/` only.
 */

/**
 * The page's own policy: everything from this service, nothing inline. Swagger UI 5 needs no
 * `'unsafe-inline'` for styles (React sets them through the CSSOM, which CSP does not govern);
 * its icons are data: URLs; it fetches /openapi.json and, with "Try it out", the API itself.
 * __tests__/web/api-docs-page.test.ts fails on any violation.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const DOCS_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>LLM Streaming Service: API reference</title>
    <link rel="stylesheet" href="/docs/assets/swagger-ui.css" />
    <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/assets/swagger-ui-bundle.js"></script>
    <script src="/docs/assets/docs-initializer.js"></script>
  </body>
</html>
`;

/** `validatorUrl: null`: Swagger UI would otherwise send the document's URL to validator.swagger.io. */
export const DOCS_INITIALIZER = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  validatorUrl: null,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
`;
