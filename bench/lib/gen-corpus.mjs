// Writes a snapshot pair for bench/integrity in a child process (so its memory is not the bench's).
import { writeCorpus } from '../../test/support/snapshot-corpus.mjs';

const [pre, post, records, discrepancies] = process.argv.slice(2);
const n = Number(discrepancies);
const quarter = Math.floor(n / 4);
const r = writeCorpus({
  pre,
  post,
  records: Number(records),
  seed: 2026,
  discrepancies: n ? { missing: quarter, unexpected: quarter, mismatch: quarter, duplicate: n - 3 * quarter } : {},
});
process.stdout.write(`${r.records}\n`);
