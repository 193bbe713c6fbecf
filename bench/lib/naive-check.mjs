// Baseline: parse every line of both snapshots into maps, then compare. What a first version would do.
import { readFileSync } from 'node:fs';

const [pre, post] = process.argv.slice(2);
const load = (file) => {
  const map = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const r = JSON.parse(line);
    if (r.type === 'header' || r.type === 'trailer') continue;
    const key = `${r.type}\u0000${r.id}`;
    map.set(key, map.has(key) ? null : r);
  }
  return map;
};
const a = load(pre);
const b = load(post);
let findings = 0;
for (const [k, v] of a) {
  const w = b.get(k);
  if (w === undefined || v === null || w === null || JSON.stringify(v) !== JSON.stringify(w)) findings++;
}
for (const k of b.keys()) if (!a.has(k)) findings++;
process.stdout.write(`${findings}\n`);
