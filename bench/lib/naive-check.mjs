// Baseline: parse every line of both snapshots into maps, then compare. What a first version would do.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

const [pre, post] = process.argv.slice(2);
const load = async (file) => {
  const map = new Map();
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (!line) continue;
    const r = JSON.parse(line);
    if (r.type === 'header' || r.type === 'trailer') continue;
    const key = `${r.type}\u0000${r.id}`;
    map.set(key, map.has(key) ? null : r);
  }
  return map;
};
const a = await load(pre);
const b = await load(post);
let findings = 0;
for (const [k, v] of a) {
  const w = b.get(k);
  if (w === undefined || v === null || w === null || JSON.stringify(v) !== JSON.stringify(w)) findings++;
}
for (const k of b.keys()) if (!a.has(k)) findings++;
process.stdout.write(`${findings}\n`);
