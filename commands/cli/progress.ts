// A one-line progress display for long runs (a million events), on a terminal only: pipes and
// log files get the final output and nothing else.
export interface Progress {
  update(text: string): void;
  clear(): void;
}

export function terminalProgress(command: string, stream: NodeJS.WriteStream = process.stderr): Progress | undefined {
  if (!stream.isTTY) return undefined;
  let last = 0;
  let shown = false;
  return {
    update(text) {
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      shown = true;
      stream.write(`\r\x1b[K${command}: ${text}`);
    },
    clear() {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
