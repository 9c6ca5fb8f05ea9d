/**
 * Two instances of the service on one PostgreSQL database, as users reach them through a load
 * balancer: one reply streams per chat whichever instance a turn reaches, and what one instance
 * stores the other reads.
 */
import { randomUUID } from 'node:crypto';
import { eventually, openSse, postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { describePostgres } from '../support/postgres-database';
import { startTestService, type TestService } from '../support/test-service';

let upstream: FakeUpstream;
const services: TestService[] = [];

beforeEach(async () => {
  upstream = await startFakeUpstream();
});

afterEach(async () => {
  for (const service of services.splice(0).reverse()) await service.close();
  await upstream.close();
});

async function twoInstances(): Promise<[TestService, TestService]> {
  const first = await startTestService({ upstream, engine: 'postgresql', configToml: '[cluster]\ninstance_id = "instance-a"\n' });
  services.push(first);
  const second = await startTestService({
    upstream,
    reuseDatabase: first.databaseUrl,
    configToml: '[cluster]\ninstance_id = "instance-b"\n',
  });
  services.push(second);
  return [first, second];
}

describePostgres('two instances on one PostgreSQL database', () => {
  test('a turn reaching the other instance while a reply streams gets 409; the model is not asked and nothing of it is stored', async () => {
    const [first, second] = await twoInstances();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Slow', ' reply', ' here'], delayMs: 400 });
    const streaming = await openSse(`${first.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(userTurn(chatId, 'First')),
    });
    await eventually(async () => ((await first.query(`SELECT "id" FROM "Message" WHERE "chatId" = ?`, chatId)).length === 2 ? true : undefined));

    upstream.setDefault({ kind: 'stream', content: ['Never', ' streamed'], delayMs: 400 });
    const refused = await postChat(second.url, userTurn(chatId, 'Second, elsewhere'));
    expect(refused.status).toBe(409);
    expect(refused.json()).toEqual({ error: { code: 'generation_in_progress', message: 'This chat is already generating a reply.' } });
    // The turn is refused by the store before anything is asked of the model.
    expect(upstream.requests).toHaveLength(1);

    await streaming.readToEnd();
    expect(await first.query(`SELECT "role", "content", "status", "instanceId" FROM "Message" WHERE "chatId" = ? ORDER BY "seq"`, chatId)).toEqual([
      { role: 'user', content: 'First', status: 'completed', instanceId: null },
      { role: 'assistant', content: 'Slow reply here', status: 'completed', instanceId: 'instance-a' },
    ]);
    // Once the reply has ended, the chat goes on from either instance, which reads its history.
    upstream.enqueue({ kind: 'stream', content: ['Now you'] });
    expect((await postChat(second.url, userTurn(chatId, 'Second, now'))).status).toBe(200);
    expect(upstream.requests.at(-1)!.body.messages.slice(1)).toEqual([
      { role: 'user', content: 'First' },
      { role: 'assistant', content: 'Slow reply here' },
      { role: 'user', content: 'Second, now' },
    ]);
    const listed = await fetch(`${first.url}/api/chats/${chatId}`);
    expect(await listed.json()).toMatchObject({ chatId, messageCount: 4, lastReplyStatus: 'completed' });
  });

  test('a stopped instance\'s reply left streaming is marked interrupted by the other once its lease has lapsed, not before', async () => {
    const first = await startTestService({
      upstream,
      engine: 'postgresql',
      configToml: '[cluster]\ninstance_id = "instance-a"\nlease_seconds = 2\n',
    });
    services.push(first);
    const second = await startTestService({
      upstream,
      reuseDatabase: first.databaseUrl,
      configToml: '[cluster]\ninstance_id = "instance-b"\nlease_seconds = 2\n',
    });
    services.push(second);
    const chatId = randomUUID();
    const replyId = randomUUID();
    // As a crash leaves it: a reply of instance-a still streaming, and instance-a's lease current.
    await first.store.beginTurn({
      chatId,
      ownerId: 'local',
      systemPrompt: undefined,
      title: 'Cut off',
      messages: [{ role: 'user', content: 'Hello', tokenCount: 1 }],
      reply: { id: replyId, model: 'gpt-4o', systemPromptHash: 'hash', instanceId: 'instance-a' },
    });
    await first.lease.stop();
    await first.store.renewLease('instance-a', 2_000);
    const status = async () => (await second.query<{ status: string }>(`SELECT "status" FROM "Message" WHERE "id" = ?`, replyId))[0]!.status;
    // instance-b sweeps every lease_seconds / 3; instance-a's lease holds for 2 s.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await status()).toBe('streaming');
    await eventually(async () => ((await status()) === 'interrupted' ? true : undefined), 5_000);
    const chat = await fetch(`${second.url}/api/chats/${chatId}`);
    expect(await chat.json()).toMatchObject({ lastReplyStatus: 'interrupted' });
    expect(second.logs.join('\n')).toContain('replies of an instance whose lease lapsed marked interrupted');
  }, 20_000);
});
