/**
 * The chat page (web/) end to end: Debian's Chromium driven by playwright-core against the real
 * service (auth on, SQLite) and the fake upstream. The page is the one `npm run build:web` built
 * (`npm test` builds it first). A screenshot of a finished reply is kept under test-results/web/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { PROJECT_ROOT } from '../../src/build-service';
import { eventually } from '../support/chat-client';
import { describeInBrowser, launchChromium, refuseOtherHosts } from '../support/chromium';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

const PAGE_BUILT = existsSync(path.join(PROJECT_ROOT, 'dist', 'web', 'index.html'));
const describeBrowser = describeInBrowser(PAGE_BUILT ? undefined : 'the page is not built (npm run build:web)');

const OUTPUT = path.join(PROJECT_ROOT, 'test-results', 'web');

let upstream: FakeUpstream;
let service: TestService;
let browser: Browser;
let key: string;

describeBrowser('the chat page in Chromium', () => {
  beforeAll(async () => {
    upstream = await startFakeUpstream();
    service = await startTestService({ upstream, auth: true, configToml: '[openai]\nmax_retries = 0\n[limits]\nrequests_per_minute = 100000\n' });
    key = (await service.keys!.create('browser')).key;
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await service?.close();
    await upstream?.close();
  });

  /** A fresh browser context (no storage) on the page, with the key entered and remembered. */
  async function openPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    // Nothing but the service: a request anywhere else fails the test.
    const foreign = await refuseOtherHosts(context, service.url);
    page.on('close', () => expect(foreign).toEqual([]));
    await page.goto(`${service.url}/`);
    await page.getByTestId('api-key').fill(key);
    await page.getByTestId('remember-key').check();
    await page.getByTestId('api-key').press('Enter');
    return page;
  }

  async function send(page: Page, text: string): Promise<void> {
    await page.getByTestId('message-input').fill(text);
    await page.getByTestId('message-input').press('Enter');
  }

  const assistant = (page: Page) => page.locator('[data-role="assistant"]').last();

  function chatIdOf(page: Page): string {
    const match = /#\/chats\/([A-Za-z0-9_-]+)/.exec(page.url());
    if (!match) throw new Error(`no chat id in ${page.url()}`);
    return match[1]!;
  }

  function rows(chatId: string) {
    return service.query<{ role: string; content: string; status: string }>('SELECT "role", "content", "status" FROM "Message" WHERE "chatId" = ? ORDER BY "seq"', chatId);
  }

  test('send: the reply streams in pieces, is stored, and a screenshot of it is kept', async () => {
    const page = await openPage();
    upstream.enqueue({ kind: 'stream', content: ['One ', 'two ', 'three ', 'four ', 'five.'], delayMs: 120 });
    await send(page, 'Count to five');
    // Seen growing: several different lengths before the end.
    const seen = new Set<string>();
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline) {
      const text = (await assistant(page).textContent().catch(() => null)) ?? '';
      if (text) seen.add(text.trim());
      if ((await assistant(page).getAttribute('data-status').catch(() => null)) === 'completed') break;
      await page.waitForTimeout(30);
    }
    expect(seen.size).toBeGreaterThanOrEqual(3);
    await expect(assistant(page).textContent()).resolves.toContain('One two three four five.');
    expect(await page.locator('[data-role="user"]').last().textContent()).toContain('Count to five');
    const chatId = chatIdOf(page);
    expect(await rows(chatId)).toEqual([
      { role: 'user', content: 'Count to five', status: 'completed' },
      { role: 'assistant', content: 'One two three four five.', status: 'completed' },
    ]);
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, 'finished-reply.png'), fullPage: true });
    await page.context().close();
  });

  test('reload during a reply: the page reopens the chat and the reply goes on to its end', async () => {
    const page = await openPage();
    upstream.enqueue({ kind: 'stream', content: Array.from({ length: 12 }, (_unused, index) => `w${index} `), delayMs: 150 });
    await send(page, 'Long answer please');
    await page.locator('[data-role="assistant"][data-status="streaming"]').waitFor();
    const chatId = chatIdOf(page);
    await page.reload();
    expect(chatIdOf(page)).toBe(chatId);
    await page.locator('[data-role="assistant"][data-status="completed"]').waitFor({ timeout: 15_000 });
    expect((await assistant(page).textContent())!.replace(/\s+/g, ' ').trim()).toContain('w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11');
    expect(await page.locator('[data-role="assistant"]').count()).toBe(1);
    await page.context().close();
  });

  test('stop: the reply is cancelled on the service and shown as cancelled', async () => {
    const page = await openPage();
    upstream.enqueue({ kind: 'stream', content: Array.from({ length: 40 }, (_unused, index) => `s${index} `), delayMs: 100 });
    await send(page, 'Talk for a while');
    await page.locator('[data-role="assistant"][data-status="streaming"]').waitFor();
    await page.getByTestId('stop').click();
    await page.locator('[data-role="assistant"][data-status="cancelled"]').waitFor();
    const chatId = chatIdOf(page);
    const stored = await eventually(async () => {
      const found = await rows(chatId);
      return found[1]?.status === 'streaming' ? undefined : found;
    });
    expect(stored.map((row) => row.status)).toEqual(['completed', 'cancelled']);
    await page.context().close();
  });

  test('regenerate replaces the last reply; an older chat opens from the list; rename and delete', async () => {
    const page = await openPage();
    upstream.enqueue({ kind: 'stream', content: ['First answer'] }, { kind: 'stream', content: ['Second answer'] });
    await send(page, 'Question one');
    await page.locator('[data-role="assistant"][data-status="completed"]').waitFor();
    const first = chatIdOf(page);
    await page.getByTestId('regenerate').click();
    await page.getByText('Second answer').waitFor();
    expect((await rows(first)).map((row) => `${row.role}: ${row.content}`)).toEqual(['user: Question one', 'assistant: Second answer']);

    // A second chat, then back to the first from the list.
    upstream.enqueue({ kind: 'stream', content: ['Other answer'] });
    await page.getByTestId('new-chat').click();
    await send(page, 'Question in another chat');
    await page.getByText('Other answer').waitFor();
    const second = chatIdOf(page);
    expect(second).not.toBe(first);
    await page.getByTestId('chat-list').getByTestId('chat-item').filter({ hasText: 'Question one' }).click();
    await page.getByText('Second answer').waitFor();
    expect(chatIdOf(page)).toBe(first);

    // Rename, then delete.
    page.once('dialog', (dialog) => void dialog.accept('Renamed chat'));
    await page.getByTestId('rename-chat').click();
    await page.getByTestId('chat-list').getByText('Renamed chat').waitFor();
    expect(await service.query('SELECT "title" FROM "Chat" WHERE "id" = ?', first)).toEqual([{ title: 'Renamed chat' }]);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByTestId('delete-chat').click();
    await page.getByTestId('chat-list').getByText('Renamed chat').waitFor({ state: 'detached' });
    expect(await service.query('SELECT "id" FROM "Chat" WHERE "id" = ?', first)).toEqual([]);
    await page.context().close();
  });

  test('a reply with an <img onerror> and a javascript: link renders inert', async () => {
    const page = await openPage();
    upstream.enqueue({
      kind: 'stream',
      content: ['Look: <img src=x onerror="window.__xss=1"> and ', '[click me](javascript:window.__xss=2) and **bold**.'],
    });
    await send(page, 'Be naughty');
    await page.locator('[data-role="assistant"][data-status="completed"]').waitFor();
    await page.waitForTimeout(300);
    expect(await page.evaluate(() => (globalThis as { __xss?: unknown }).__xss)).toBeUndefined();
    const reply = assistant(page);
    expect(await reply.locator('img[onerror]').count()).toBe(0);
    expect(await reply.locator('a[href^="javascript:"]').count()).toBe(0);
    expect(await reply.locator('strong').textContent()).toBe('bold');
    await page.context().close();
  });

  test('a 429 from the API is shown in words', async () => {
    const page = await openPage();
    upstream.enqueue({
      kind: 'error',
      status: 429,
      headers: { 'retry-after': '20' },
      body: { error: { code: '429', message: 'Requests to the ChatCompletions_Create Operation have exceeded the rate limit.' } },
    });
    await send(page, 'Anyone there?');
    const error = page.getByTestId('error');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/rate limit|too many|429|wait/i);
    await page.context().close();
  });
});
