#!/usr/bin/env node
// Runs in the client namespace: opens TCP connections to HOST:PORT, each from the next source
// port of the list (ports the router hashes to the node that just died), each given
// TIMEOUT_MS to complete, until one succeeds or DEADLINE_MS passes. Prints one JSON line:
// {"ok": true, "at": <epoch ms of the first success>, "attempts": n, "sport": p}.
//   node first-connect.mjs HOST PORT SPORTS(comma list) TIMEOUT_MS DEADLINE_MS
// With `open` first: connects once from each port (and resets), so the nodes pin the flows
// and the caller can read which node saw which port; prints {"opened": n}.
import net from 'node:net';

const opening = process.argv[2] === 'open';
const [host, port, sportList, timeoutArg, deadlineArg] = process.argv.slice(opening ? 3 : 2);
const sports = sportList.split(',').map(Number);
const timeoutMs = Number(timeoutArg);


function attempt(sport) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port: Number(port), localPort: sport });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      // RST, not FIN: the source port is free again at once (no TIME_WAIT on our side).
      socket.resetAndDestroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

if (opening) {
  let opened = 0;
  for (const sport of sports) if (await attempt(sport)) opened++;
  process.stdout.write(`${JSON.stringify({ opened })}\n`);
  process.exit(0);
}

// Started before the failure: says "ready", then starts at the "go" line on stdin (so node's
// start-up time is not measured).
process.stdout.write('ready\n');
await new Promise((resolve) => {
  let text = '';
  process.stdin.setEncoding('utf8').on('data', (chunk) => {
    text += chunk;
    if (text.includes('go\n')) resolve();
  });
});
const goAt = Date.now();
const until = goAt + Number(deadlineArg);
let attempts = 0;
for (let i = 0; Date.now() < until; i++) {
  const sport = sports[i % sports.length];
  attempts++;
  if (await attempt(sport)) {
    process.stdout.write(`${JSON.stringify({ ok: true, at: Date.now(), attempts, sport })}\n`);
    process.exit(0);
  }
}
process.stdout.write(`${JSON.stringify({ ok: false, at: Date.now(), attempts })}\n`);
