// `npm run drills [-- --long]`: every drill, then a table of drill, trials, passed, and what was lost.
import { badHotfix } from './hotfix.mjs';
import { chaosTrials } from './chaos.mjs';
import { crashResume } from './crash.mjs';
import { engineKill } from './engine-kill.mjs';
import { followerUnderLoad } from './follower.mjs';
import { overload } from './load.mjs';
import { apiFuzz, playbookFuzz, snapshotFuzz } from './fuzz.mjs';
import { journalPowerLoss, walPowerLoss } from './powerloss.mjs';
import { switchover } from './switchover.mjs';

export const DRILLS = [
  playbookFuzz,
  snapshotFuzz,
  apiFuzz,
  walPowerLoss,
  journalPowerLoss,
  badHotfix,
  crashResume,
  engineKill,
  switchover,
  overload,
  followerUnderLoad,
  chaosTrials,
];

const long = process.argv.includes('--long');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
const rows = [];
let failed = false;
for (const drill of DRILLS) {
  if (only && !drill.name.includes(only)) continue;
  const started = performance.now();
  process.stderr.write(`drill: ${drill.name} ...\n`);
  const r = await drill.run(drill.trials(long), 2026);
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  rows.push([drill.name, String(r.trials), String(r.passed), String(r.lost), `${secs}s`, r.detail]);
  if (r.passed !== r.trials || r.lost !== 0) {
    failed = true;
    for (const f of r.failures.slice(0, 10)) process.stderr.write(`  ✗ ${f}\n`);
  }
}
const head = ['drill', 'trials', 'passed', 'lost', 'time', 'detail'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
console.log(line(head));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of rows) console.log(line(r));
process.exitCode = failed ? 1 : 0;
