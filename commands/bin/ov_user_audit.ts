#!/usr/bin/env node
import { main } from '../cli/run-cli.js';
import { spec } from '../cli/ov_user_audit.js';

main(spec);
