// `npm run drills [-- --long] [-- --soak]`: every drill (or with --soak, the soak alone), then a table of
// drill, trials, passed, and what was lost. `--junit FILE` writes one test case a drill (its failures as
// the message), `--markdown FILE` the table and the soak's figures; `--only=TEXT` picks drills by name.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { badHotfix } from './hotfix.mjs';
import { chaosTrials } from './chaos.mjs';
import { crashResume } from './crash.mjs';
import { engineKill } from './engine-kill.mjs';
import { followerUnderLoad } from './follower.mjs';
import { overload } from './load.mjs';
import { apiFuzz, playbookFuzz, snapshotFuzz } from './fuzz.mjs';
import { journalPowerLoss, walPowerLoss } from './powerloss.mjs';
import { soak } from './soak.mjs';
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

const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const fileArg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : arg(name);
};

const xml = (s) => String(s).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]);

/** JUnit XML of the drills: one suite, one test case a drill, a failure with its first problems. */
export function drillsJunit(results) {
  const failed = results.filter((r) => r.failed).length;
  const total = results.reduce((a, r) => a + r.seconds, 0);
  const cases = results.map((r) => {
    const body = r.failed
      ? `\n    <failure message="${xml(`${r.passed}/${r.trials} passed, ${r.lost} lost`)}">${xml(r.failures.slice(0, 20).join('\n'))}</failure>\n  `
      : '';
    return `  <testcase classname="drills" name="${xml(r.name)}" time="${r.seconds.toFixed(1)}">${body}<system-out>${xml(r.detail)}</system-out></testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="recoverctl drills" tests="${results.length}" failures="${failed}" time="${total.toFixed(1)}">\n${cases.join('\n')}\n</testsuite>\n`;
}

/** The drills' table, Markdown. */
export function drillsTable(results) {
  const head = ['drill', 'trials', 'passed', 'lost', 'time', 'detail'];
  const rows = results.map((r) => [r.name, String(r.trials), String(r.passed), String(r.lost), `${r.seconds.toFixed(1)}s`, r.detail]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function write(file, text) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

async function main() {
  const long = process.argv.includes('--long');
  const soakOnly = process.argv.includes('--soak');
  const only = arg('only');
  const junit = fileArg('junit');
  const markdown = fileArg('markdown');
  const soakOptions = { minutes: Number(arg('soak-minutes') ?? 10), rehearsals: Number(arg('soak-rehearsals') ?? 100) };
  const results = [];
  for (const drill of soakOnly ? [soak] : DRILLS) {
    if (only && !drill.name.includes(only)) continue;
    const started = performance.now();
    process.stderr.write(`drill: ${drill.name} ...\n`);
    // Only the soak takes options: other drills' third parameter is their own (parallel trials, --long).
    const r = drill === soak ? await soak.run(1, 2026, soakOptions) : await drill.run(drill.trials(long), 2026);
    const seconds = (performance.now() - started) / 1000;
    const failed = r.passed !== r.trials || r.lost !== 0;
    results.push({ name: drill.name, ...r, seconds, failed });
    if (failed) for (const f of r.failures.slice(0, 10)) process.stderr.write(`  ✗ ${f}\n`);
  }
  const table = drillsTable(results);
  console.log(table);
  const extra = results.map((r) => r.markdown).filter(Boolean);
  for (const m of extra) console.log(`\n${m}`);
  if (markdown) write(markdown, `${table}\n${extra.map((m) => `\n${m}`).join('')}`);
  if (junit) write(junit, drillsJunit(results));
  process.exitCode = results.some((r) => r.failed) ? 1 : 0;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main();
