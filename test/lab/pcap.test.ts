import t from 'tap';
import { decodeEthernet, formatFrame, parsePcap } from '../../lab/pcap.js';

const CLIENT = [0x02, 0x00, 0x0a, 0xfa, 0x00, 0x0a];
const LB = [0x02, 0x00, 0x0a, 0xfa, 0x00, 0x02];

function ipv4(proto: number, src: number[], dst: number[], l4: number[]): number[] {
  const total = 20 + l4.length;
  return [0x45, 0, total >> 8, total & 0xff, 0, 1, 0x40, 0, 64, proto, 0, 0, ...src, ...dst, ...l4];
}

// 10.250.0.10:40000 -> 10.250.0.100:80, SYN, seq 1000
const tcpSyn = [
  ...LB, ...CLIENT, 0x08, 0x00,
  ...ipv4(6, [10, 250, 0, 10], [10, 250, 0, 100], [
    0x9c, 0x40, 0x00, 0x50, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
  ]),
];
// who-has 10.250.0.100 tell 10.250.0.10, broadcast
const arpRequest = [
  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...CLIENT, 0x08, 0x06,
  0, 1, 0x08, 0, 6, 4, 0, 1, ...CLIENT, 10, 250, 0, 10, 0, 0, 0, 0, 0, 0, 10, 250, 0, 100,
];
// 10.250.0.100:53 -> 10.250.0.10:5000, 4 bytes of payload, inside VLAN 7
const udpVlan = [
  ...CLIENT, ...LB, 0x81, 0x00, 0x00, 0x07, 0x08, 0x00,
  ...ipv4(17, [10, 250, 0, 100], [10, 250, 0, 10], [0, 53, 0x13, 0x88, 0, 12, 0, 0, 1, 2, 3, 4]),
];

function pcap(frames: number[][], opts: { bigEndian?: boolean; linktype?: number } = {}): Buffer {
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    if (opts.bigEndian) b.writeUInt32BE(n);
    else b.writeUInt32LE(n);
    return b;
  };
  const u16 = (n: number): Buffer => {
    const b = Buffer.alloc(2);
    if (opts.bigEndian) b.writeUInt16BE(n);
    else b.writeUInt16LE(n);
    return b;
  };
  const parts = [u32(0xa1b2c3d4), u16(2), u16(4), u32(0), u32(0), u32(262144), u32(opts.linktype ?? 1)];
  frames.forEach((f, i) => parts.push(u32(1700000000 + i), u32(500000), u32(f.length), u32(f.length), Buffer.from(f)));
  return Buffer.concat(parts);
}

t.test('decodes TCP, ARP and VLAN-tagged UDP frames from a pcap stream', async (t) => {
  const frames = parsePcap(pcap([tcpSyn, arpRequest, udpVlan]));
  t.equal(frames.length, 3);
  const [syn, arp, udp] = frames;
  t.match(syn, {
    time: 1700000000.5,
    srcMac: '02:00:0a:fa:00:0a',
    dstMac: '02:00:0a:fa:00:02',
    ethertype: 0x0800,
    ipv4: { src: '10.250.0.10', dst: '10.250.0.100', protocol: 6, ttl: 64 },
    tcp: { srcPort: 40000, dstPort: 80, flags: 'S', seq: 1000 },
  });
  t.match(arp, {
    dstMac: 'ff:ff:ff:ff:ff:ff',
    arp: { op: 1, senderIp: '10.250.0.10', senderMac: '02:00:0a:fa:00:0a', targetIp: '10.250.0.100' },
  });
  t.match(udp, { vlan: 7, ethertype: 0x0800, udp: { srcPort: 53, dstPort: 5000, length: 12 } });
  t.equal(formatFrame(syn!), '02:00:0a:fa:00:0a > 02:00:0a:fa:00:02 10.250.0.10:40000 > 10.250.0.100:80 tcp S');
  t.equal(formatFrame(arp!), '02:00:0a:fa:00:0a > ff:ff:ff:ff:ff:ff arp who-has 10.250.0.100 tell 10.250.0.10');
});

t.test('big-endian captures decode the same', async (t) => {
  t.same(parsePcap(pcap([tcpSyn], { bigEndian: true })), parsePcap(pcap([tcpSyn])));
});

t.test('a record cut short at the end is ignored; empty input has no frames', async (t) => {
  const whole = pcap([tcpSyn, arpRequest]);
  t.equal(parsePcap(whole.subarray(0, whole.length - 5)).length, 1);
  t.same(parsePcap(Buffer.alloc(0)), []);
});

t.test('rejects what is not an Ethernet pcap', async (t) => {
  t.throws(() => parsePcap(Buffer.from('tcpdump: listening on eth0, link-type EN10MB')), /not a pcap/);
  t.throws(() => parsePcap(pcap([], { linktype: 276 })), /not Ethernet/);
});

t.test('TCP flags are listed in F S R P A U order', async (t) => {
  const withFlags = (bits: number): string => {
    const f = [...tcpSyn];
    f[14 + 20 + 13] = bits;
    return decodeEthernet(Buffer.from(f))!.tcp!.flags;
  };
  t.equal(withFlags(0x12), 'SA');
  t.equal(withFlags(0x18), 'PA');
  t.equal(withFlags(0x11), 'FA');
  t.equal(withFlags(0x04), 'R');
  t.equal(decodeEthernet(Buffer.alloc(10)), undefined, 'too short for Ethernet');
});
