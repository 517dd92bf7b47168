// The networks a partial (split-tunnel) profile routes, as plain data: which routes of a VPC's
// route tables count, the order and identity of CIDRs, the VPC resolver's address, and which
// recorded route sets lack a network the gateway now serves. Pure: no I/O, no SDK types.

/** One route of an EC2 route table, reduced to the fields the rules look at. */
export interface RouteTableRoute {
  readonly destinationCidrBlock?: string | undefined;
  readonly gatewayId?: string | undefined;
  readonly vpcPeeringConnectionId?: string | undefined;
  /** `active`, or `blackhole` when the target is gone (a deleted or rejected peering, say). */
  readonly state?: string | undefined;
}

export interface ClassifiedNetworks {
  /** The VPC's own CIDR blocks, primary and secondary: every table has a `local` route for each. */
  readonly vpcCidrs: readonly string[];
  /** CIDRs of peered VPCs, from active routes whose target is a peering connection. */
  readonly peeredCidrs: readonly string[];
}

const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** The address (as an unsigned 32-bit number) and prefix length of an IPv4 CIDR; undefined when malformed. */
export function parseCidr(cidr: string): { readonly address: number; readonly bits: number } | undefined {
  const m = IPV4_CIDR.exec(cidr);
  if (!m) return undefined;
  const octets = [m[1], m[2], m[3], m[4]].map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) return undefined;
  const address = octets.reduce((acc, o) => ((acc << 8) | o) >>> 0, 0);
  return { address, bits };
}

function toDotted(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join('.');
}

/** The network of a CIDR with its host bits cleared: 10.0.3.7/16 → 10.0.0.0/16. */
export function canonicalCidr(cidr: string): string | undefined {
  const p = parseCidr(cidr);
  if (!p) return undefined;
  const mask = p.bits === 0 ? 0 : (0xffffffff << (32 - p.bits)) >>> 0;
  return `${toDotted((p.address & mask) >>> 0)}/${p.bits}`;
}

/** Canonical, de-duplicated, in address order (then shorter prefix first): one spelling per set. */
export function normaliseCidrs(cidrs: Iterable<string>): string[] {
  const unique = new Set<string>();
  for (const c of cidrs) {
    const canonical = canonicalCidr(c.trim());
    if (canonical) unique.add(canonical);
  }
  return [...unique].sort((a, b) => {
    const pa = parseCidr(a)!;
    const pb = parseCidr(b)!;
    return pa.address - pb.address || pa.bits - pb.bits;
  });
}

/**
 * Reads the networks off a VPC's route tables, which needs only ec2:DescribeRouteTables:
 * - every `local` route is one of the VPC's own CIDR blocks (AWS adds one per associated block,
 *   primary or secondary, to every table);
 * - a route whose target is a VPC peering connection and whose state is `active` reaches a peered
 *   VPC; a `blackhole` one (peering deleted, rejected or expired) reaches nothing and is left out.
 * IPv6 routes and prefix-list destinations carry no IPv4 CIDR and are ignored.
 */
export function classifyRoutes(routes: Iterable<RouteTableRoute>): ClassifiedNetworks {
  const vpc: string[] = [];
  const peered: string[] = [];
  for (const r of routes) {
    const cidr = r.destinationCidrBlock;
    if (cidr === undefined || parseCidr(cidr) === undefined) continue;
    if (r.gatewayId === 'local') vpc.push(cidr);
    else if (r.vpcPeeringConnectionId && r.state === 'active') peered.push(cidr);
  }
  const vpcCidrs = normaliseCidrs(vpc);
  const own = new Set(vpcCidrs);
  return { vpcCidrs, peeredCidrs: normaliseCidrs(peered).filter((c) => !own.has(c)) };
}

/**
 * The Amazon-provided DNS server of a VPC: the base of its primary IPv4 CIDR plus two
 * (10.0.0.0/16 → 10.0.0.2). Undefined for a block too small to hold it.
 */
export function vpcResolverOf(primaryCidr: string): string | undefined {
  const p = parseCidr(primaryCidr);
  if (!p || p.bits > 30) return undefined;
  const mask = p.bits === 0 ? 0 : (0xffffffff << (32 - p.bits)) >>> 0;
  return toDotted(((p.address & mask) + 2) >>> 0);
}

export type RouteSource = 'gateway.conf' | 'discovered' | 'none';

/**
 * The networks new partial profiles get: ROUTES in gateway.conf when the operator set it (an
 * explicit choice wins), else the last discovery recorded in the log, else none.
 */
export function effectiveRoutes(
  configured: readonly string[],
  discovered: readonly string[] | undefined,
): { readonly routes: readonly string[]; readonly source: RouteSource } {
  if (configured.length > 0) return { routes: normaliseCidrs(configured), source: 'gateway.conf' };
  if (discovered && discovered.length > 0) return { routes: normaliseCidrs(discovered), source: 'discovered' };
  return { routes: [], source: 'none' };
}

/** The networks of `current` that a profile issued with `recorded` does not route. */
export function missingNetworks(recorded: readonly string[], current: readonly string[]): string[] {
  const have = new Set(normaliseCidrs(recorded));
  return normaliseCidrs(current).filter((c) => !have.has(c));
}

/** What changed between two route sets, for the refresh command's report. */
export function diffRoutes(before: readonly string[], after: readonly string[]): { added: string[]; removed: string[] } {
  const b = new Set(normaliseCidrs(before));
  const a = new Set(normaliseCidrs(after));
  return { added: [...a].filter((c) => !b.has(c)), removed: [...b].filter((c) => !a.has(c)) };
}

export function sameRoutes(a: readonly string[], b: readonly string[]): boolean {
  const x = normaliseCidrs(a);
  const y = normaliseCidrs(b);
  return x.length === y.length && x.every((c, i) => c === y[i]);
}
