#!/usr/bin/env node
// Compiles assembly/kernels.ts (AssemblyScript; it imports gemm.ts and simd-math.ts) into
// src/host/simd-kernels.generated.ts, the base64 of the .wasm plus its source hash. Run after
// editing the kernels:
//   pnpm --filter @trainer/model build:kernels
// src/host/simd.test.ts recompiles and fails if the committed module is stale.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wasmKernels } from '../../../scripts/wasm-kernels.mjs';
export { sectionIds } from '../../../scripts/wasm-kernels.mjs';

const kernels = wasmKernels({
  root: join(dirname(fileURLToPath(import.meta.url)), '..'), entry: 'kernels.ts', generated: 'src/host/simd-kernels.generated.ts', prefix: 'KERNELS',
});
export const { compileKernels, sourceHash } = kernels;

if (process.argv[1] === fileURLToPath(import.meta.url)) kernels.write();
