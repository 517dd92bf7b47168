#!/usr/bin/env node
import { main } from '../cli/run-cli.js';
import { spec } from '../cli/ov_backup.js';

main(spec);
