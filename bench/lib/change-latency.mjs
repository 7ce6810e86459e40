#!/usr/bin/env node
/**
 * Runs inside the load balancer's namespace (next to nftfarm):
 *   node change-latency.mjs URL KEY FARM COUNT
 * COUNT times: PUT one backend's weight (alternating), take the time the API answer is in,
 * then the time the kernel announces the next committed nftables generation (NFT_MSG_NEWGEN
 * on the NFNLGRP_NFTABLES multicast group): the change is live. Prints the delays in ms as
 * JSON. nftfarm is the only writer in this namespace while it runs.
 */
import { createNetlink } from 'netlink';

const [url, key, farm, countText] = process.argv.slice(2);
const count = Number(countText);
const NETLINK_NETFILTER = 12;
const NFNLGRP_NFTABLES = 7;
const NEWGEN = (10 << 8) | 15;

const socket = createNetlink(NETLINK_NETFILTER, { ref: true, recvBufferSize: 16 << 20, sendBufferSize: 65536 });
socket.addMembership(NFNLGRP_NFTABLES);
let waiter = null;
socket.on('message', (msgs) => {
  const at = performance.now();
  if (msgs.some((m) => m.type === NEWGEN) && waiter) {
    const w = waiter;
    waiter = null;
    w(at);
  }
});
socket.on('error', () => {});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const delays = [];
for (let i = 0; i < count; i++) {
  let committed = null;
  const seen = new Promise((resolve) => (waiter = resolve));
  const res = await fetch(`${url}/zapi/v4.0/zapi.cgi/farms/${farm}/backends/0`, {
    method: 'PUT',
    headers: { ZAPI_KEY: key, 'content-type': 'application/json' },
    body: JSON.stringify({ weight: (i % 2) + 2 }),
  });
  await res.text();
  const answered = performance.now();
  if (res.status !== 200) throw new Error(`PUT answered ${res.status}`);
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve(null), 60_000)));
  committed = await Promise.race([seen, timeout]);
  clearTimeout(timer);
  if (committed === null) throw new Error('no commit within 60 s');
  // A commit that began before the answer still counts from the answer: never negative.
  delays.push(Math.max(0, committed - answered));
  await sleep(100);
}
socket.close();
console.log(JSON.stringify(delays));
