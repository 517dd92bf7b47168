// Checks the signatures of a restore's 100,000 certificates (SHA-256 with RSA, about 85 µs each)
// in a thread of its own, a batch at a time. On libuv's pool (crypto.verify with a callback) each
// check woke a pool thread that, on a machine whose cores are all busy, took the core from the
// thread reading the archive: measured, the reading thread's profile showed some 10 s spent in
// dispatching 123,000 checks. One message per batch wakes this thread once per batch instead.
// The thread's code is a few lines of plain JavaScript handed to the Worker as source. A batch
// crosses as one buffer, moved rather than copied (measured alone, 123,000 checks in batches of
// 64: 0.17 s of CPU to post, against 0.99 s as pairs of small arrays that each get cloned).
import type { KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
const keys = new Map();
parentPort.on('message', ({ batch, keyId, keyDer, bytes, ends }) => {
  if (keyDer) keys.set(keyId, createPublicKey({ key: Buffer.from(keyDer), format: 'der', type: 'spki' }));
  const key = keys.get(keyId);
  const results = [];
  for (let i = 0, at = 0; i < ends.length; i += 2) {
    const tbs = bytes.subarray(at, ends[i]);
    const signature = bytes.subarray(ends[i], ends[i + 1]);
    at = ends[i + 1];
    try {
      results.push(verify('sha256', tbs, key, signature));
    } catch (error) {
      results.push(String((error && error.message) || error));
    }
  }
  parentPort.postMessage({ batch, results });
});
`;

/** Checks gathered before a batch is handed over. */
const BATCH = 64;
/** A batch's first buffer: room for 64 certificates of a 3072-bit CA (TBS about 1 KB, signature 384 bytes). */
const BATCH_BYTES = BATCH * 1536;

type Outcome = boolean | Error;

export class SignatureThread {
  private worker: Worker | undefined;
  private failure: Error | undefined;
  private readonly keyIds = new Map<KeyObject, number>();
  private key: KeyObject | undefined;
  /** The batch being gathered: each check's TBS bytes then its signature, back to back. */
  private bytes = new Uint8Array(BATCH_BYTES);
  private used = 0;
  /** Where each check's TBS bytes and signature end in `bytes`, two numbers per check. */
  private ends: number[] = [];
  private waiters: ((outcome: Outcome) => void)[] = [];
  private readonly posted = new Map<number, ((outcome: Outcome) => void)[]>();
  private nextBatch = 0;

  /** Whether `signature` over `tbs` verifies with `issuer`; an Error when the check itself failed. */
  check(tbs: Uint8Array, signature: Uint8Array, issuer: KeyObject): Promise<Outcome> {
    if (this.key !== issuer) this.flush();
    this.key = issuer;
    // Copies: the originals are views of a whole certificate's DER, which a message would copy entire.
    this.append(tbs);
    this.append(signature);
    const outcome = new Promise<Outcome>((resolve) => this.waiters.push(resolve));
    if (this.ends.length >= 2 * BATCH) this.flush();
    return outcome;
  }

  /** Hands over the checks gathered so far (before waiting for any of them). */
  flush(): void {
    if (this.ends.length === 0) return;
    const waiters = this.waiters;
    if (this.failure) {
      for (const w of waiters) w(this.failure);
    } else {
      const worker = this.start();
      let keyId = this.keyIds.get(this.key!);
      let keyDer: Uint8Array | undefined;
      if (keyId === undefined) {
        keyId = this.keyIds.size;
        this.keyIds.set(this.key!, keyId);
        keyDer = new Uint8Array(this.key!.export({ type: 'spki', format: 'der' }));
      }
      const batch = this.nextBatch++;
      this.posted.set(batch, waiters);
      const bytes = this.bytes.subarray(0, this.used);
      const ends = Uint32Array.from(this.ends);
      worker.postMessage({ batch, keyId, keyDer, bytes, ends }, [bytes.buffer, ends.buffer]);
    }
    this.reset();
    this.waiters = [];
  }

  private append(part: Uint8Array): void {
    if (this.used + part.length > this.bytes.length) {
      const grown = new Uint8Array(Math.max(2 * this.bytes.length, this.used + part.length));
      grown.set(this.bytes.subarray(0, this.used));
      this.bytes = grown;
    }
    this.bytes.set(part, this.used);
    this.used += part.length;
    this.ends.push(this.used);
  }

  private reset(): void {
    this.bytes = new Uint8Array(BATCH_BYTES);
    this.used = 0;
    this.ends = [];
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(SOURCE, { eval: true });
    worker.on('message', ({ batch, results }: { batch: number; results: (boolean | string)[] }) => {
      const waiters = this.posted.get(batch) ?? [];
      this.posted.delete(batch);
      waiters.forEach((w, i) => {
        const r = results[i];
        w(typeof r === 'boolean' ? r : new Error(`the signature check failed: ${String(r)}`));
      });
    });
    const stopped = (error: Error) => {
      this.failure ??= error;
      for (const waiters of this.posted.values()) for (const w of waiters) w(this.failure);
      this.posted.clear();
    };
    worker.on('error', stopped);
    worker.on('exit', () => stopped(new Error('the signature checking thread stopped')));
    this.worker = worker;
    return worker;
  }

  /** Stops the thread; checks still pending get an Error. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.failure ??= new Error('the signature checks were stopped');
    for (const w of this.waiters) w(this.failure);
    this.reset();
    this.waiters = [];
    if (worker) await worker.terminate();
  }
}
