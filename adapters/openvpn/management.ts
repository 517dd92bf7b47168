// OpenVPN's management interface, over its unix socket: enough of the protocol to end a revoked
// user's live sessions, which a CRL alone leaves up until the next renegotiation (up to an hour).
//
// `kill <CN>` only drops the server's side of a UDP session; the client is not told and keeps
// trying for a minute. `client-kill <CID> HALT` tells the client to stop, so it exits at once
// instead of reconnecting. The client ids come from `status 2`.
import { createConnection } from 'node:net';

export type KillOutcome =
  | { readonly kind: 'killed'; readonly sessions: number }
  | { readonly kind: 'not-connected' }
  | { readonly kind: 'unreachable'; readonly reason: string };

export async function endClientSessions(socketPath: string, commonName: string, timeoutMs = 3_000): Promise<KillOutcome> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath);
    let buffer = '';
    let phase: 'banner' | 'status' | 'killing' = 'banner';
    let clientIdColumn = -1;
    const clientIds: string[] = [];
    let answered = 0;
    let killed = 0;
    const finish = (outcome: KillOutcome) => {
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
        if (line.startsWith('>') && phase !== 'banner') continue; // real-time notifications
        if (phase === 'banner' && line.startsWith('>INFO:')) {
          phase = 'status';
          socket.write('status 2\n');
        } else if (phase === 'status') {
          const fields = line.split(',');
          if (fields[0] === 'HEADER' && fields[1] === 'CLIENT_LIST') clientIdColumn = fields.indexOf('Client ID') - 1;
          else if (fields[0] === 'CLIENT_LIST' && fields[1] === commonName && clientIdColumn > 0) {
            const id = fields[clientIdColumn];
            if (id) clientIds.push(id);
          } else if (line === 'END') {
            if (clientIds.length === 0) return finish({ kind: 'not-connected' });
            phase = 'killing';
            for (const id of clientIds) socket.write(`client-kill ${id} HALT\n`);
          }
        } else if (phase === 'killing' && (line.startsWith('SUCCESS:') || line.startsWith('ERROR:'))) {
          answered++;
          if (line.startsWith('SUCCESS:')) killed++;
          if (answered === clientIds.length) finish(killed > 0 ? { kind: 'killed', sessions: killed } : { kind: 'not-connected' });
        }
      }
    });
  });
}
