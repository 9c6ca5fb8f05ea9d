/**
 * GET /docs in Debian's Chromium (playwright-core): Swagger UI renders this service's operations
 * from its own files and /openapi.json, asks no other host for anything, and breaks no rule of
 * the page's Content-Security-Policy.
 */
import type { Browser } from 'playwright-core';
import { describeInBrowser, launchChromium, refuseOtherHosts } from '../support/chromium';
import { startTestService, type TestService } from '../support/test-service';

const describeBrowser = describeInBrowser();

let service: TestService;
let browser: Browser;

describeBrowser('the API reference page in Chromium', () => {
  beforeAll(async () => {
    service = await startTestService({ auth: true });
    browser = await launchChromium();
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await service?.close();
  });

  test('Swagger UI renders the operations, from this service only, within the page\'s policy', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(8000);
    // Nothing but the service: a request anywhere else is refused and fails the test.
    const foreign = await refuseOtherHosts(context, service.url);
    // Chromium reports each CSP violation as a console error too; the event itself is caught as well.
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
    await page.addInitScript({
      content: "document.addEventListener('securitypolicyviolation', (event) => console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`));",
    });
    const responses: Array<{ url: string; status: number }> = [];
    page.on('response', (response) => responses.push({ url: response.url(), status: response.status() }));

    const answer = await page.goto(`${service.url}/docs`);
    expect(answer?.status()).toBe(200);
    await page.locator('.opblock-summary-path', { hasText: '/api/chat' }).first().waitFor();
    await page.locator('.opblock-summary-path', { hasText: '/v1/chat/completions' }).first().waitFor();
    // The operations come from the served document: /metrics is there because metrics are on.
    expect(await page.locator('.opblock-summary-path').allTextContents()).toEqual(expect.arrayContaining(['/api/chats/{chatId}', '/metrics']));
    // Open operations render schemas and highlighted examples, and "Try it out" calls the API:
    // more chances for a style, an image or a request to be refused.
    await page.locator('.opblock-summary-path', { hasText: '/api/chats/{chatId}/messages' }).first().click();
    await page.locator('.opblock-summary-path', { hasText: /^\/api\/chat$/ }).first().click();
    await page.locator('.opblock-post .body-param, .opblock-post .opblock-section-request-body').first().waitFor();
    const health = page.locator('.opblock', { has: page.locator('.opblock-summary-path', { hasText: '/healthz' }) });
    await health.locator('.opblock-summary').click();
    await health.getByRole('button', { name: 'Try it out' }).click();
    await health.getByRole('button', { name: 'Execute' }).click();
    await health.locator('.live-responses-table .response-col_status', { hasText: '200' }).waitFor();
    const parts = page.locator('.models article', { hasText: 'UiMessageStreamPart' }).first();
    await parts.getByRole('button', { name: 'Expand all' }).click();
    await parts.getByText('text-delta').first().waitFor();
    await page.waitForTimeout(200);

    expect(foreign).toEqual([]);
    expect(problems).toEqual([]);
    expect(responses.filter((response) => response.status >= 400)).toEqual([]);
    expect(responses.map((response) => new URL(response.url).pathname)).toEqual(expect.arrayContaining(['/docs', '/openapi.json', '/docs/assets/docs-initializer.js', '/healthz']));
    await context.close();
  }, 15_000);
});
