/**
 * How the service serves the built chat page: its policy (no inline script, nothing remote), its
 * caching (the page revalidated, hashed assets kept), the API's headers and CORS unchanged.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { PAGE_CSP } from '../../src/http/web-page';
import { startTestService, type TestService } from '../support/test-service';

const WEB = path.join(PROJECT_ROOT, 'dist', 'web');
const built = existsSync(path.join(WEB, 'index.html'));
if (!built && process.env.REQUIRE_BROWSER === '1') throw new Error('the page is not built (npm run build:web)');
const describeBuilt = built ? describe : describe.skip;

let service: TestService;

describeBuilt('the chat page', () => {
  beforeAll(async () => {
    service = await startTestService({ auth: true, configToml: '[server]\ncors_origins = ["https://app.example.com"]\n' });
  });
  afterAll(() => service?.close());

  test('GET / is the page, with its own policy and revalidated on every load; it needs no key', async () => {
    const response = await fetch(`${service.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('content-security-policy')).toBe(PAGE_CSP);
    expect(PAGE_CSP).toContain("script-src 'self'");
    expect(PAGE_CSP).not.toContain('unsafe-inline');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    const html = await response.text();
    // No inline script and nothing from another host.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//i);
  });

  test('hashed assets are cached for good, under the same policy', async () => {
    const assets = readdirSync(path.join(WEB, 'assets'));
    const script = assets.find((name) => name.endsWith('.js'))!;
    expect(script).toMatch(/-[A-Za-z0-9_-]{8,}\.js$/);
    const response = await fetch(`${service.url}/assets/${script}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^(text|application)\/javascript/);
    expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(response.headers.get('content-security-policy')).toBe(PAGE_CSP);
    expect((await fetch(`${service.url}/assets/nothing-here.js`)).status).toBe(404);
  });

  test('the API keeps its own policy and CORS', async () => {
    const api = await fetch(`${service.url}/api/chats`, { headers: { origin: 'https://app.example.com' } });
    expect(api.status).toBe(401);
    expect(api.headers.get('content-security-policy')).toBe("default-src 'none';frame-ancestors 'none'");
    expect(api.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const page = await fetch(`${service.url}/`, { headers: { origin: 'https://elsewhere.example' } });
    expect(page.headers.get('access-control-allow-origin')).toBeNull();
  });
});
