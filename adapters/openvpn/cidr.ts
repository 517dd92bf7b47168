// OpenVPN's config files speak "network netmask", operators and AWS speak CIDR.
export function cidrToNetworkAndMask(cidr: string): { network: string; netmask: string } {
  const [address = '', bitsText = ''] = cidr.split('/');
  const bits = Number(bitsText);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const ip = address.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
  return { network: toDotted((ip & mask) >>> 0), netmask: toDotted(mask) };
}

function toDotted(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join('.');
}
