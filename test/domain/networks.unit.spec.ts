// The network and DNS rules as a rule book: which routes of a route table count, how CIDR sets
// compare, where the VPC resolver is, which networks a recorded profile lacks.
import { describe, expect, it } from 'vitest';
import { planDns } from '../../domain/dns.js';
import {
  canonicalCidr,
  classifyRoutes,
  diffRoutes,
  effectiveRoutes,
  missingNetworks,
  normaliseCidrs,
  sameRoutes,
  vpcResolverOf,
} from '../../domain/networks.js';

describe('route tables → networks', () => {
  it('given local routes for a primary and a secondary block, then both are the VPC\'s networks', () => {
    expect(
      classifyRoutes([
        { destinationCidrBlock: '10.0.0.0/16', gatewayId: 'local', state: 'active' },
        { destinationCidrBlock: '100.64.0.0/20', gatewayId: 'local', state: 'active' },
      ]),
    ).toEqual({ vpcCidrs: ['10.0.0.0/16', '100.64.0.0/20'], peeredCidrs: [] });
  });

  it('given peering routes, then only the active ones reach a peered VPC; a blackhole (deleted peering) does not', () => {
    expect(
      classifyRoutes([
        { destinationCidrBlock: '10.0.0.0/16', gatewayId: 'local', state: 'active' },
        { destinationCidrBlock: '10.1.0.0/16', vpcPeeringConnectionId: 'pcx-1', state: 'active' },
        { destinationCidrBlock: '172.31.0.0/16', vpcPeeringConnectionId: 'pcx-2', state: 'blackhole' },
      ]).peeredCidrs,
    ).toEqual(['10.1.0.0/16']);
  });

  it('given internet, NAT, transit-gateway, IPv6 and prefix-list routes, then none of them is a network of the VPC', () => {
    expect(
      classifyRoutes([
        { destinationCidrBlock: '0.0.0.0/0', gatewayId: 'igw-1', state: 'active' },
        { destinationCidrBlock: '10.9.0.0/16', gatewayId: 'tgw-1', state: 'active' },
        { destinationCidrBlock: undefined, gatewayId: 'local', state: 'active' },
        { destinationCidrBlock: undefined, vpcPeeringConnectionId: 'pcx-3', state: 'active' },
      ]),
    ).toEqual({ vpcCidrs: [], peeredCidrs: [] });
  });

  it('given the same block in several tables, then it is listed once, in address order', () => {
    expect(normaliseCidrs(['192.168.1.0/24', '10.0.0.0/16', '10.0.0.0/16', '10.0.0.0/8'])).toEqual(['10.0.0.0/8', '10.0.0.0/16', '192.168.1.0/24']);
  });

  it('given host bits, then the canonical network is used; malformed text is dropped', () => {
    expect(canonicalCidr('10.0.3.7/16')).toBe('10.0.0.0/16');
    expect(normaliseCidrs(['10.0.0.0/33', '300.0.0.0/8', 'nonsense', '10.2.0.0/16'])).toEqual(['10.2.0.0/16']);
  });
});

describe('the VPC resolver', () => {
  it('is the base of the primary block plus two', () => {
    expect(vpcResolverOf('10.40.0.0/16')).toBe('10.40.0.2');
    expect(vpcResolverOf('172.16.32.0/20')).toBe('172.16.32.2');
    expect(vpcResolverOf('10.40.7.9/16')).toBe('10.40.0.2');
  });
});

describe('which networks new partial profiles get', () => {
  it('given ROUTES in gateway.conf, then it wins over discovery', () => {
    expect(effectiveRoutes(['10.20.0.0/16'], ['10.40.0.0/16'])).toEqual({ routes: ['10.20.0.0/16'], source: 'gateway.conf' });
  });
  it('given no ROUTES, then the last discovery', () => {
    expect(effectiveRoutes([], ['10.50.0.0/16', '10.40.0.0/16'])).toEqual({ routes: ['10.40.0.0/16', '10.50.0.0/16'], source: 'discovered' });
  });
  it('given neither, then none', () => {
    expect(effectiveRoutes([], undefined)).toEqual({ routes: [], source: 'none' });
  });
});

describe('stale profiles', () => {
  it('given a profile issued before a peering appeared, then it lacks the peered network', () => {
    expect(missingNetworks(['10.40.0.0/16'], ['10.40.0.0/16', '10.50.0.0/16'])).toEqual(['10.50.0.0/16']);
  });
  it('given a profile that routes more than the gateway now serves, then it lacks nothing', () => {
    expect(missingNetworks(['10.40.0.0/16', '10.99.0.0/16'], ['10.40.0.0/16'])).toEqual([]);
  });
  it('compares sets, not spellings', () => {
    expect(sameRoutes(['10.0.0.0/16', '10.1.0.0/16'], ['10.1.0.0/16', '10.0.0.0/16'])).toBe(true);
    expect(diffRoutes(['10.0.0.0/16', '10.1.0.0/16'], ['10.1.0.0/16', '10.2.0.0/16'])).toEqual({ added: ['10.2.0.0/16'], removed: ['10.0.0.0/16'] });
  });
});

describe('the DNS plan', () => {
  it('given only a discovered VPC, then its resolver for every query', () => {
    expect(planDns({ configuredServers: [], vpcResolver: '10.40.0.2', domainRoutes: [] })).toEqual({ servers: ['10.40.0.2'], resolveDomains: [], serverSource: 'vpc' });
  });
  it('given domain routes, then split DNS through the VPC resolver', () => {
    expect(planDns({ configuredServers: [], vpcResolver: '10.40.0.2', domainRoutes: ['Internal.Example.com.', 'corp.local'] })).toEqual({
      servers: ['10.40.0.2'],
      resolveDomains: ['internal.example.com', 'corp.local'],
      serverSource: 'vpc',
    });
  });
  it('given VPN_DNS_SERVERS, then those instead of the VPC resolver', () => {
    expect(planDns({ configuredServers: ['10.0.0.53'], vpcResolver: '10.40.0.2', domainRoutes: [] }).servers).toEqual(['10.0.0.53']);
  });
  it('given no resolver at all, then nothing is pushed', () => {
    expect(planDns({ configuredServers: [], vpcResolver: undefined, domainRoutes: ['a.example'] }).servers).toEqual([]);
  });
});
