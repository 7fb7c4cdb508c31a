#!/usr/bin/env node
// Compiles assembly/codec-kernels.ts (AssemblyScript) into src/kernels/codec-kernels.generated.ts:
// the base64 of the .wasm plus the hash of its sources. Run after editing the kernels:
//   pnpm --filter @trainer/comm build:kernels
// src/kernels/kernel-arena.test.ts recompiles and fails if the committed module is stale.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wasmKernels } from '../../../scripts/wasm-kernels.mjs';
export { sectionIds } from '../../../scripts/wasm-kernels.mjs';

const kernels = wasmKernels({
  root: join(dirname(fileURLToPath(import.meta.url)), '..'), entry: 'codec-kernels.ts', generated: 'src/kernels/codec-kernels.generated.ts', prefix: 'CODEC_KERNELS',
});
export const { compileKernels, sourceHash } = kernels;

if (process.argv[1] === fileURLToPath(import.meta.url)) kernels.write();
