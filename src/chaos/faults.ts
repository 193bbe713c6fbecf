/**
 * The fault catalogue of `rehearse --chaos` (docs/chaos.md): what each fault does, where in a playbook
 * it can strike, and the seeded plan of trials. Pure: no processes, no files.
 */
import { UsageError } from '../errors.js';
import type { LoadedPlaybook, RuntimeStep } from '../playbook/load.js';
import { rng } from '../util/random.js';
import { didYouMean } from '../util/suggest.js';

export const FAULT_KINDS = [
  'engine-crash',
  'runner-crash',
  'bad-hotfix',
  'smoke-failure',
  'burst-after-resume',
  'control-latency',
  'wal-stall',
  'metrics-down',
  'gateway-refuses',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What each fault does, and where it can strike: one line each, for `--help`, docs and messages. */
export const FAULTS: Record<FaultKind, { does: string; strikes: string }> = {
  'engine-crash': { does: 'SIGKILL the engine', strikes: 'during any step' },
  'runner-crash': { does: 'SIGKILL recoverctl, then run --resume-last as an operator would', strikes: 'during any step' },
  'bad-hotfix': {
    does: 'the artifact replaced by margin 1.4.4 (passes its self-test, halts under the incident load), its digest made to match',
    strikes: 'the first step that reads the artifact (smoke.testnet or hotfix.deploy, with artifact and sha256 from vars)',
  },
  'smoke-failure': { does: 'the testnet engine cannot start (its port is taken)', strikes: 'a smoke.testnet step' },
  'burst-after-resume': { does: 'the margin burst again, once trading is open', strikes: 'any step after the first engine.resume' },
  'control-latency': { does: 'the engine answers its control API 200-800 ms late for 3 s', strikes: 'during any step' },
  'wal-stall': { does: 'every WAL fsync stalls 100-400 ms for 3 s', strikes: 'during any step' },
  'metrics-down': { does: 'Prometheus stops (unreachable for the rest of the run)', strikes: 'a traffic.shift step, when rehearsal.prometheus is on' },
  'gateway-refuses': {
    does: "HAProxy's admin socket refuses connections for 3 s",
    strikes: 'a traffic.shift or engine.promote step, when rehearsal.gateway is haproxy',
  },
};

/** One trial: its seed (everything random in it), the fault, the step it strikes in, and the client load (orders/s). */
export interface TrialSpec {
  seed: number;
  fault: FaultKind;
  point: string;
  load: number;
}

/** The client load of a trial when the reproducer does not say: orders/s for which acknowledgements are kept. */
export const DEFAULT_LOAD = 20;

/** The var a `with` field names when it is exactly `${{ vars.NAME }}`. */
function varOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  return /^\$\{\{\s*vars\.([A-Za-z_][\w-]*)\s*\}\}$/.exec(value.trim())?.[1];
}

function field(step: RuntimeStep, name: string): unknown {
  const w = step.with as Record<string, unknown> | undefined;
  return w?.[name];
}

/** The vars bad-hotfix replaces: the artifact, its digest and (for the rollback) its version; undefined when they are not vars. */
export function hotfixVars(pb: LoadedPlaybook): { step: string; artifact: string; sha256: string; version: string | undefined } | undefined {
  const first = pb.steps.find((s) => s.uses === 'smoke.testnet' || s.uses === 'hotfix.deploy');
  if (!first) return undefined;
  const artifact = varOf(field(first, 'artifact'));
  const sha256 = varOf(field(first, 'sha256'));
  if (!artifact || !sha256) return undefined;
  const rollback = pb.rollback.find((s) => s.uses === 'hotfix.rollback');
  return { step: first.id, artifact, sha256, version: rollback ? varOf(field(rollback, 'from')) : undefined };
}

/** The steps (ids, in order) at whose start the fault can strike in this playbook; empty when it has no place there. */
export function strikePoints(pb: LoadedPlaybook, fault: FaultKind): string[] {
  const main = pb.steps;
  const ids = (steps: readonly RuntimeStep[]): string[] => steps.map((s) => s.id);
  switch (fault) {
    case 'engine-crash':
    case 'runner-crash':
    case 'control-latency':
    case 'wal-stall':
      return ids(main);
    case 'bad-hotfix': {
      const h = hotfixVars(pb);
      return h ? [h.step] : [];
    }
    case 'smoke-failure':
      return ids(main.filter((s) => s.uses === 'smoke.testnet'));
    case 'burst-after-resume': {
      const resume = main.findIndex((s) => s.uses === 'engine.resume');
      return resume < 0 ? [] : ids(main.slice(resume + 1));
    }
    case 'metrics-down':
      return pb.spec.rehearsal?.prometheus ? ids(main.filter((s) => s.uses === 'traffic.shift')) : [];
    case 'gateway-refuses':
      return pb.spec.rehearsal?.gateway ? ids(main.filter((s) => s.uses === 'traffic.shift' || s.uses === 'engine.promote')) : [];
  }
}

/** What the seed decides within a trial: how long after the step starts the fault strikes, and how hard. */
export function faultParams(seed: number): { delayMs: number; slowMs: number; stallMs: number; forMs: number } {
  const r = rng(seed ^ 0x5eed);
  return { delayMs: Math.floor(r() * 200), slowMs: 200 + Math.floor(r() * 600), stallMs: 100 + Math.floor(r() * 300), forMs: 3_000 };
}

/** `--faults a,b`: known names only (a typo is a usage error naming the closest), default every kind. */
export function parseFaults(text: string | undefined): FaultKind[] {
  if (text === undefined) return [...FAULT_KINDS];
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new UsageError('--faults: give at least one fault');
  for (const n of names) {
    if (!(FAULT_KINDS as readonly string[]).includes(n)) {
      throw new UsageError(`--faults: unknown fault '${n}'${didYouMean(n, FAULT_KINDS)} (faults: ${FAULT_KINDS.join(', ')})`);
    }
  }
  return [...new Set(names)] as FaultKind[];
}

/** `SEED:FAULT:POINT[:LOAD]`, checked against the playbook: the step must be one the fault can strike. */
export function parseTrial(text: string, pb: LoadedPlaybook): TrialSpec {
  const parts = text.split(':');
  const [seedText, fault, point, loadText] = parts;
  const usage = `--chaos-trial ${text}: expected SEED:FAULT:POINT[:LOAD]`;
  if (parts.length < 3 || parts.length > 4 || !seedText || !fault || !point) throw new UsageError(usage);
  const seed = Number(seedText);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`${usage} (SEED: a whole number, got '${seedText}')`);
  const [kind] = parseFaults(fault);
  const points = strikePoints(pb, kind as FaultKind);
  if (!points.includes(point)) {
    const where = points.length > 0 ? `it strikes at: ${points.join(', ')}` : `it has no place to strike in ${pb.file} (${FAULTS[kind as FaultKind].strikes})`;
    throw new UsageError(`--chaos-trial ${text}: ${kind} cannot strike at step '${point}'${didYouMean(point, points)}; ${where}`);
  }
  const load = loadText === undefined ? DEFAULT_LOAD : Number(loadText);
  if (!Number.isInteger(load) || load < 0 || load > 500) throw new UsageError(`${usage} (LOAD: orders/s 0..500, got '${loadText ?? ''}')`);
  return { seed, fault: kind as FaultKind, point, load };
}

/** The reproducer form of a trial; LOAD only when it is not the default. */
export function formatTrial(t: TrialSpec): string {
  return `${t.seed}:${t.fault}:${t.point}${t.load === DEFAULT_LOAD ? '' : `:${t.load}`}`;
}

/**
 * N trials from one seed: the faults that have a place in the playbook, in a seeded order repeated so
 * each strikes at least once when N allows; each at a seeded step among its points.
 */
export function planTrials(pb: LoadedPlaybook, n: number, seed: number, faults: readonly FaultKind[]): { trials: TrialSpec[]; skipped: FaultKind[] } {
  const applicable = faults.filter((f) => strikePoints(pb, f).length > 0);
  const skipped = faults.filter((f) => !applicable.includes(f));
  if (applicable.length === 0) {
    throw new UsageError(`--chaos: none of the faults (${faults.join(', ')}) has a place to strike in ${pb.file}; see docs/chaos.md`);
  }
  const r = rng(seed);
  const order = [...applicable];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j] as FaultKind, order[i] as FaultKind];
  }
  const trials: TrialSpec[] = [];
  for (let i = 0; i < n; i++) {
    const fault = order[i % order.length] as FaultKind;
    const points = strikePoints(pb, fault);
    trials.push({ seed: seed * 1000 + i + 1, fault, point: points[Math.floor(r() * points.length)] as string, load: DEFAULT_LOAD });
  }
  return { trials, skipped };
}
