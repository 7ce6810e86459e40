/**
 * The neighbour table's refresh reports the addresses whose MAC answer changed, and only
 * those: each one wakes every farm with that backend. (The real ARP table: test/e2e/dsr-neighbors.)
 */
import t from 'tap';
import pino from 'pino';
import { NeighborTable } from '../../src/dataplane/neighbors.js';
import type { HostNetwork, NeighborEntry } from '../../src/dataplane/netlink/host-network.js';

const log = pino({ level: 'silent' });
const interfaces = [{ index: 2, name: 'eth0' }];
const MAC_A = '02:00:0a:fa:00:15';
const MAC_B = '02:00:0a:fa:00:99';

function table(remembered: { interface: string; ip: string; mac: string }[]) {
  let arp: NeighborEntry[] = [];
  const net = { listNeighbors: async () => arp } as unknown as HostNetwork;
  const saved: string[] = [];
  const memory = { knownNeighbors: () => remembered, rememberNeighbor: (i: string, ip: string, mac: string) => void saved.push(`${i}|${ip}|${mac}`) };
  const neighbors = new NeighborTable(net, memory, log);
  return {
    neighbors,
    saved,
    refresh: async (entries: NeighborEntry[]) => {
      arp = entries;
      return [...(await neighbors.refresh(interfaces))].sort();
    },
  };
}

const entry = (ip: string, mac: string | null, state: NeighborEntry['state']): NeighborEntry => ({ ip, ifindex: 2, mac, state });

t.test('the kernel resolving a remembered MAC changes no answer', async (t) => {
  const { refresh, neighbors } = table([{ interface: 'eth0', ip: '10.250.0.21', mac: MAC_A }]);
  t.equal(neighbors.lookup(2, 'eth0', '10.250.0.21').mac, MAC_A, 'remembered before the kernel knows it');
  t.same(await refresh([entry('10.250.0.21', MAC_A, 'reachable')]), [], 'resolved to the remembered MAC: nothing changed');
  t.same(await refresh([entry('10.250.0.21', MAC_A, 'stale')]), [], 'gone stale: same answer');
  t.same(await refresh([]), [], 'forgotten by the kernel: the remembered MAC still answers');
  t.same(await refresh([entry('10.250.0.21', null, 'failed')]), [], 'failed: the remembered MAC still answers');
});

t.test('a new or changed MAC is reported', async (t) => {
  const { refresh, saved, neighbors } = table([{ interface: 'eth0', ip: '10.250.0.21', mac: MAC_A }]);
  t.same(await refresh([entry('10.250.0.21', MAC_B, 'reachable')]), ['10.250.0.21'], 'another MAC than the remembered one');
  t.equal(neighbors.lookup(2, 'eth0', '10.250.0.21').mac, MAC_B);
  t.same(await refresh([entry('10.250.0.21', MAC_B, 'reachable'), entry('10.250.0.22', MAC_A, 'reachable')]), ['10.250.0.22'], 'a backend never seen before');
  t.same(await refresh([entry('10.250.0.21', MAC_B, 'reachable'), entry('10.250.0.23', null, 'incomplete')]), [], 'an unresolved new entry has no answer yet, and .22, forgotten by the kernel, keeps its remembered MAC');
  t.same(saved, [`eth0|10.250.0.21|${MAC_B}`, `eth0|10.250.0.22|${MAC_A}`], 'what is remembered across restarts');
});
