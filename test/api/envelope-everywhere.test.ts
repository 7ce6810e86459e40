// Issue 11, finding 3: every answer is ZAPI's error envelope, whatever layer refuses the
// request (Node's HTTP parser, Fastify's router, body parser and limits, shutdown), except
// the documented 401 body. Real HTTP over raw sockets: most of these never reach a route, and
// inject() skips the layers that produce them.
import t, { type Test } from 'tap';
import { API_KEY, buildTestApp, ZAPI } from '../helpers/api.js';
import net from 'node:net';
import { isZapiErrorEnvelope, parseAnswer, rawRequest, type RawAnswer } from '../helpers/raw-http.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const req = (method: string, path: string, headers: Record<string, string> = {}, body = ''): string => {
  const all: Record<string, string> = { Host: '127.0.0.1', ZAPI_KEY: API_KEY, Connection: 'close', ...headers };
  if (body !== '' && !('Content-Length' in all) && !('Transfer-Encoding' in all)) all['Content-Length'] = String(Buffer.byteLength(body));
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`;
};

/** Asserts the envelope, its status and that the message says what is wrong. */
function expectEnvelope(t: Test, answer: RawAnswer, status: number, message: RegExp, what: string): void {
  t.equal(answer.status, status, `${what}: status ${status} (got ${answer.status}: ${answer.text.slice(0, 200)})`);
  t.ok(isZapiErrorEnvelope(answer.json), `${what}: ZAPI error envelope (got ${answer.text.slice(0, 200)})`);
  t.match((answer.json as { message?: string } | undefined)?.message ?? '', message, `${what}: the message says why`);
  t.match(answer.headers['content-type'] ?? '', /^application\/json/, `${what}: JSON`);
}

t.test('errors produced before and around routing answer the ZAPI envelope', async (t) => {
  const { app } = await buildTestApp(t, { app: { requestTimeoutMs: 1500 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const send = (text: string | Buffer, timeoutMs?: number) => rawRequest('127.0.0.1', port, text, { timeoutMs });

  await t.test('malformed percent-encoding in the path (FST_ERR_BAD_URL)', async (t) => {
    expectEnvelope(t, await send(req('GET', `${ZAPI}/farms/%E0%A4%A`)), 400, /percent-encoding|not a valid URL/i, 'bad URL');
    expectEnvelope(t, await send(req('GET', `${ZAPI}/farms/a%zz`)), 400, /percent-encoding|not a valid URL/i, 'bad escape');
  });

  await t.test('an unknown HTTP method', async (t) => {
    expectEnvelope(t, await send(req('FOO', `${ZAPI}/farms`)), 400, /method/i, 'FOO');
    // Node hands CONNECT to a 'connect' listener, or drops the connection without a word.
    expectEnvelope(t, await send(`CONNECT ${ZAPI}/farms HTTP/1.1\r\nHost: x\r\n\r\n`), 400, /method/i, 'CONNECT');
    expectEnvelope(t, await send(`CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n`), 400, /method/i, 'CONNECT host:port');
    // Methods Node knows but no route serves: the router's 404.
    for (const method of ['PATCH', 'PROPFIND', 'OPTIONS']) {
      expectEnvelope(t, await send(req(method, `${ZAPI}/farms`)), 404, /Request not found/, method);
    }
  });

  await t.test('a request line over the header limit (431)', async (t) => {
    expectEnvelope(t, await send(req('GET', `${ZAPI}/farms/${'a'.repeat(20_000)}`)), 431, /too large|too long|header/i, '20 KB URL');
    expectEnvelope(t, await send(req('GET', `${ZAPI}/farms`, { 'X-Big': 'b'.repeat(20_000) })), 431, /header/i, '20 KB header');
  });

  await t.test('a path parameter over the router limit (414)', async (t) => {
    expectEnvelope(t, await send(req('GET', `${ZAPI}/farms/${'a'.repeat(1_000)}`)), 414, /path parameter/i, '1,000-character name');
    expectEnvelope(t, await send(req('DELETE', `${ZAPI}/farms/${'a'.repeat(5_000)}/backends/1`)), 414, /path parameter/i, 'nested route');
  });

  await t.test('a body over the limit (413), unsupported media type (415), invalid JSON (400)', async (t) => {
    const big = JSON.stringify({ farmname: 'x'.repeat(2 * 1024 * 1024) });
    expectEnvelope(t, await send(req('POST', `${ZAPI}/farms`, { 'Content-Type': 'application/json' }, big)), 413, /body is too large/i, '2 MiB body');
    expectEnvelope(t, await send(req('POST', `${ZAPI}/farms`, { 'Content-Type': 'application/xml' }, '<a/>')), 415, /Content-Type/, 'XML');
    expectEnvelope(t, await send(req('POST', `${ZAPI}/farms`, { 'Content-Type': 'application/json' }, '{"a":')), 400, /valid JSON/, 'bad JSON');
    expectEnvelope(
      t,
      await send(req('POST', `${ZAPI}/farms`, { 'Content-Type': 'application/json' }, '{"__proto__":{"x":1}}')),
      400,
      /__proto__|prototype/,
      'prototype poisoning',
    );
  });

  await t.test('a body refused before it is read: a client that writes it all before reading still gets the answer', async (t) => {
    // Without a lingering close the server closes as soon as it has answered; the rest of the
    // body then meets a closed socket, the kernel answers RST, and the answer is lost (10 of
    // 10 times before the fix).
    const size = 4 * 1024 * 1024;
    const writeThenRead = (headers: Record<string, string>) =>
      new Promise<string>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port }, async () => {
          socket.pause();
          const head = Object.entries({ Host: 'x', 'Content-Type': 'application/json', 'Content-Length': String(size), Connection: 'close', ...headers });
          socket.write(`POST ${ZAPI}/farms HTTP/1.1\r\n${head.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${'x'.repeat(65_536)}`);
          await sleep(100);
          socket.write('x'.repeat(size - 65_536), () => setTimeout(() => socket.resume(), 100));
        });
        let text = '';
        socket.on('data', (d) => (text += d.toString('utf8')));
        socket.on('error', () => resolve(text));
        socket.on('close', () => resolve(text));
      });
    for (let i = 0; i < 3; i++) {
      const noKey = parseAnswer(await writeThenRead({ ZAPI_KEY: 'wrong-key-00000' }));
      t.equal(noKey.status, 401, `no key, try ${i}: the 401 arrives`);
      expectEnvelope(t, parseAnswer(await writeThenRead({ ZAPI_KEY: API_KEY })), 413, /too large/, `over the body limit, try ${i}`);
    }
  });

  await t.test('malformed framing: a Content-Length that disagrees, or both framings', async (t) => {
    const lying = `POST ${ZAPI}/farms HTTP/1.1\r\nHost: x\r\nZAPI_KEY: ${API_KEY}\r\nContent-Type: application/json\r\nContent-Length: abc\r\nConnection: close\r\n\r\n{}`;
    expectEnvelope(t, await send(lying), 400, /HTTP|request/i, 'Content-Length: abc');
    const both = `POST ${ZAPI}/farms HTTP/1.1\r\nHost: x\r\nZAPI_KEY: ${API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`;
    expectEnvelope(t, await send(both), 400, /HTTP|request/i, 'Content-Length and Transfer-Encoding');
  });

  await t.test('a request whose headers never end times out with 408', async (t) => {
    const answer = await send(`GET ${ZAPI}/farms HTTP/1.1\r\nHost: x\r\nZAPI_KEY: ${API_KEY}\r\n`, 8_000);
    expectEnvelope(t, answer, 408, /time/i, 'slow request');
  });

  await t.test('still serving: the errors did not break the server', async (t) => {
    const ok = await send(req('GET', `${ZAPI}/farms`));
    t.equal(ok.status, 200);
    t.strictSame(ok.json, { description: 'List farms', params: [] });
  });
});

t.test('while shutting down, a request on a kept-alive connection gets 503 in the envelope', async (t) => {
  const { app, close } = await buildTestApp(t);
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  // A slow request keeps the connection busy (so close() cannot reap it) while the next one
  // arrives on it.
  app.get('/slow-for-test', async () => {
    await held;
    return { ok: true };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise((r) => socket.once('connect', r));
  let text = '';
  socket.on('data', (d) => (text += d.toString('utf8')));
  socket.write('GET /slow-for-test HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(100);
  const closing = close();
  await sleep(100);
  socket.write(`GET ${ZAPI}/farms HTTP/1.1\r\nHost: x\r\nZAPI_KEY: ${API_KEY}\r\n\r\n`);
  await sleep(200);
  release();
  await closing;
  await sleep(100);
  socket.destroy();
  const second = text.slice(text.indexOf('HTTP/1.1', 1));
  const answer = parseAnswer(second);
  t.equal(answer.status, 503, `503 (got ${text.slice(0, 400)})`);
  t.ok(isZapiErrorEnvelope(answer.json), 'in the envelope');
  t.match((answer.json as { message?: string } | undefined)?.message ?? '', /shutting down/);
});
