/**
 * `recoverctl rehearse PLAYBOOK --chaos N` and `--chaos-trial SEED:FAULT:POINT[:LOAD]` (docs/chaos.md):
 * trials with one seeded fault each, the safety properties judged on every one, a table, one event per
 * trial with --json, one test case per trial with --junit; a broken property exits 1 with a reproducer,
 * shrunk to the earliest point and the smallest load at which it still breaks.
 */
import { resolve } from 'node:path';
import { StepFailed, UsageError, InputError } from '../errors.js';
import { FAULTS, formatTrial, parseFaults, parseTrial, planTrials, strikePoints, type FaultKind, type TrialSpec } from '../chaos/faults.js';
import type { PropertyId } from '../chaos/properties.js';
import type { TrialContext, TrialResult } from './chaos-trial.js';
import { loadPlaybook, type LoadedPlaybook } from '../playbook/load.js';
import { formatDuration } from '../util/duration.js';
import type { RehearseFlags } from './rehearse.js';
import { esc } from '../ui/junit.js';
import { writeJunit } from './run.js';

export interface ChaosFlags extends RehearseFlags {
  chaos?: string;
  chaosTrial?: string;
  faults?: string;
  parallel?: string;
  shrink?: boolean;
}

const PROPERTIES: PropertyId[] = ['P1', 'P2', 'P3', 'P4'];

function say(text: string): void {
  process.stderr.write(`${new Date().toISOString()} chaos: ${text}\n`);
}

function broken(r: TrialResult): string[] {
  return r.error ? ['error'] : r.properties.filter((p) => !p.ok).map((p) => p.id);
}

/** One row of the table: trial, seed, fault, where it struck, outcome, RTO, properties. */
function tableRow(i: number, r: TrialResult): string {
  const props = r.error ? `ERROR: ${r.error}` : r.properties.map((p) => `${p.id}${p.ok ? '✓' : '✗'}`).join(' ');
  const rto = r.rtoMs === null ? '-' : formatDuration(r.rtoMs);
  return `${String(i + 1).padStart(5)}  ${String(r.spec.seed).padEnd(7)}  ${r.spec.fault.padEnd(18)}  ${(r.struck === null ? `(not reached: ${r.spec.point})` : (r.struck.split(':')[0] ?? r.spec.point)).padEnd(24)}  ${r.outcome.padEnd(12)}  ${rto.padStart(8)}  ${props}`;
}

const HEADER = `${'TRIAL'.padStart(5)}  ${'SEED'.padEnd(7)}  ${'FAULT'.padEnd(18)}  ${'WHERE'.padEnd(24)}  ${'OUTCOME'.padEnd(12)}  ${'RTO'.padStart(8)}  PROPERTIES`;

function trialEvent(i: number, r: TrialResult, reproducer: string): string {
  return `${JSON.stringify({ ts: new Date().toISOString(), run: r.runId, step: null, event: 'chaos-trial', trial: i + 1, ...r, ok: broken(r).length === 0, reproducer })}\n`;
}

/** One test case per trial; a broken property (or a trial that could not be made) is its failure. */
export function chaosJunit(playbook: string, results: readonly TrialResult[]): string {
  const failures = results.filter((r) => broken(r).length > 0).length;
  const total = results.reduce((a, r) => a + r.seconds, 0);
  const cases = results.map((r, i) => {
    const name = `trial ${i + 1}: ${formatTrial(r.spec)}`;
    const out = [
      `struck: ${r.struck ?? 'not reached'}`,
      `outcome: ${r.outcome}`,
      ...r.properties.map((p) => `${p.id} ${p.ok ? 'holds' : 'BROKEN'}: ${p.message}`),
    ].join('\n');
    const bad =
      r.error ??
      r.properties
        .filter((p) => !p.ok)
        .map((p) => `${p.id}: ${p.message}`)
        .join('; ');
    const failure = bad ? `<failure message="${esc(bad)}"/>` : '';
    return `    <testcase classname="chaos.${esc(playbook)}" name="${esc(name)}" time="${r.seconds.toFixed(3)}">${failure}<system-out>${esc(out)}</system-out></testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites tests="${results.length}" failures="${failures}" time="${total.toFixed(3)}">\n  <testsuite name="chaos: ${esc(playbook)}" tests="${results.length}" failures="${failures}" time="${total.toFixed(3)}">\n${cases.join('\n')}\n  </testsuite>\n</testsuites>\n`;
}

/** The trials to run: one replayed (`--chaos-trial`) or N planned from the seed. */
function trialsOf(pb: LoadedPlaybook, flags: ChaosFlags): TrialSpec[] {
  if (flags.chaosTrial !== undefined) {
    if (flags.chaos !== undefined) throw new UsageError('--chaos and --chaos-trial: give one of them');
    return [parseTrial(flags.chaosTrial, pb)];
  }
  const n = Number(flags.chaos);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError(`--chaos: expected a number of trials 1..1000, got '${flags.chaos ?? ''}'`);
  const seed = Number(flags.seed ?? 2026);
  if (!Number.isInteger(seed) || seed < 0 || seed > 4_000_000) throw new UsageError(`--seed: expected a whole number 0..4000000, got '${flags.seed ?? ''}'`);
  const { trials, skipped } = planTrials(pb, n, seed, parseFaults(flags.faults));
  for (const f of skipped) say(`${f} has no place to strike in ${pb.file} (${FAULTS[f].strikes}): not used`);
  return trials;
}

/** Run the trials, `parallel` at a time; each row printed as it ends. */
async function runAll(
  trials: readonly TrialSpec[],
  ctx: import('./chaos-trial.js').TrialContext,
  parallel: number,
  onDone: (i: number, r: TrialResult) => void,
) {
  const { runTrial } = await import('./chaos-trial.js');
  const results: TrialResult[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < trials.length) {
      const i = next++;
      const r = await runTrial(trials[i] as TrialSpec, ctx);
      results[i] = r;
      onDone(i, r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, trials.length) }, worker));
  return results;
}

/**
 * Shrink a broken trial: the earliest step among the fault's points at which the same property still
 * breaks (a binary search, at most 5 trials), then the smallest client load (0, then a bisection, at most 4).
 */
async function shrink(first: TrialResult, pb: LoadedPlaybook, ctx: TrialContext): Promise<{ spec: TrialSpec; tries: number }> {
  const { runTrial } = await import('./chaos-trial.js');
  const property = broken(first)[0];
  let best = first.spec;
  let tries = 0;
  const stillBreaks = async (spec: TrialSpec): Promise<boolean> => {
    tries++;
    const r = await runTrial(spec, { ...ctx, keep: false });
    say(`shrink: ${formatTrial(spec)} → ${broken(r).join(', ') || 'holds'}${r.kept ? ` (scratch kept: ${r.kept})` : ''}`);
    return property !== undefined && broken(r).includes(property);
  };
  const points = strikePoints(pb, best.fault);
  let lo = 0;
  let hi = points.indexOf(best.point);
  for (let budget = 5; lo < hi && budget > 0; budget--) {
    const mid = Math.floor((lo + hi) / 2);
    const spec = { ...best, point: points[mid] as string };
    if (await stillBreaks(spec)) {
      best = spec;
      hi = mid;
    } else lo = mid + 1;
  }
  if (best.load > 0 && (await stillBreaks({ ...best, load: 0 }))) best = { ...best, load: 0 };
  else {
    // It holds with no load: bisect between that and the smallest load known to break it.
    let holds = 0;
    for (let budget = 3; best.load - holds > 1 && budget > 0; budget--) {
      const mid = Math.floor((holds + best.load) / 2);
      if (await stillBreaks({ ...best, load: mid })) best = { ...best, load: mid };
      else holds = mid;
    }
  }
  return { spec: best, tries };
}

/** The command that replays one trial exactly. */
function reproducer(pb: LoadedPlaybook, spec: TrialSpec, flags: ChaosFlags): string {
  const extra = [
    flags.timeScale !== undefined ? `--time-scale ${flags.timeScale}` : '',
    flags.accounts !== undefined && flags.accounts !== '40' ? `--accounts ${flags.accounts}` : '',
  ].filter(Boolean);
  return `recoverctl rehearse ${pb.file} --chaos-trial ${formatTrial(spec)}${extra.length ? ` ${extra.join(' ')}` : ''}`;
}

/** Which fault kinds struck (out of those tried), and how many trials had every property judged. */
function coverage(results: readonly TrialResult[]): string {
  const kinds = new Map<FaultKind, [number, number]>();
  for (const r of results) {
    const [struck, tried] = kinds.get(r.spec.fault) ?? [0, 0];
    kinds.set(r.spec.fault, [struck + (r.struck === null ? 0 : 1), tried + 1]);
  }
  const judged = results.filter((r) => PROPERTIES.every((id) => r.properties.some((p) => p.id === id))).length;
  return `struck: ${[...kinds].map(([k, [s, t]]) => `${k} ${s}/${t}`).join(', ')}; every property judged on ${judged} of ${results.length} trials`;
}

/** `rehearse --chaos N` / `--chaos-trial`: exit 0 when every property held on every trial, 1 when one broke, 2 when a trial could not be made. */
export async function chaosCommand(file: string, flags: ChaosFlags): Promise<void> {
  const started = Date.now();
  const pb = await loadPlaybook(file);
  const { rehearsalSettings, rehearsalPreflight } = await import('./rehearse.js');
  const { accounts, timeScale } = rehearsalSettings(pb, { ...flags, seed: undefined });
  const parallel = flags.parallel === undefined ? 2 : Number(flags.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 8) throw new UsageError(`--parallel: expected 1..8, got '${flags.parallel ?? ''}'`);
  if (flags.noAutoApprove || flags.autoApprove === false) throw new UsageError('--no-auto-approve: chaos trials answer approval gates themselves (run --yes)');
  const trials = trialsOf(pb, flags);
  await rehearsalPreflight(pb, flags, true);
  const ctx = { pb, timeScale, accounts, stateDir: resolve(flags.stateDir), keep: flags.keep ?? false };
  say(
    `${trials.length} trial${trials.length === 1 ? '' : 's'} of ${pb.spec.metadata.name}, ${Math.min(parallel, trials.length)} at a time (time scale ${timeScale})`,
  );
  process.stderr.write(`${HEADER}\n`);
  const results = await runAll(trials, ctx, parallel, (i, r) => {
    process.stderr.write(`${tableRow(i, r)}\n`);
    for (const p of r.properties.filter((x) => !x.ok)) process.stderr.write(`       ${p.id} broken: ${p.message}\n`);
    if (r.kept) process.stderr.write(`       scratch kept: ${r.kept}\n`);
    if (flags.json) process.stdout.write(trialEvent(i, r, reproducer(pb, r.spec, flags)));
  });
  if (flags.junit) writeJunit(flags.junit, chaosJunit(pb.spec.metadata.name, results));
  const bad = results.filter((r) => broken(r).length > 0);
  say(`${coverage(results)}; ${bad.length} of ${results.length} broke something; ${formatDuration(Date.now() - started)}`);
  if (flags.json) {
    const summary = {
      ts: new Date().toISOString(),
      run: null,
      step: null,
      event: 'chaos-summary',
      ok: bad.length === 0,
      trials: results.length,
      broken: bad.length,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  }
  if (bad.length === 0) return;
  const errors = bad.filter((r) => r.error);
  // Trials that could not be made say nothing about the playbook: bad input when none could be, else reported beside.
  if (errors.length === results.length) throw new InputError(`chaos: no trial could be made: ${errors[0]?.error ?? ''}`);
  const first = bad.find((r) => !r.error);
  if (!first)
    throw new StepFailed(`chaos: ${errors.length} of ${results.length} trials could not be made (first: ${errors[0]?.error ?? ''}); no property broke`);
  const property = first.properties.find((p) => !p.ok);
  process.stderr.write(`reproduce: ${reproducer(pb, first.spec, flags)}\n`);
  if (flags.shrink !== false && flags.chaosTrial === undefined) {
    const min = await shrink(first, pb, ctx);
    process.stderr.write(`minimal reproducer (${min.tries} shrink trial${min.tries === 1 ? '' : 's'}): ${reproducer(pb, min.spec, flags)}\n`);
  }
  throw new StepFailed(`chaos: ${property?.id ?? '?'} broken in trial ${formatTrial(first.spec)}: ${property?.message ?? ''}`);
}
