import { startFakeUpstream } from './fake-upstream';
import { startTestService } from './test-service';
import { sendHttp, sendRaw, closeHttpAgent } from './raw-http';

async function main() {
  const upstream = await startFakeUpstream();
  const service = await startTestService({ upstream, auth: true, configToml: '[limits]\nrequests_per_minute = 1000000\n' });
  const key = (await service.keys!.create('fuzz')).key;
  const port = Number(new URL(service.url).port);
  const auth = { authorization: `Bearer ${key}` };
  const show = (name: string, r: { status: number; headers: Record<string, string>; body: Buffer }) =>
    console.log(name, r.status, r.headers['content-type'], r.body.toString('utf8').slice(0, 200));
  const chatId = '0b8d5c3e-1f2a-4b6c-9d7e-8f9a0b1c2d3e';
  const badUtf8 = Buffer.concat([Buffer.from(`{"chatId":"${chatId}","messages":[{"role":"user","content":"a`), Buffer.from([0xff]), Buffer.from('"}]}')]);
  if (process.env.UTF) try { show('bad utf8', await sendHttp(port, { method: 'POST', path: '/api/chat', headers: { ...auth, 'content-type': 'application/json' }, body: badUtf8 })); } catch (e) { console.log('bad utf8 err', e); }
  try { show('param %zz', await sendHttp(port, { method: 'GET', path: '/api/chats/%zz', headers: auth })); } catch (e) { console.log('err', e); }
  try { show('param %E0%A4%A', await sendHttp(port, { method: 'GET', path: '/api/chats/%E0%A4%A/messages', headers: auth })); } catch (e) { console.log('err', e); }
  const utf16 = Buffer.from(JSON.stringify({ chatId, messages: [{ role: 'user', content: 'hi' }] }), 'utf16le');
  try { show('utf16', await sendHttp(port, { method: 'POST', path: '/api/chat', headers: { ...auth, 'content-type': 'application/json; charset=utf-16le' }, body: utf16 })); } catch (e) { console.log('err', e); }
  try { show('expect', await sendHttp(port, { method: 'GET', path: '/api/chats', headers: { ...auth, expect: 'junk' } })); } catch (e) { console.log('err', e); }
  try { show('gzip junk', await sendHttp(port, { method: 'POST', path: '/api/chat', headers: { ...auth, 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: 'notgzip' })); } catch (e) { console.log('err', e); }
  try { show('enc junk', await sendHttp(port, { method: 'POST', path: '/api/chat', headers: { ...auth, 'content-type': 'application/json', 'content-encoding': 'zz' }, body: '{}' })); } catch (e) { console.log('err', e); }
  try { show('deep', await sendHttp(port, { method: 'POST', path: '/api/chat', headers: { ...auth, 'content-type': 'application/json' }, body: '['.repeat(100000) + ']'.repeat(100000) })); } catch (e) { console.log('err', e); }
  try { show('big', await sendHttp(port, { method: 'POST', path: '/api/chat', headers: { ...auth, 'content-type': 'application/json' }, body: '"' + 'x'.repeat(1_100_000) + '"' })); } catch (e) { console.log('err', e); }
  try { show('raw nocolon', await sendRaw(port, `GET /api/chats HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n`)); } catch (e) { console.log('err', e); }
  try { show('raw big header', await sendRaw(port, `GET /api/chats HTTP/1.1\r\nHost: x\r\nx-a: ${'a'.repeat(20000)}\r\n\r\n`)); } catch (e) { console.log('err', e); }
  try { show('raw space path', await sendRaw(port, `GET /api/ch ats#x HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n`)); } catch (e) { console.log('err', e); }
  try { show('raw rel path', await sendRaw(port, `GET api HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n`)); } catch (e) { console.log('err', e); }
  try { show('raw star', await sendRaw(port, `GET * HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n`)); } catch (e) { console.log('err', e); }
  try { show('healthz', await sendHttp(port, { method: 'GET', path: '/healthz' })); } catch (e) { console.log('err', e); }
  console.log('upstream', upstream.requests.length, service.query('SELECT COUNT(*) AS n FROM Chat'));
  closeHttpAgent();
  await service.close();
  await upstream.close();
}
main();
