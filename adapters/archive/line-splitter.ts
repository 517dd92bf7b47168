// Newline-delimited bytes (events.ndjson) cut into lines as they arrive in chunks of any size: a
// line split across chunks is joined, and bytes left after the last newline wait for the next.
// The archive reader has its own, bounded and numbered, variant (backup-archive.ts `lines`).

export class LineSplitter {
  private carry: Buffer[] = [];
  private carried = 0;

  /** Calls `line` with each line `chunk` completes, in order; `chunk` may be reused afterwards. */
  push(chunk: Buffer, line: (text: string) => void): void {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      if (this.carried > 0) {
        this.carry.push(chunk.subarray(start, nl));
        line(Buffer.concat(this.carry).toString('utf8'));
        this.carry = [];
        this.carried = 0;
      } else {
        line(chunk.toString('utf8', start, nl));
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      // A copy: the caller may fill `chunk` again before the line ends.
      this.carry.push(Buffer.from(chunk.subarray(start)));
      this.carried += chunk.length - start;
    }
  }

  /** After the last chunk: throws when the bytes end in the middle of a line. */
  end(what: string): void {
    if (this.carried > 0) throw new Error(`${what} ends in the middle of a line`);
  }
}
