// What the benchmarks share to seed a gateway's log: a seeded random sequence (so every run plans
// the same history) and unique certificate serials. Not a test.
import { randomBytes } from 'node:crypto';

/** A small seeded PRNG (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Unique random certificate serials: 16 bytes, positive and minimal (first byte 0x01–0x7f). */
export class SerialSource {
  private readonly seen = new Set<string>();
  // Random bytes drawn 1 MiB at a time: a million serials from one randomBytes call each was slow.
  private pool = Buffer.alloc(0);
  private at = 0;

  next(): string {
    for (;;) {
      if (this.at + 16 > this.pool.length) {
        this.pool = randomBytes(16 * 65_536);
        this.at = 0;
      }
      const bytes = this.pool.subarray(this.at, this.at + 16);
      this.at += 16;
      bytes[0] = bytes[0]! & 0x7f;
      if (bytes[0] === 0) continue;
      const hex = bytes.toString('hex');
      if (this.seen.has(hex)) continue;
      this.seen.add(hex);
      return hex;
    }
  }

  /** How many serials were handed out. */
  get size(): number {
    return this.seen.size;
  }
}
