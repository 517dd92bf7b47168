#!/usr/bin/env node
import { main } from '../cli/run-cli.js';
import { followSpec } from '../cli/ov_follow.js';

const controller = new AbortController();
const stop = (signal: NodeJS.Signals): void => {
  if (controller.signal.aborted) return;
  process.stdout.write(`ov_follow: ${signal} received, stopping\n`);
  controller.abort();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
main(followSpec(controller.signal));
