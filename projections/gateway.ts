// The gateway's own settings as recorded at initialisation: what profiles and the server config
// are rendered from, so a restore reproduces them from the log alone.
import type { Envelope, EventOf } from '../domain/events.js';

export type GatewayRow = EventOf<'GatewayInitialized'>['data'] & { readonly initializedAt: string };

export function evolveGateway(row: GatewayRow | undefined, event: Envelope<EventOf<'GatewayInitialized'>>): GatewayRow {
  // Initialisation happens once; a later event of the same type (a re-initialisation after a
  // restore onto a new host, say) replaces the settings but keeps the original date.
  return { ...event.data, initializedAt: row?.initializedAt ?? event.metadata.at };
}
