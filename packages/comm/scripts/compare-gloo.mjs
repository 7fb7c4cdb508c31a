#!/usr/bin/env node
// Runs our all-reduce benchmark and PyTorch gloo's alternately, several rounds, on this machine,
// and prints busbw (GB/s, nccl-tests definition) per size: median (best) of each, and the ratio
// of the medians. Alternating in one session is the only fair comparison on a shared machine.
//
//   node packages/comm/scripts/compare-gloo.mjs --world 4 --sizes 16MiB,64MiB [--rounds 5]
//     [--codec fp32|bf16|fp16] [--algorithm auto|ring|direct] [--buffer plain|registered] [--gloo /work/shared/bench/gloo_allreduce.py] [--json]
//
// gloo runs with /usr/bin/python3 and OMP_NUM_THREADS=1, as /work/shared/bench/peers.sh does.
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const world = arg('world', '4');
const sizes = arg('sizes', '16MiB,64MiB');
const rounds = Number(arg('rounds', '5'));
const codec = arg('codec', 'fp32');
const algorithm = arg('algorithm', 'auto');
const buffer = arg('buffer', 'plain');
const gloo = arg('gloo', '/work/shared/bench/gloo_allreduce.py');
const { parseSize } = await import(join(root, 'dist/index.js'));
const bytes = sizes.split(',').map(parseSize);

function jsonLines(text) {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

const ours = new Map(bytes.map((b) => [b, []]));
const cpu = new Map(bytes.map((b) => [b, []]));
const theirs = new Map(bytes.map((b) => [b, []]));
const load0 = loadavg()[0];
for (let r = 0; r < rounds; r++) {
  const mine = execFileSync(process.execPath, [join(root, 'dist/bench/allreduce-main.js'), '--world', world, '--sizes', sizes, '--codec', codec, '--algorithm', algorithm, '--buffer', buffer, '--json'], { encoding: 'utf8' });
  for (const x of jsonLines(mine)) {
    ours.get(x.bytes)?.push(x.busbw_gbs);
    cpu.get(x.bytes)?.push(x.cpu_all_ms);
  }
  const env = { ...process.env, OMP_NUM_THREADS: '1' };
  delete env.OPENBLAS_CORETYPE;
  const peer = execFileSync('/usr/bin/python3', [gloo, '--world', world, '--sizes', bytes.join(',')], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'ignore'] });
  for (const x of jsonLines(peer)) theirs.get(x.bytes)?.push(x.busbw_gbs);
  process.stderr.write(`round ${r + 1}/${rounds} done\n`);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rows = bytes.map((b) => ({
  world: Number(world), bytes: b, codec, algorithm, buffer, rounds,
  gloo_median: median(theirs.get(b)), gloo_best: Math.max(...theirs.get(b)),
  ours_median: median(ours.get(b)), ours_best: Math.max(...ours.get(b)),
  ratio_of_medians: median(ours.get(b)) / median(theirs.get(b)),
  ours_cpu_all_ms_median: median(cpu.get(b)),
}));
if (process.argv.includes('--json')) {
  for (const row of rows) console.log(JSON.stringify(row));
} else {
  console.log(`world ${world}, ours ${codec} (${algorithm}, ${buffer} buffer) vs gloo fp32, ${rounds} alternating rounds, load average ${load0.toFixed(1)} -> ${loadavg()[0].toFixed(1)}`);
  console.log('| size | gloo busbw median (best) | ours median (best) | ours / gloo | our CPU per call, all ranks |');
  for (const x of rows) {
    console.log(`| ${x.bytes / 2 ** 20} MiB | ${x.gloo_median.toFixed(2)} (${x.gloo_best.toFixed(2)}) | ${x.ours_median.toFixed(2)} (${x.ours_best.toFixed(2)}) | ${x.ratio_of_medians.toFixed(2)}x | ${x.ours_cpu_all_ms_median.toFixed(0)} ms |`);
  }
}
