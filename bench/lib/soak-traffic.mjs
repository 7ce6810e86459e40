#!/usr/bin/env node
/**
 * The soak's traffic, run inside the lab's client namespace:
 *   node soak-traffic.mjs PLAN_JSON
 * PLAN_JSON: { vip, tcp: [port], udp: [port], held: n, heldIntervalMs, requestIntervalMs }
 *
 * Until "stop" (or EOF) on stdin:
 * - `held` long-lived keep-alive TCP connections to each TCP port, one GET / per
 *   heldIntervalMs each; a connection breaks when it is reset or closed, when an answer takes
 *   over 3 s, or when another backend answers. A broken one is counted and replaced after 1 s;
 * - every requestIntervalMs, a GET / on a fresh connection to each TCP port, and one datagram
 *   from a fresh socket to each UDP port (the backend echoes it): failed if no answer in 3 s.
 *
 * Prints JSON lines: {"ev":"tick"} every 5 s (counts since the start), {"ev":"broken"} and
 * {"ev":"fail"} as they happen (the first 200), {"ev":"done"} with the totals.
 */
import net from 'node:net';
import http from 'node:http';
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
import { takeResponse } from '../../lab/dist/lab/http-response.js';

const plan = JSON.parse(process.argv[2]);
const ANSWER_MS = 3000;
const TICK_MS = 5000;
const MAX_EVENT_LINES = 200;
const out = (o) => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);

const counts = { heldOpened: 0, heldRequests: 0, heldBroken: 0, tcpOk: 0, tcpFailed: 0, udpOk: 0, udpFailed: 0 };
const byPort = {};
let eventLines = 0;
let stopping = false;
const event = (o) => {
  if (eventLines++ < MAX_EVENT_LINES) out(o);
};
const portCount = (port, field) => {
  byPort[port] ??= {};
  byPort[port][field] = (byPort[port][field] ?? 0) + 1;
};

// ------------------------------------------------------------------ held connections

const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${plan.vip}\r\nConnection: keep-alive\r\n\r\n`);
const live = new Set();

function hold(port) {
  if (stopping) return;
  const socket = net.connect({ host: plan.vip, port });
  const c = { socket, buf: Buffer.alloc(0), backend: undefined, timer: undefined, done: false, since: Date.now(), requests: 0 };
  live.add(c);
  const end = (reason) => {
    if (c.done) return;
    c.done = true;
    live.delete(c);
    clearTimeout(c.timer);
    socket.destroy();
    if (stopping) return;
    counts.heldBroken++;
    portCount(port, 'heldBroken');
    event({ ev: 'broken', port, reason, backend: c.backend, ageS: Math.round((Date.now() - c.since) / 1000), requests: c.requests });
    setTimeout(() => hold(port), 1000);
  };
  const send = () => {
    if (c.done || stopping) return;
    socket.write(request);
    c.timer = setTimeout(() => end(`no answer in ${ANSWER_MS} ms`), ANSWER_MS);
  };
  c.timer = setTimeout(() => end(`no connection in ${ANSWER_MS} ms`), ANSWER_MS);
  socket.on('connect', () => {
    clearTimeout(c.timer);
    counts.heldOpened++;
    send();
  });
  socket.on('data', (chunk) => {
    c.buf = Buffer.concat([c.buf, chunk]);
    try {
      for (let taken = takeResponse(c.buf); taken && !c.done; taken = takeResponse(c.buf)) {
        c.buf = taken.rest;
        clearTimeout(c.timer);
        const reply = JSON.parse(taken.response.body.toString('utf8'));
        if (taken.response.status !== 200) return end(`HTTP ${taken.response.status}`);
        if (c.backend !== undefined && reply.backend !== c.backend) return end(`backend changed ${c.backend} -> ${reply.backend}`);
        c.backend = reply.backend;
        c.requests++;
        counts.heldRequests++;
        c.timer = setTimeout(send, plan.heldIntervalMs);
      }
    } catch (err) {
      end(String(err?.message ?? err));
    }
  });
  socket.on('error', (err) => end(err.code ?? err.message));
  socket.on('close', () => end('closed by peer'));
}

// ------------------------------------------------------------------ fresh requests

function tcpOnce(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: plan.vip, port, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => {
        clearTimeout(timer);
        resolve(res.statusCode === 200 && body.includes('"backend"') ? null : `HTTP ${res.statusCode}`);
      });
      res.on('error', (err) => resolve(err.code ?? err.message));
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer in ${ANSWER_MS} ms`)), ANSWER_MS);
    req.on('error', (err) => {
      clearTimeout(timer);
      resolve(err.code ?? err.message);
    });
  });
}

function udpOnce(port) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const done = (why) => {
      clearTimeout(timer);
      sock.close();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no answer in ${ANSWER_MS} ms`), ANSWER_MS);
    sock.on('message', (msg) => done(msg.toString('utf8').includes('"backend"') ? null : 'not a backend reply'));
    sock.on('error', (err) => done(err.code ?? err.message));
    sock.send('soak', port, plan.vip);
  });
}

async function requests() {
  const inFlight = new Set();
  while (!stopping) {
    const due = Date.now() + plan.requestIntervalMs;
    for (const port of plan.tcp) {
      const p = tcpOnce(port).then((why) => {
        if (why === null) counts.tcpOk++;
        else {
          counts.tcpFailed++;
          portCount(port, 'tcpFailed');
          event({ ev: 'fail', proto: 'tcp', port, why });
        }
      });
      inFlight.add(p);
      p.finally(() => inFlight.delete(p));
    }
    for (const port of plan.udp) {
      const p = udpOnce(port).then((why) => {
        if (why === null) counts.udpOk++;
        else {
          counts.udpFailed++;
          portCount(port, 'udpFailed');
          event({ ev: 'fail', proto: 'udp', port, why });
        }
      });
      inFlight.add(p);
      p.finally(() => inFlight.delete(p));
    }
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
  }
  await Promise.all(inFlight);
}

// ------------------------------------------------------------------ run

let stop;
const stopped = new Promise((r) => (stop = r));
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => line.trim() === 'stop' && stop());
lines.on('close', () => stop());

for (const port of plan.tcp) for (let i = 0; i < plan.held; i++) hold(port);
const ticker = setInterval(() => out({ ev: 'tick', ...counts, held: live.size }), TICK_MS);
const requesting = requests();
await stopped;
// Counted before we close anything ourselves: our own closes are not breaks.
const heldAtEnd = live.size;
stopping = true;
await requesting;
for (const c of live) {
  c.done = true;
  clearTimeout(c.timer);
  c.socket.destroy();
}
clearInterval(ticker);
out({ ev: 'done', ...counts, heldAtEnd, byPort });
process.exit(0);
