/**
 * The backend half of the DSR how-to, per farm: what a backend needs so that it accepts
 * packets addressed to the VIP and answers the client directly, without ever answering ARP
 * for the VIP (only the load balancer may). Pure text rendering.
 */
import type { Farm } from './farm.js';
import { isIpv6Text } from './ip.js';

export const SETUP_OSES = ['linux', 'windows'] as const;
export type SetupOs = (typeof SETUP_OSES)[number];

/** Interface names go into shell and PowerShell text: keep them to a safe alphabet. */
export const LINUX_IFNAME_PATTERN = '^[a-zA-Z0-9_.@-]{1,15}$';
export const WINDOWS_IFNAME_PATTERN = '^[a-zA-Z0-9 _.()#-]{1,64}$';

type SetupFarm = Pick<Farm, 'name' | 'vip' | 'vport' | 'protocol'>;

/** The start of both Linux scripts: what it is, the VIP, and the NIC it was given, checked. */
function scriptHead(farm: SetupFarm, nic: string, family: string): string[] {
  return [
    '#!/bin/sh',
    `# nftfarm: Direct Server Return set-up of a Linux backend for farm '${farm.name}'`,
    `# VIP ${farm.vip}${family}, ${farm.protocol} port(s) ${farm.vport}.`,
    `# Run as root on every backend of the farm:  sh ${farm.name}-backend.sh [NIC]`,
    `# NIC is the interface on the load balancer's network (default: ${nic}).`,
    'set -eu',
    `VIP=${farm.vip}`,
    `NIC="\${1:-${nic}}"`,
    '',
    'if ! ip link show dev "$NIC" >/dev/null 2>&1; then',
    `  echo "no interface '$NIC' here: give the NIC on the load balancer's network as the first argument" >&2`,
    '  exit 1',
    'fi',
  ];
}

/** A systemd unit that runs `command` (which puts the VIP on lo) at every boot, on systemd hosts. */
function keepAcrossReboots(farm: SetupFarm, command: string): string[] {
  const unit = `nftfarm-vip-${farm.name}.service`;
  return [
    '# Keep the VIP on lo across reboots (systemd hosts).',
    'if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then',
    `  cat > /etc/systemd/system/${unit} <<UNIT`,
    '[Unit]',
    `Description=nftfarm DSR VIP $VIP on lo (farm ${farm.name})`,
    'After=network-pre.target',
    'Before=network.target',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=/bin/sh -c '${command}'`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    'UNIT',
    '  systemctl daemon-reload',
    `  systemctl enable ${unit} >/dev/null`,
    'fi',
  ];
}

export function linuxBackendSetup(farm: SetupFarm, nic: string): string {
  if (isIpv6Text(farm.vip)) return linuxBackendSetup6(farm, nic);
  const conf = `/etc/sysctl.d/90-nftfarm-${farm.name}.conf`;
  const lines = [
    ...scriptHead(farm, nic, ''),
    '',
    '# The VIP as a /32 on the loopback: the backend accepts the packets for the VIP that the load',
    '# balancer forwards by MAC address, and its replies leave from the VIP, straight to the client.',
    'if ! ip -4 addr show dev lo | grep -q " $VIP/32 "; then',
    '  ip addr add "$VIP/32" dev lo',
    'fi',
    '',
    '# Only the load balancer may answer ARP for the VIP. arp_ignore=1: answer only for addresses',
    '# of the interface the request came in on (the VIP lives on lo). arp_announce=2: never use',
    "# the VIP as the source of ARP requests. Both for 'all' and the NIC (the kernel takes the maximum).",
    `cat > ${conf} <<SYSCTL`,
    'net.ipv4.conf.all.arp_ignore = 1',
    'net.ipv4.conf.all.arp_announce = 2',
    'net.ipv4.conf.$NIC.arp_ignore = 1',
    'net.ipv4.conf.$NIC.arp_announce = 2',
    'SYSCTL',
    `sysctl -q -p ${conf}`,
    '',
    ...keepAcrossReboots(farm, 'ip -4 addr show dev lo | grep -q " $VIP/32 " || ip addr add $VIP/32 dev lo'),
    '',
    `echo "backend ready for farm '${farm.name}': VIP $VIP on lo, ARP for it suppressed on $NIC"`,
  ];
  if (farm.protocol === 'udp' || farm.protocol === 'all') {
    lines.push('echo "note: UDP services must bind to the VIP ($VIP), not to 0.0.0.0, so that replies leave from the VIP"');
  }
  return `${lines.join('\n')}\n`;
}

/**
 * IPv6: the VIP as a /128 on lo. Nothing like arp_ignore is needed: Linux answers a neighbour
 * solicitation only for an address of the interface it came in on, and the VIP is on lo.
 */
function linuxBackendSetup6(farm: SetupFarm, nic: string): string {
  const lines = [
    ...scriptHead(farm, nic, ' (IPv6)'),
    'if [ "$(cat /proc/sys/net/ipv6/conf/lo/disable_ipv6 2>/dev/null || echo 1)" != 0 ] || [ "$(cat /proc/sys/net/ipv6/conf/$NIC/disable_ipv6 2>/dev/null || echo 1)" != 0 ]; then',
    `  echo "IPv6 is disabled on lo or $NIC: enable it (net.ipv6.conf.lo.disable_ipv6=0, net.ipv6.conf.$NIC.disable_ipv6=0)" >&2`,
    '  exit 1',
    'fi',
    '',
    '# The VIP as a /128 on the loopback: the backend accepts the packets for the VIP that the load',
    '# balancer forwards by MAC address, and its replies leave from the VIP, straight to the client.',
    '# Linux answers neighbour solicitations only for addresses of the interface they came in on,',
    '# so the VIP on lo is never announced on the NIC: only the load balancer answers for it (no',
    '# arp_ignore equivalent is needed). nodad: the load balancer answers for the VIP, a duplicate',
    '# address check would only delay it (lo runs none anyway).',
    'if ! ip -6 addr show dev lo | grep -q " $VIP/128 "; then',
    '  ip -6 addr add "$VIP/128" dev lo nodad',
    'fi',
    '',
    ...keepAcrossReboots(farm, 'ip -6 addr show dev lo | grep -q " $VIP/128 " || ip -6 addr add $VIP/128 dev lo nodad'),
    '',
    `echo "backend ready for farm '${farm.name}': VIP $VIP on lo (IPv6), not announced on $NIC"`,
  ];
  if (farm.protocol === 'udp' || farm.protocol === 'all') {
    lines.push('echo "note: UDP services must bind to the VIP ($VIP), not to ::, so that replies leave from the VIP"');
  }
  return `${lines.join('\n')}\n`;
}

export function windowsBackendSetup(farm: SetupFarm, nic: string, loopback: string): string {
  const v6 = isIpv6Text(farm.vip);
  const family = v6 ? 'ipv6' : 'ipv4';
  const lines = [
    `# nftfarm: Direct Server Return set-up of a Windows backend for farm '${farm.name}'`,
    `# VIP ${farm.vip}, ${farm.protocol} port(s) ${farm.vport}.`,
    '# Run in an elevated PowerShell on every backend of the farm:',
    `#   powershell -ExecutionPolicy Bypass -File ${farm.name}-backend.ps1 -Nic "${nic}" -Loopback "${loopback}"`,
    "# -Nic is the adapter on the load balancer's network; -Loopback is a Microsoft KM-TEST Loopback",
    '# Adapter (add it with Device Manager > Add legacy hardware, or devcon), named as you like.',
    'param(',
    `  [string]$Nic = '${nic}',`,
    `  [string]$Loopback = '${loopback}'`,
    ')',
    "$ErrorActionPreference = 'Stop'",
    `$Vip = '${farm.vip}'`,
    '',
    'foreach ($name in @($Nic, $Loopback)) {',
    '  if (-not (Get-NetAdapter -Name $name -ErrorAction SilentlyContinue)) {',
    `    throw "No network adapter named '$name': pass -Nic and -Loopback with the adapter names."`,
    '  }',
    '}',
    '',
    '# The VIP on the loopback adapter as a host address: Windows accepts the packets for the VIP',
    '# that the load balancer forwards by MAC address, and never answers ARP for it on the NIC.',
    v6 ? 'netsh interface ipv6 add address "$Loopback" $Vip/128 store=persistent' : 'netsh interface ipv4 add address "$Loopback" $Vip 255.255.255.255',
    '# Interface metric 254 keeps the loopback adapter out of normal route selection.',
    `netsh interface ${family} set interface "$Loopback" metric=254`,
    '# Weak host model: the NIC may receive packets for an address held by the loopback adapter,',
    '# and replies may leave through the NIC with the VIP as their source.',
    `netsh interface ${family} set interface "$Nic" weakhostreceive=enabled`,
    `netsh interface ${family} set interface "$Nic" weakhostsend=enabled`,
    `netsh interface ${family} set interface "$Loopback" weakhostreceive=enabled`,
    `netsh interface ${family} set interface "$Loopback" weakhostsend=enabled`,
    '',
    `Write-Output "backend ready for farm '${farm.name}': VIP $Vip on '$Loopback', weak host send and receive on '$Nic' and '$Loopback'"`,
  ];
  return `${lines.join('\r\n')}\r\n`;
}
