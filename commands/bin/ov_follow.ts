#!/usr/bin/env node
import { main } from '../cli/run-cli.js';
import { spec } from '../cli/ov_follow.js';

main(spec);
