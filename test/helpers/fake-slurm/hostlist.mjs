// Slurm host lists, as `scontrol show hostnames` expands them: `node[0-3,7],gpu01,rack[08-10]`
// -> node0 node1 node2 node3 node7 gpu01 rack08 rack09 rack10 (one bracket group per name;
// zero padding kept).
export function expandHostlist(list) {
  const names = [];
  // Split on the commas outside brackets.
  let depth = 0;
  let part = '';
  const parts = [];
  for (const ch of list) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(part);
      part = '';
    } else part += ch;
  }
  parts.push(part);
  for (const p of parts.filter(Boolean)) {
    const m = /^([^[]*)\[([^\]]+)\](.*)$/.exec(p);
    if (!m) {
      names.push(p);
      continue;
    }
    for (const range of m[2].split(',')) {
      const [lo, hi = lo] = range.split('-');
      for (let i = Number(lo); i <= Number(hi); i++) names.push(m[1] + String(i).padStart(lo.length, '0') + m[3]);
    }
  }
  return names;
}
