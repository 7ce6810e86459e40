#!/usr/bin/env node
/**
 * Runs inside the load balancer's namespace (next to nftfarm):
 *   node change-latency.mjs URL KEY FARM SLOT COUNT [BACKGROUND_FARMS]
 * COUNT times: PUT the weight of backend 0 of FARM (alternating 2 and 3), and take the time
 * from just before the request is sent to the moment the kernel commits the change: the
 * first element notification (NFT_MSG_NEWSETELEM / DELSETELEM on the NFNLGRP_NFTABLES group)
 * for a bucket of the farm's selection region, whose keys are 0x80000000 + SLOT x 4096 + i.
 * What an operator waits for: request to kernel. With BACKGROUND_FARMS (a number n), another
 * loop writes 100 PUTs/s to farms f1..fn meanwhile (their regions do not count). Prints the
 * delays in ms as JSON, with the request-to-answer times beside them.
 */
import http from 'node:http';
import os from 'node:os';
import { createNetlink } from 'netlink';

const [url, key, farm, slotText, countText, backgroundText] = process.argv.slice(2);
const count = Number(countText);
const background = Number(backgroundText ?? 0);
const base = 0x80000000 + Number(slotText) * 4096;
const NETLINK_NETFILTER = 12;
const NFNLGRP_NFTABLES = 7;
const NEWSETELEM = (10 << 8) | 12;
const DELSETELEM = (10 << 8) | 14;
const le = os.endianness() === 'LE';

function attributes(data) {
  const out = [];
  let at = 0;
  while (at + 4 <= data.length) {
    const length = data.readUInt16LE(at);
    if (length < 4) break;
    out.push({ type: data.readUInt16LE(at + 2) & 0x3fff, value: data.subarray(at + 4, at + length) });
    at += (length + 3) & ~3;
  }
  return out;
}

/** True when the notification writes a bucket of the farm's region in the selection map. */
function touchesRegion(message) {
  const data = Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength).subarray(4);
  const attrs = attributes(data);
  const set = attrs.find((a) => a.type === 2)?.value;
  if (!set || set.toString('utf8', 0, set.indexOf(0)) !== 'selection') return false;
  const list = attrs.find((a) => a.type === 3)?.value;
  for (const element of list ? attributes(list) : []) {
    const keyAttr = attributes(element.value).find((a) => a.type === 1)?.value;
    const value = keyAttr && attributes(keyAttr).find((a) => a.type === 1)?.value;
    if (!value || value.length < 4) continue;
    const k = le ? value.readUInt32LE(0) : value.readUInt32BE(0);
    if (k >= base && k < base + 4096) return true;
  }
  return false;
}

const socket = createNetlink(NETLINK_NETFILTER, { ref: true, recvBufferSize: 32 << 20, sendBufferSize: 65536 });
socket.addMembership(NFNLGRP_NFTABLES);
let waiter = null;
socket.on('message', (msgs) => {
  const at = performance.now();
  if (waiter && msgs.some((m) => (m.type === NEWSETELEM || m.type === DELSETELEM) && touchesRegion(m))) {
    const w = waiter;
    waiter = null;
    w(at);
  }
});
socket.on('error', () => {});

// node:http with a kept-alive connection, not fetch: on this machine fetch (undici) adds 0.9 ms
// of its own to each request (GET /healthz after 100 ms idle: 2.0 ms with fetch, 1.15 ms
// with node:http), which is the client's cost, not nftfarm's.
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const put = (name, weight) =>
  new Promise((resolve, reject) => {
    const body = JSON.stringify({ weight });
    const request = http.request(
      `${url}/zapi/v4.0/zapi.cgi/farms/${name}/backends/0`,
      { method: 'PUT', agent, headers: { ZAPI_KEY: key, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (response) => {
        response.resume();
        response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`PUT ${name} answered ${response.statusCode}`))));
      },
    );
    request.on('error', reject);
    request.end(body);
  });

let stopBackground = false;
const backgroundDone = (async () => {
  if (background < 1) return 0;
  let n = 0;
  const started = performance.now();
  while (!stopBackground) {
    // 100 PUTs per second, on a schedule (a slow answer does not lower the rate).
    const due = started + n * 10;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    void put(`f${1 + (n % background)}`, 2 + (n % 2)).catch(() => {});
    n++;
  }
  return n;
})();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const delays = [];
/** Request sent to answer received: the part of each delay spent before the reconciler's pass could start. */
const answers = [];
// A known start, so every timed PUT is a real change (the random workload may hold a 2 already).
await put(farm, 5);
await sleep(background > 0 ? 500 : 200);
for (let i = 0; i < count; i++) {
  const seen = new Promise((resolve) => (waiter = resolve));
  const sent = performance.now();
  await put(farm, (i % 2) + 2);
  answers.push(performance.now() - sent);
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve(null), 60_000)));
  const committed = await Promise.race([seen, timeout]);
  clearTimeout(timer);
  if (committed === null) throw new Error('no commit within 60 s');
  delays.push(committed - sent);
  await sleep(100);
}
stopBackground = true;
await backgroundDone;
socket.close();
agent.destroy();
console.log(JSON.stringify({ delays, answers }));
