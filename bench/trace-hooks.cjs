/**
 * Loaded into the service with `--require` by bench/trace-turn.ts: stamps when each step of a
 * `POST /api/chat` turn starts and ends, from the request's arrival to the first frame written.
 * It reads Node's diagnostics channels (http server, undici) and wraps a few methods of the built
 * service; on SIGUSR2 it writes the median time of each step to the file in TRACE_OUT.
 */
const diagnostics = require('node:diagnostics_channel');
const http = require('node:http');
const Module = require('node:module');
const { writeFileSync } = require('node:fs');

const now = () => Number(process.hrtime.bigint()) / 1e6;
/** One turn at a time (c=1), so the current turn is whichever started last. */
let turn;
const turns = [];
const stamp = (step) => {
  if (turn && turn[step] === undefined) turn[step] = now();
};

diagnostics.subscribe('http.server.request.start', ({ request }) => {
  if (request.method !== 'POST' || request.url !== '/api/chat') return;
  turn = { 'request arrived': now() };
  turns.push(turn);
});
diagnostics.subscribe('undici:request:create', () => stamp('upstream request created (undici)'));
diagnostics.subscribe('undici:client:sendHeaders', () => stamp('upstream request sent'));
diagnostics.subscribe('undici:request:headers', () => stamp('upstream response headers'));
const write = http.ServerResponse.prototype.write;
http.ServerResponse.prototype.write = function (...args) {
  if (this.req?.url === '/api/chat') stamp('first frames written');
  return write.apply(this, args);
};

function wrap(prototype, method, label) {
  const original = prototype?.[method];
  if (typeof original !== 'function') return;
  prototype[method] = function (...args) {
    stamp(`${label} >`);
    const result = original.apply(this, args);
    if (result && typeof result.then === 'function') result.then(() => stamp(`${label} <`), () => {});
    else stamp(`${label} <`);
    return result;
  };
}

const load = Module._load;
Module._load = function (request, ...rest) {
  const exports = load.call(this, request, ...rest);
  if (request.endsWith('/api-keys')) wrap(exports.ApiKeys?.prototype, 'check', 'API key check');
  if (request.endsWith('/chat-service')) wrap(exports.ChatService?.prototype, 'startTurn', 'turn set-up');
  for (const [file, store] of [['/sqlite-chat-store', 'SqliteChatStore'], ['/postgresql-chat-store', 'PostgresqlChatStore']]) {
    if (!request.endsWith(file)) continue;
    wrap(exports[store]?.prototype, 'openTurn', 'history read and turn written');
  }
  if (request.endsWith('/openai-provider')) {
    for (const value of Object.values(exports)) wrap(value?.prototype, 'openStream', 'upstream stream opened (SDK + fetch)');
  }
  return exports;
};

process.on('SIGUSR2', () => {
  // The first turns warm the code up (V8 optimises it); they are left out.
  const measured = turns.slice(Math.floor(turns.length / 5)).filter((entry) => entry['first frames written']);
  const steps = new Set(measured.flatMap((entry) => Object.keys(entry)));
  const medians = [...steps].map((step) => {
    const offsets = measured.map((entry) => entry[step] - entry['request arrived']).filter((ms) => !Number.isNaN(ms));
    offsets.sort((a, b) => a - b);
    return { step, ms: offsets[offsets.length >> 1] };
  });
  medians.sort((a, b) => a.ms - b.ms);
  writeFileSync(process.env.TRACE_OUT, JSON.stringify({ turns: measured.length, medians }));
});
