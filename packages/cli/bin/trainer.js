#!/usr/bin/env node
// The `trainer` command. The code lives in ../dist (built by `pnpm build`).
import { main } from '../dist/main.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`trainer: ${err && err.stack ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
