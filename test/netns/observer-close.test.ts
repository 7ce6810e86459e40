/**
 * The observer's worker ends by itself when closed, even with reads in flight: terminate()
 * landing inside a netlink socket's callback aborted the whole daemon on SIGTERM (SIGABRT,
 * "terminate called after throwing an instance of 'Napi::Error'"). Real worker thread, real
 * netlink sockets; the reads are ctnetlink dumps of this process's namespace (read only).
 */
import t from 'tap';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { openObserver } from '../../src/observe/observer.js';

function capturedLog() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: pino({ level: 'warn' }, sink), lines };
}

t.test('close() lets the worker end by itself: no terminate, within the wait', async (t) => {
  const { log, lines } = capturedLog();
  const observer = openObserver(log);
  t.type(await observer.connections(), Map, 'a read started the worker');
  const started = Date.now();
  await observer.close();
  t.ok(Date.now() - started < 3000, `closed in ${Date.now() - started} ms`);
  t.notMatch(lines.join(''), /did not end when asked/, 'not terminated');
});

t.test('close() with reads in flight', async (t) => {
  const { log, lines } = capturedLog();
  const observer = openObserver(log);
  await observer.connections();
  const inFlight = Array.from({ length: 20 }, () => observer.connections().catch(() => null));
  await observer.close();
  t.notMatch(lines.join(''), /did not end when asked/, 'not terminated');
  void inFlight;
});
