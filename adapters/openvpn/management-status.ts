// Who is connected, from OpenVPN's management interface (`status 2`), for ov_status. Read only:
// the socket is opened, one command sent, the CLIENT_LIST rows parsed, the socket closed.
import { createConnection } from 'node:net';

export interface ConnectedClient {
  readonly commonName: string;
  readonly realAddress: string;
  readonly virtualAddress: string;
  readonly connectedSince: string;
  readonly clientId: string | undefined;
}

export type StatusOutcome =
  | { readonly kind: 'answered'; readonly clients: readonly ConnectedClient[] }
  | { readonly kind: 'unreachable'; readonly reason: string };

export async function readConnectedClients(socketPath: string, timeoutMs = 3_000): Promise<StatusOutcome> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath);
    let buffer = '';
    let sent = false;
    let header: string[] = [];
    const clients: ConnectedClient[] = [];
    const finish = (outcome: StatusOutcome) => {
      clearTimeout(timer);
      socket.end('quit\n');
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ kind: 'unreachable', reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('error', (error: NodeJS.ErrnoException) => finish({ kind: 'unreachable', reason: error.code ?? error.message }));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const raw of lines) {
        const line = raw.trim();
        if (!sent) {
          if (line.startsWith('>INFO:')) {
            sent = true;
            socket.write('status 2\n');
          }
          continue;
        }
        if (line.startsWith('>')) continue; // real-time notifications
        const fields = line.split(',');
        if (fields[0] === 'HEADER' && fields[1] === 'CLIENT_LIST') header = fields.slice(1);
        else if (fields[0] === 'CLIENT_LIST') {
          const at = (name: string) => {
            const i = header.indexOf(name);
            return i < 0 ? undefined : fields[i];
          };
          clients.push({
            commonName: fields[1] ?? '',
            realAddress: at('Real Address') ?? '',
            virtualAddress: at('Virtual Address') ?? '',
            connectedSince: at('Connected Since') ?? '',
            clientId: at('Client ID'),
          });
        } else if (line === 'END') return finish({ kind: 'answered', clients });
        else if (line.startsWith('ERROR:')) return finish({ kind: 'unreachable', reason: line });
      }
    });
  });
}
