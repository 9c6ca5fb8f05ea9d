/**
 * The Thunder Client collection runs as written: each request, in its order, with the variables
 * of thunder-environment.json set as a user would, gets the answer it is there to show.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

interface ThunderRequest {
  name: string;
  method: string;
  url: string;
  sortNum: number;
  headers: Array<{ name: string; value: string }>;
  body?: { type: string; raw: string };
}

const collection = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'thunder-collection.json'), 'utf8')) as { requests: ThunderRequest[] };
const environment = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'thunder-environment.json'), 'utf8')) as {
  variables: Array<{ name: string; value: string }>;
};

let upstream: FakeUpstream;
let service: TestService;

afterAll(async () => {
  await service?.close();
  await upstream?.close();
});

test('every request of the collection answers as expected, in order, with the environment variables', async () => {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream, auth: true });
  const { key } = await service.keys!.create('thunder');
  const variables = new Map(environment.variables.map(({ name, value }) => [name, value]));
  expect([...variables.keys()].sort()).toEqual(['apiKey', 'baseUrl', 'chatId']);
  variables.set('baseUrl', service.url);
  variables.set('apiKey', key);
  const fill = (text: string) =>
    text.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => {
      const value = variables.get(name);
      if (value === undefined) throw new Error(`the collection uses {{${name}}}, which the environment does not define`);
      return value;
    });

  const answered: string[] = [];
  for (const request of [...collection.requests].sort((a, b) => a.sortNum - b.sortNum)) {
    const response = await fetch(fill(request.url), {
      method: request.method,
      headers: Object.fromEntries(request.headers.map(({ name, value }) => [name, fill(value)])),
      body: request.body ? fill(request.body.raw) : undefined,
    });
    const text = await response.text();
    answered.push(`${request.name}: ${response.status}`);
    expect({ request: request.name, status: response.status, ok: response.status < 400, text: response.status < 400 ? '' : text }).toEqual({
      request: request.name,
      status: response.status,
      ok: true,
      text: '',
    });
    if (response.headers.get('content-type')?.startsWith('text/event-stream')) expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  }
  // Nothing generates between the requests: resume and cancel answer 204, the rest 200.
  expect(answered).toEqual(
    [...collection.requests]
      .sort((a, b) => a.sortNum - b.sortNum)
      .map((request) => `${request.name}: ${/stream$/.test(request.url) || request.name === 'Delete chat' ? 204 : 200}`),
  );
});
