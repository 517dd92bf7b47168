// Checks the signatures of a restore's 100,000 certificates (SHA-256 with RSA, about 85 µs each)
// in a thread of its own, a batch at a time. On libuv's pool (crypto.verify with a callback) each
// check woke a pool thread that, on a machine whose cores are all busy, took the core from the
// thread reading the archive: measured, the reading thread's profile showed some 10 s spent in
// dispatching 123,000 checks. One message per batch wakes this thread once per batch instead.
// The thread's code is a few lines of plain JavaScript handed to the Worker as source.
import type { KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
const keys = new Map();
parentPort.on('message', ({ batch, keyId, keyDer, items }) => {
  if (keyDer) keys.set(keyId, createPublicKey({ key: Buffer.from(keyDer), format: 'der', type: 'spki' }));
  const key = keys.get(keyId);
  const results = [];
  for (const { tbs, signature } of items) {
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

type Outcome = boolean | Error;

export class SignatureThread {
  private worker: Worker | undefined;
  private failure: Error | undefined;
  private readonly keyIds = new Map<KeyObject, number>();
  private key: KeyObject | undefined;
  private items: { tbs: Uint8Array; signature: Uint8Array }[] = [];
  private waiters: ((outcome: Outcome) => void)[] = [];
  private readonly posted = new Map<number, ((outcome: Outcome) => void)[]>();
  private nextBatch = 0;

  /** Whether `signature` over `tbs` verifies with `issuer`; an Error when the check itself failed. */
  check(tbs: Uint8Array, signature: Uint8Array, issuer: KeyObject): Promise<Outcome> {
    if (this.key !== issuer) this.flush();
    this.key = issuer;
    // Copies: the originals are views of a whole certificate's DER, which a message would copy entire.
    this.items.push({ tbs: new Uint8Array(tbs), signature: new Uint8Array(signature) });
    const outcome = new Promise<Outcome>((resolve) => this.waiters.push(resolve));
    if (this.items.length >= BATCH) this.flush();
    return outcome;
  }

  /** Hands over the checks gathered so far (before waiting for any of them). */
  flush(): void {
    if (this.items.length === 0) return;
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
      worker.postMessage({ batch, keyId, keyDer, items: this.items });
    }
    this.items = [];
    this.waiters = [];
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
    this.items = [];
    this.waiters = [];
    if (worker) await worker.terminate();
  }
}
