import { timingSafeEqual } from 'node:crypto';
import { BlockList, isIPv4 } from 'node:net';

/** Where scrapers live when no token is set: loopback and the private networks. */
const PRIVATE_NETWORKS = new BlockList();
PRIVATE_NETWORKS.addSubnet('127.0.0.0', 8, 'ipv4');
PRIVATE_NETWORKS.addSubnet('10.0.0.0', 8, 'ipv4');
PRIVATE_NETWORKS.addSubnet('172.16.0.0', 12, 'ipv4');
PRIVATE_NETWORKS.addSubnet('192.168.0.0', 16, 'ipv4');
PRIVATE_NETWORKS.addAddress('::1', 'ipv6');
PRIVATE_NETWORKS.addSubnet('fc00::', 7, 'ipv6');

/** True when `address` (a socket's remote address, IPv4-mapped IPv6 included) is on loopback or a private network. */
export function isPrivateAddress(address: string | undefined): boolean {
  if (!address) return false;
  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const plain = mapped ?? address;
  if (isIPv4(plain)) return PRIVATE_NETWORKS.check(plain, 'ipv4');
  try {
    return PRIVATE_NETWORKS.check(plain, 'ipv6');
  } catch {
    return false;
  }
}

/** True when `authorization` is `Bearer <token>`, compared in constant time. */
export function hasScrapeToken(authorization: string | undefined, token: string): boolean {
  const given = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
  if (given === undefined) return false;
  const expected = Buffer.from(token);
  const actual = Buffer.from(given);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
