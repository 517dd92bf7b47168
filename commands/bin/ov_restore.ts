#!/usr/bin/env node
import { main } from '../cli/run-cli.js';
import { restoreCommand } from '../cli/ov_restore.js';

// The staging store is filled by a worker thread whose script is built beside this one.
main(restoreCommand(new URL('./restore-staging-worker.js', import.meta.url)));
