// The gateway's own settings as recorded at initialisation: what profiles and the server config
// are rendered from, so a restore reproduces them from the log alone. Later gateway events bring
// the discovered networks and a renewed server certificate.
import type { Envelope, EventOf, GatewayEvent } from '../domain/events.js';

export interface RecordedNetworks {
  readonly routes: readonly string[];
  readonly source: EventOf<'NetworksDiscovered'>['data']['source'];
  readonly vpcId: string;
  readonly region: string;
  readonly vpcCidrs: readonly string[];
  readonly peeredCidrs: readonly string[];
  readonly primaryCidr?: string | undefined;
  /** When these networks were first recorded (an unchanged refresh records nothing). */
  readonly discoveredAt: string;
}

export type GatewayRow = EventOf<'GatewayInitialized'>['data'] & {
  readonly initializedAt: string;
  /** The last networks discovery recorded; absent until one ran. */
  readonly networks?: RecordedNetworks;
  readonly serverCertificateRenewedAt?: string;
};

export function evolveGateway(row: GatewayRow | undefined, event: Envelope<GatewayEvent>): GatewayRow | undefined {
  switch (event.type) {
    case 'GatewayInitialized':
      // Initialisation happens once; a later event of the same type (a re-initialisation after a
      // restore onto a new host, say) replaces the settings but keeps the original date and what
      // was learnt since.
      return {
        ...(row ?? {}),
        ...event.data,
        initializedAt: row?.initializedAt ?? event.metadata.at,
      };
    case 'NetworksDiscovered':
      if (!row) return row;
      return { ...row, networks: { ...event.data, discoveredAt: event.metadata.at } };
    case 'ServerCertificateRenewed':
      if (!row) return row;
      return {
        ...row,
        serverCertificatePem: event.data.serverCertificatePem,
        serverCommonName: event.data.serverCommonName,
        serverCertificateRenewedAt: event.metadata.at,
      };
  }
}
