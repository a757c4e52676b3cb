#!/usr/bin/env node
// The `berth` command: runs the compiled CLI (npm ci compiles it through `prepare`).
import { main } from '../dist/src/cli/main.js';

await main(process.argv);
