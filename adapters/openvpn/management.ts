// OpenVPN's management interface, over its unix socket: enough of the protocol to end a revoked
// user's live sessions, which a CRL alone leaves up until the next renegotiation (up to an hour).
import { createConnection } from 'node:net';

export type KillOutcome =
  | { readonly kind: 'killed'; readonly reply: string }
  | { readonly kind: 'not-connected'; readonly reply: string }
  | { readonly kind: 'unreachable'; readonly reason: string };

export async function killClientSessions(socketPath: string, commonName: string, timeoutMs = 3_000): Promise<KillOutcome> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath);
    let buffer = '';
    let sent = false;
    const finish = (outcome: KillOutcome) => {
      clearTimeout(timer);
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
        if (!sent && line.startsWith('>INFO:')) {
          sent = true;
          socket.write(`kill ${commonName}\n`);
        } else if (sent && line.startsWith('SUCCESS:')) {
          socket.write('quit\n');
          finish({ kind: 'killed', reply: line });
        } else if (sent && line.startsWith('ERROR:')) {
          socket.write('quit\n');
          finish({ kind: 'not-connected', reply: line });
        }
      }
    });
  });
}
