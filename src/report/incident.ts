import type { EventOf, RunEvent } from '../runner/events.js';
import { asRunText, type RtoPrediction } from '../runner/predict.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { firstLine, stepLabel } from '../ui/lines.js';

export interface IncidentStep {
  id: string;
  phase: 'main' | 'rollback';
  uses: string;
  name: string | null;
  startedAt: string | null;
  endedAt: string | null;
  outcome: 'success' | 'failure' | 'skipped' | 'interrupted' | 'running';
  durationMs: number;
  error: string | null;
}

export interface IncidentReport {
  run: string;
  playbook: string;
  incident: string | null;
  startedAt: string;
  endedAt: string;
  detection: { at: string | null; reason: string | null };
  outcome: string;
  steps: IncidentStep[];
  /** Every notification in time order: `notify` steps and `comms:` status updates (step `comms`), failed ones too. */
  notifications: { step: string; sentAt: string; channel: string; ok: boolean }[];
  /** The `comms:` cadence, and every stretch without a sent notification longer than it. */
  comms: { every: string | null; gaps: { from: string; to: string; gapMs: number }[] };
  /** What a post-incident review measures, each with the time from detection. */
  milestones: Milestone[];
  approvals: { step: string; by: string; at: string }[];
  rollback: { reason: string; ok: boolean | null } | null;
  /** `prediction`: what the run-start journaled from the earlier runs (docs/chaos.md); null when it has none. */
  rto: { objective: string | null; actualMs: number; breached: boolean | null; prediction: RtoPrediction | null };
  phases: { at: string; phase: string }[];
  samples: { at: string; stage: number; weight: number; queueDepth: number; p99LatencyMs: number | null; errorRate: number }[];
  /** Each gate's judgements per traffic stage: the counts of each verdict and the stage's verdict for that gate. */
  analysis: StageAnalysis[];
  /** Funding intervals settled by `funding.recompute`: each with the holders at its end and what each paid (negative) or got. */
  funding: FundingSettlement[];
  /** What `risk.preview` steps saw: who would be liquidated or restricted if trading opened then. */
  riskPreviews: RiskPreviewSeen[];
  /** Which recovery path the run took, and what it cost in time with trading closed (issue 14). */
  path: RecoveryPath;
  /** The traffic shift, one row per stage: its weight, bake, samples, and each gate's values against its limit. */
  stages: StageRow[];
  /** What `report.users` wrote for the affected accounts; null when the run had none. */
  users: UsersWritten | null;
  /** The first main step that failed (what a reader of a failed run must see first); null when none did. */
  failure: { step: string; name: string | null; at: string | null; error: string } | null;
}

/** One stage of a traffic shift, as the report's table shows it. */
export interface StageRow {
  step: string;
  stage: number;
  stages: number;
  weight: number;
  /** The bake the shift planned for the stage (scaled like the run's waits); null in journals before it. */
  bakeMs: number | null;
  startedAt: string;
  /** When the next stage started or the step ended; null while it bakes. */
  endedAt: string | null;
  samples: number;
  gates: GateRow[];
  /** The worst gate verdict; `running` while the stage bakes with nothing wrong yet. */
  verdict: StageAnalysis['verdict'] | 'running';
}

/** One gate over one stage: what it measured (min, max, last) against its limit, and its verdicts. */
export interface GateRow {
  gate: string;
  source: string;
  threshold: string | null;
  min: number | null;
  max: number | null;
  last: number | null;
  pass: number;
  fail: number;
  inconclusive: number;
  error: number;
  verdict: StageAnalysis['verdict'];
  detail: string;
}

/** The per-account reports of `report.users`: how many, where, and (filled by the writer) their file names. */
export interface UsersWritten {
  step: string;
  accounts: number;
  files: number;
  dir: string;
  seq: number | null;
  /** Orders open at the halt (in the snapshot reported); null in journals before it. */
  openOrders: number | null;
  /** The per-account files, listed by whoever writes the report (the model itself reads no folder). */
  links: string[];
  /** Files not listed in `links` (a long list is cut). */
  more: number;
}

/** In place (the halted engine fixed and resumed) or blue-green (a standby promoted), and its costs. */
export interface RecoveryPath {
  kind: 'in-place' | 'blue-green';
  /** From detection until trading was open again; null when it never reopened. */
  tradingClosedMs: number | null;
  /** The promotion of a blue-green run (null before it, or when it never happened): its step, the new epoch, when (from detection). */
  promotion: { step: string; epoch: number | null; forced: boolean | null; at: string; sinceDetectionMs: number | null } | null;
  /** The rollback switched back to the old primary (engine.failback). */
  switchedBack: boolean;
}

export interface FundingSettlement {
  step: string;
  symbol: string;
  intervalStart: string;
  rate: string;
  markPrice: string;
  paid: string;
  received: string;
  holders: { account: string; qty: string; amount: string }[];
}

export interface RiskPreviewSeen {
  step: string;
  at: string;
  accounts: { account: string; band: string; uniMMR: string; equity: string; maintenance: string; wouldLiquidate: boolean }[];
  counts: Record<string, number>;
}

export interface Milestone {
  name: 'detected' | 'first notification' | 'mitigated' | 'resumed' | 'closed';
  /** What marks it: the hotfix step that activated the fix, the step that opened trading. */
  by: string | null;
  at: string | null;
  sinceDetectionMs: number | null;
}

export interface StageAnalysis {
  step: string;
  stage: number;
  weight: number;
  gate: string;
  source: string;
  pass: number;
  fail: number;
  inconclusive: number;
  error: number;
  /** fail if any sample failed, else error, else inconclusive, else pass. */
  verdict: 'pass' | 'fail' | 'inconclusive' | 'error';
  /** The last judgement's detail that was not a pass (or the last one). */
  detail: string;
}

/**
 * When the incident was detected: the engine's halt as the run first saw it (the `haltedAt` an attach
 * step reported), else what the caller knows (the engine's last halt), else unknown.
 */
export function detectionOf(events: RunEvent[], fallback: { at: string | null; reason: string | null }): { at: string | null; reason: string | null } {
  for (const e of events) {
    if (e.event === 'ok' && typeof e.outputs.haltedAt === 'string') {
      return { at: e.outputs.haltedAt, reason: typeof e.outputs.reason === 'string' ? e.outputs.reason : fallback.reason };
    }
  }
  return fallback;
}

/** What the timeline collects from the events as they come. */
interface Collected {
  steps: Map<string, IncidentStep>;
  notifications: IncidentReport['notifications'];
  approvals: IncidentReport['approvals'];
  phases: IncidentReport['phases'];
  samples: IncidentReport['samples'];
  analysis: Map<string, StageAnalysis>;
  rollback: IncidentReport['rollback'];
  funding: FundingSettlement[];
  riskPreviews: Map<string, RiskPreviewSeen>;
  stages: Map<string, StageRow>;
  users: UsersWritten | null;
}

const VERDICT_RANK = { pass: 0, inconclusive: 1, error: 2, fail: 3 } as const;

/** The stage row a sample or a stage start belongs to, made when first seen. */
function stageRow(c: Collected, step: string, stage: number, stages: number, weight: number, at: string): StageRow {
  const key = `${step}\u0000${stage}`;
  let row = c.stages.get(key);
  if (!row) {
    row = { step, stage, stages, weight, bakeMs: null, startedAt: at, endedAt: null, samples: 0, gates: [], verdict: 'running' };
    c.stages.set(key, row);
  }
  return row;
}

/** A sample's judgements folded into its stage's gate rows: min, max and last value, the verdict counts. */
function sampledStage(c: Collected, e: EventOf<'measurement'>): void {
  // Numbers as numbers whatever the journal holds: they go into HTML unquoted.
  const row = stageRow(c, e.step, Number(e.stage), Number(e.stages), Number(e.weight), e.ts);
  row.samples++;
  for (const j of e.judgements) {
    let g = row.gates.find((x) => x.gate === j.gate);
    if (!g) {
      g = {
        gate: j.gate,
        source: j.source,
        threshold: j.threshold ?? null,
        min: null,
        max: null,
        last: null,
        pass: 0,
        fail: 0,
        inconclusive: 0,
        error: 0,
        verdict: 'pass',
        detail: '',
      };
      row.gates.push(g);
    }
    g[j.verdict]++;
    const value = typeof j.value === 'number' ? j.value : null;
    if (value !== null) {
      g.min = g.min === null ? value : Math.min(g.min, value);
      g.max = g.max === null ? value : Math.max(g.max, value);
    }
    g.last = value;
    if (VERDICT_RANK[j.verdict] >= VERDICT_RANK[g.verdict]) {
      g.verdict = j.verdict;
      g.detail = j.detail;
    }
  }
}

/** A traffic-shift sample: each gate's judgement counted into its row for the stage. */
function measured(c: Collected, e: EventOf<'measurement'>): void {
  sampledStage(c, e);
  for (const j of e.judgements) {
    const key = `${e.step}\u0000${e.stage}\u0000${j.gate}`;
    const row = c.analysis.get(key) ?? {
      step: e.step,
      stage: Number(e.stage),
      weight: Number(e.weight),
      gate: j.gate,
      source: j.source,
      pass: 0,
      fail: 0,
      inconclusive: 0,
      error: 0,
      verdict: 'pass' as const,
      detail: '',
    };
    row[j.verdict]++;
    if (VERDICT_RANK[j.verdict] >= VERDICT_RANK[row.verdict]) {
      row.verdict = j.verdict;
      row.detail = j.detail;
    }
    c.analysis.set(key, row);
  }
}

/** A finished step: its row closed, and what it tells the timeline (a notification, an approval, a halt). */
function stepEnded(c: Collected, key: string, e: EventOf<'ok'> | EventOf<'fail'>): void {
  const s = c.steps.get(key);
  if (s) {
    s.endedAt = e.ts;
    s.outcome = e.event === 'ok' ? 'success' : 'failure';
    s.durationMs = e.durationMs;
    s.error = e.event === 'fail' ? e.error : null;
  }
  if (e.event !== 'ok') return;
  if (e.uses === 'notify' && typeof e.outputs.sentAt === 'string')
    c.notifications.push({ step: e.step, sentAt: e.outputs.sentAt, channel: String(e.outputs.channel), ok: true });
  if (e.uses === 'risk.preview' && e.event === 'ok') {
    const seen = c.riskPreviews.get(e.step) ?? { step: e.step, at: e.ts, accounts: [], counts: {} };
    for (const [k, v] of Object.entries(e.outputs)) if (typeof v === 'number') seen.counts[k] = v;
    c.riskPreviews.set(e.step, seen);
  }
  if (e.uses === 'report.users') {
    const o = e.outputs;
    c.users = {
      step: e.step,
      accounts: Number(o.accounts ?? 0),
      files: Number(o.files ?? 0),
      dir: String(o.dir ?? ''),
      seq: typeof o.seq === 'number' ? o.seq : null,
      openOrders: typeof o.openOrders === 'number' ? o.openOrders : null,
      links: [],
      more: Number(o.files ?? 0),
    };
  }
  if (e.uses === 'gate.approve') c.approvals.push({ step: e.step, by: String(e.outputs.approvedBy), at: String(e.outputs.decidedAt) });
  if (e.uses === 'engine.halt') c.phases.push({ at: e.ts, phase: 'halted' });
}

/** A progress event: a trading phase, or a traffic sample for the charts. */
/** A `holders` output as `funding.recompute` writes it: `account qty amount` per holder, `;`-separated. */
function holdersOf(text: string): FundingSettlement['holders'] {
  return text
    .split(';')
    .map((h) => h.trim().split(' '))
    .filter((p) => p.length === 3)
    .map(([account, qty, amount]) => ({ account: account as string, qty: qty as string, amount: amount as string }));
}

function progressed(c: Collected, e: EventOf<'progress'>): void {
  const d = e.data;
  if (d && typeof d.fundingInterval === 'string') {
    c.funding.push({
      step: e.step,
      symbol: String(d.symbol),
      intervalStart: d.fundingInterval,
      rate: String(d.rate),
      markPrice: String(d.markPrice),
      paid: String(d.paid),
      received: String(d.received),
      holders: holdersOf(String(d.holders ?? '')),
    });
  }
  if (d && typeof d.riskAccount === 'string') {
    const seen = c.riskPreviews.get(e.step) ?? { step: e.step, at: e.ts, accounts: [], counts: {} };
    seen.accounts.push({
      account: d.riskAccount,
      band: String(d.band),
      uniMMR: String(d.uniMMR ?? '–'),
      equity: String(d.equity),
      maintenance: String(d.maintenance),
      wouldLiquidate: d.wouldLiquidate === true,
    });
    c.riskPreviews.set(e.step, seen);
  }
  if (d && typeof d.bakeMs === 'number' && typeof d.stage === 'number') {
    const row = stageRow(c, e.step, d.stage, Number(d.stages ?? 0), Number(d.weight ?? 0), e.ts);
    row.bakeMs = d.bakeMs;
    row.startedAt = e.ts;
  }
  if (e.data && typeof e.data.phase === 'string') c.phases.push({ at: e.ts, phase: e.data.phase });
  if (e.data && typeof e.data.queueDepth === 'number') {
    c.samples.push({
      at: e.ts,
      stage: Number(e.data.stage ?? 0),
      weight: Number(e.data.weight ?? 0),
      queueDepth: e.data.queueDepth,
      p99LatencyMs: typeof e.data.p99LatencyMs === 'number' ? e.data.p99LatencyMs : null,
      errorRate: Number(e.data.errorRate ?? 0),
    });
  }
}

function collect(events: RunEvent[], detection: { at: string | null }): Collected {
  const c: Collected = {
    steps: new Map(),
    notifications: [],
    approvals: [],
    phases: [],
    samples: [],
    analysis: new Map(),
    rollback: null,
    funding: [],
    riskPreviews: new Map(),
    stages: new Map(),
    users: null,
  };
  if (detection.at) c.phases.push({ at: detection.at, phase: 'halted' });
  for (const e of events) {
    const key = e.step ? `${'phase' in e ? e.phase : 'main'}:${e.step}` : '';
    switch (e.event) {
      case 'start':
        c.steps.set(key, {
          id: e.step,
          phase: e.phase,
          uses: e.uses,
          name: e.name,
          startedAt: c.steps.get(key)?.startedAt ?? e.ts,
          endedAt: null,
          outcome: 'running',
          durationMs: 0,
          error: null,
        });
        break;
      case 'ok':
      case 'fail':
        stepEnded(c, key, e);
        break;
      case 'skip':
        c.steps.set(key, {
          id: e.step,
          phase: e.phase,
          uses: e.uses,
          name: e.name ?? null,
          startedAt: null,
          endedAt: null,
          outcome: 'skipped',
          durationMs: 0,
          error: e.detail,
        });
        break;
      case 'interrupted': {
        const s = e.step ? [...c.steps.values()].find((x) => x.id === e.step && x.outcome === 'running') : undefined;
        if (s) s.outcome = 'interrupted';
        break;
      }
      case 'progress':
        progressed(c, e);
        break;
      case 'measurement':
        measured(c, e);
        break;
      case 'comms':
        c.notifications.push({ step: 'comms', sentAt: e.ts, channel: e.channel, ok: e.ok });
        break;
      case 'rollback':
        c.rollback = { reason: e.reason, ok: null };
        break;
      case 'rollback-end':
        if (c.rollback) c.rollback.ok = e.ok;
        break;
      default:
        break;
    }
  }
  return c;
}

/** How a report is being built: by the run's own report step (`self`), or for the dashboard while the run goes on (`live`). */
export interface BuildOptions {
  /** The step writing this report: shown done, since the report exists when it is read. */
  self?: string;
  /**
   * A run watched without its end (the dashboard): the outcome to show while nothing has failed, `running`
   * or `stopped (resumable)`, instead of the success a report step writes; its milestones stay open.
   */
  soFar?: string;
}

/** The end of the run's latest attempt, if it ended: a resume after a run-end is a new attempt, not ended yet. */
export function latestEnd(events: readonly RunEvent[]): EventOf<'run-end'> | undefined {
  let end: EventOf<'run-end'> | undefined;
  for (const e of events) {
    if (e.event === 'run-start') end = undefined;
    else if (e.event === 'run-end') end = e;
  }
  return end;
}

/** Stage rows closed at the next stage's start or their step's end, each with its verdict; `stopped`: none still bakes. */
function closedStages(stages: Map<string, StageRow>, steps: Map<string, IncidentStep>, stopped: boolean): StageRow[] {
  const rows = [...stages.values()];
  for (const row of rows) {
    const next = rows.find((r) => r.step === row.step && r.stage === row.stage + 1);
    row.endedAt = next?.startedAt ?? steps.get(`main:${row.step}`)?.endedAt ?? null;
    const worst = row.gates.reduce<StageAnalysis['verdict']>((w, g) => (VERDICT_RANK[g.verdict] > VERDICT_RANK[w] ? g.verdict : w), 'pass');
    row.verdict = row.endedAt === null && worst === 'pass' && !stopped ? 'running' : worst;
  }
  return rows;
}

/** The first main step that failed and did not continue: what a failed run's report opens with. */
function firstFailure(events: RunEvent[], steps: Map<string, IncidentStep>): IncidentReport['failure'] {
  const f = events.find((e) => e.event === 'fail' && e.phase === 'main' && !e.continued);
  if (f?.event !== 'fail') return null;
  return { step: f.step, name: steps.get(`main:${f.step}`)?.name ?? null, at: f.ts, error: f.error };
}

/** Build the incident timeline from a run's events; detection comes from the engine's recorded halt. */
export function buildIncident(events: RunEvent[], detection: { at: string | null; reason: string | null }, now: Date, opts: BuildOptions = {}): IncidentReport {
  const start = events.find((e) => e.event === 'run-start');
  const end = latestEnd(events);
  const c = collect(events, detection);
  const self = opts.self ? c.steps.get(`main:${opts.self}`) : undefined;
  if (self && self.outcome === 'running') {
    // The report exists when it is read: its own step is done, at the report's time.
    self.outcome = 'success';
    self.endedAt = now.toISOString();
    self.durationMs = self.startedAt ? Math.max(0, now.getTime() - Date.parse(self.startedAt)) : 0;
  }
  // Before the run ends (the report step itself), the outcome so far: failed once a step has failed.
  const failedSoFar = events.some((e) => e.event === 'fail' && e.phase === 'main' && !e.continued);
  const soFar = failedSoFar ? (c.rollback ? 'failed (rolled back)' : 'failed') : (opts.soFar ?? 'success');
  const outcome = end?.event === 'run-end' ? end.outcome : soFar;
  const startedAt = start?.ts ?? now.toISOString();
  const endedAt = end?.ts ?? now.toISOString();
  const from = detection.at ?? startedAt;
  const actualMs = Date.parse(endedAt) - Date.parse(from);
  const objective = start?.event === 'run-start' ? start.rto : null;
  const objectiveMs = objective ? parseDuration(objective) : undefined;
  return {
    run: start?.run ?? '',
    playbook: start?.event === 'run-start' ? start.playbook : '',
    incident: start?.event === 'run-start' ? start.incident : null,
    startedAt,
    endedAt,
    detection,
    outcome,
    steps: [...c.steps.values()],
    notifications: c.notifications,
    approvals: c.approvals,
    rollback: c.rollback,
    // A recovery that failed, or stopped, has not recovered: its RTO is breached, however quickly it gave
    // up; a recovery still running has breached only once it has run over.
    rto: {
      objective,
      actualMs,
      breached: objectiveMs === undefined ? null : (outcome !== 'success' && outcome !== 'running') || actualMs > objectiveMs,
      prediction: start?.event === 'run-start' ? (start.rtoPrediction ?? null) : null,
    },
    phases: c.phases,
    samples: c.samples,
    analysis: [...c.analysis.values()],
    funding: c.funding,
    riskPreviews: [...c.riskPreviews.values()],
    // A report written by a step before the run ends closes it at the report's own time.
    comms: commsOf(events, c.notifications, startedAt, endedAt),
    milestones: milestonesOf(events, detection.at, c.notifications, end || opts.soFar === undefined ? endedAt : null),
    path: pathOf(events, detection.at),
    stages: closedStages(c.stages, c.steps, end !== undefined || (opts.soFar !== undefined && opts.soFar !== 'running')),
    users: c.users,
    failure: firstFailure(events, c.steps),
  };
}

/** A status update may come this much later than its cadence before the report calls the silence a gap. */
export const COMMS_SLACK = 1.25;

/** The cadence (scaled like the run's waits) and every silence longer than it, from the run's start to its end. */
function commsOf(events: RunEvent[], notifications: IncidentReport['notifications'], startedAt: string, endedAt: string | null): IncidentReport['comms'] {
  const start = events.find((e) => e.event === 'run-start');
  const every = start?.event === 'run-start' ? (start.comms ?? null) : null;
  const cadenceMs = every ? (parseDuration(every) ?? 0) * (start?.event === 'run-start' ? start.timeScale : 1) : 0;
  if (!every || cadenceMs <= 0) return { every, gaps: [] };
  const times = [startedAt, ...notifications.filter((n) => n.ok).map((n) => n.sentAt), ...(endedAt ? [endedAt] : [])].sort();
  const gaps: IncidentReport['comms']['gaps'] = [];
  for (let i = 1; i < times.length; i++) {
    const gapMs = Date.parse(times[i] as string) - Date.parse(times[i - 1] as string);
    if (gapMs > cadenceMs * COMMS_SLACK) gaps.push({ from: times[i - 1] as string, to: times[i] as string, gapMs });
  }
  return { every, gaps };
}

/** Detected, first notification, mitigated (the hotfix active), resumed (trading open), closed: each with its time from detection. */
function milestonesOf(events: RunEvent[], detectedAt: string | null, notifications: IncidentReport['notifications'], closedAt: string | null): Milestone[] {
  const deployed = events.find((e) => e.event === 'ok' && e.uses === 'hotfix.deploy');
  const opened = events.find(
    (e) => (e.event === 'progress' && e.data?.phase === 'open') || (e.event === 'ok' && e.uses === 'engine.resume' && e.outputs.phase === 'open'),
  );
  const first = notifications.filter((n) => n.ok).sort((a, b) => a.sentAt.localeCompare(b.sentAt))[0];
  const since = (at: string | null): number | null => (at && detectedAt ? Date.parse(at) - Date.parse(detectedAt) : null);
  const milestone = (name: Milestone['name'], at: string | null, by: string | null): Milestone => ({ name, by, at, sinceDetectionMs: since(at) });
  return [
    milestone('detected', detectedAt, null),
    milestone('first notification', first?.sentAt ?? null, first?.step ?? null),
    milestone('mitigated', deployed?.ts ?? null, deployed?.step ?? null),
    milestone('resumed', opened?.ts ?? null, opened?.step ?? null),
    milestone('closed', closedAt, null),
  ];
}

/** The recovery path: blue-green once a standby was started; the time with trading closed either way. */
export function pathOf(events: RunEvent[], detectedAt: string | null): RecoveryPath {
  const promoted = events.find((e) => e.event === 'ok' && e.uses === 'engine.promote');
  const opened = events.find(
    (e) => (e.event === 'progress' && e.data?.phase === 'open') || (e.event === 'ok' && e.uses === 'engine.resume' && e.outputs.phase === 'open'),
  );
  const since = (at: string | null): number | null => (at && detectedAt ? Date.parse(at) - Date.parse(detectedAt) : null);
  const outputs = promoted?.event === 'ok' ? promoted.outputs : undefined;
  const standby = events.some((e) => e.event === 'ok' && e.uses === 'engine.standby');
  return {
    kind: promoted || standby ? 'blue-green' : 'in-place',
    tradingClosedMs: since(opened?.ts ?? null),
    promotion:
      promoted && outputs
        ? {
            step: promoted.step ?? 'promote',
            epoch: typeof outputs.epoch === 'number' ? outputs.epoch : null,
            forced: typeof outputs.forced === 'boolean' ? outputs.forced : null,
            at: promoted.ts,
            sinceDetectionMs: since(promoted.ts),
          }
        : null,
    switchedBack: events.some((e) => e.event === 'ok' && e.uses === 'engine.failback' && e.outputs.action === 'switched-back'),
  };
}

/** One line on the path, for Markdown and HTML alike. */
export function pathLine(p: RecoveryPath): string {
  const how =
    p.kind === 'blue-green' && !p.promotion
      ? 'blue-green: the standby was never promoted'
      : p.kind === 'blue-green'
        ? `blue-green: a standby promoted${p.promotion?.epoch != null ? ` (epoch ${p.promotion.epoch}${p.promotion.forced ? ', forced' : ''})` : ''}${p.promotion?.sinceDetectionMs != null ? ` ${formatDuration(p.promotion.sinceDetectionMs)} after detection` : ''}${p.switchedBack ? ', then switched back by the rollback' : ''}`
        : 'in place: the halted engine fixed and resumed';
  const closed = p.tradingClosedMs === null ? 'trading not reopened' : `trading closed for ${formatDuration(p.tradingClosedMs)} (detection to open)`;
  return `${how}; ${closed}`;
}

/** A Markdown table cell: no pipe ends it early, no newline breaks the row. */
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

/** A fence longer than any run of backticks in the text, so the text cannot close it. */
function fenced(text: string): string {
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((m) => m.length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}text\n${text}\n${fence}`;
}

/**
 * The prediction the run started with, beside the measured RTO: ` (predicted p50 14m10s, p90 17m02s from 7
 * earlier runs)`; for a rehearsal, first the prediction at its time scale, which its RTO compares with.
 */
export function predictedNote(p: RtoPrediction | null): string {
  if (!p) return '';
  if (p.status === 'none') return ` (no prediction: ${p.reason === 'no-history' ? 'no earlier runs' : 'the playbook changed since the earlier runs'})`;
  const d = formatDuration;
  const runs = `from ${p.runs} earlier run${p.runs === 1 ? '' : 's'}${p.fewSamples ? ', few samples' : ''}`;
  const risk = p.atRisk ? ', at risk' : '';
  if (!p.asRun) return ` (predicted p50 ${d(p.p50Ms)}, p90 ${d(p.p90Ms)} ${runs}${risk})`;
  const asRun = `p50 ${d(p.asRun.p50Ms)}, p90 ${d(p.asRun.p90Ms)}`;
  return ` (predicted for this run, ${asRunText(p.asRun)}: ${asRun}; for a real incident p50 ${d(p.p50Ms)}, p90 ${d(p.p90Ms)}${risk}; ${runs})`;
}

/** The lines of an error after its summary (a failed command's stderr), or '' when there are none. */
function errorDetail(error: string | null): string {
  if (!error) return '';
  const nl = error.indexOf('\n');
  return nl === -1 ? '' : error.slice(nl + 1);
}

export function renderMarkdown(r: IncidentReport): string {
  const lines = [
    `# Incident report: ${r.incident ?? r.playbook}`,
    '',
    `- Playbook: \`${r.playbook}\`, run \`${r.run}\`, outcome **${r.outcome}**`,
    `- Detected: ${r.detection.at ?? 'unknown'}${r.detection.reason ? ` — ${r.detection.reason}` : ''}`,
    `- Recovery ran ${r.startedAt} → ${r.endedAt}`,
    `- Path: ${pathLine(r.path)}`,
    `- RTO: ${formatDuration(r.rto.actualMs)} from detection${r.rto.objective ? ` against an objective of ${r.rto.objective}: ${r.rto.breached ? (r.outcome === 'success' ? '**BREACHED**' : '**BREACHED** (not recovered)') : 'met'}` : ''}${predictedNote(r.rto.prediction)}`,
    '',
    '## Steps',
    '',
    '| step | name | kind | start | end | outcome | duration |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...r.steps.map(
      (s) =>
        `| ${s.phase === 'rollback' ? 'rollback/' : ''}${s.id} | ${cell(s.name ?? '')} | ${s.uses} | ${s.startedAt ?? ''} | ${s.endedAt ?? ''} | ${s.outcome}${s.error ? `: ${cell(firstLine(s.error))}` : ''} | ${formatDuration(s.durationMs)} |`,
    ),
  ];
  const detailed = r.steps.filter((s) => s.outcome === 'failure' && errorDetail(s.error));
  if (detailed.length) {
    lines.push('', '## Failures');
    for (const s of detailed) {
      lines.push(
        '',
        `### ${s.phase === 'rollback' ? 'rollback/' : ''}${stepLabel(s.id, s.name)}`,
        '',
        firstLine(s.error ?? ''),
        '',
        fenced(errorDetail(s.error)),
      );
    }
  }
  if (r.rollback) lines.push('', `Rollback: ${r.rollback.reason} — ${r.rollback.ok === null ? 'running' : r.rollback.ok ? 'succeeded' : 'FAILED'}`);
  if (r.approvals.length) lines.push('', '## Approvals', '', ...r.approvals.map((a) => `- ${a.step}: approved by ${a.by} at ${a.at}`));
  lines.push('', '## Milestones', '', '| milestone | at | from detection | marked by |', '| --- | --- | --- | --- |');
  lines.push(
    ...r.milestones.map((m) => `| ${m.name} | ${m.at ?? '–'} | ${m.sinceDetectionMs === null ? '–' : formatDuration(m.sinceDetectionMs)} | ${m.by ?? ''} |`),
  );
  if (r.notifications.length || r.comms.every) {
    lines.push('', '## Communications', '');
    if (r.comms.every)
      lines.push(
        `Status updates every ${r.comms.every}; ${r.comms.gaps.length ? `**${r.comms.gaps.length} gap(s) longer than that**` : 'no gap longer than that'}.`,
        '',
      );
    lines.push(...r.notifications.map((n) => `- ${n.sentAt} ${n.step === 'comms' ? 'status update' : n.step} (${n.channel})${n.ok ? '' : ' **FAILED**'}`));
    lines.push(...r.comms.gaps.map((g) => `- **gap** ${g.from} → ${g.to}: ${formatDuration(g.gapMs)} without a notification`));
  }
  if (r.phases.length) lines.push('', '## Trading phases', '', ...r.phases.map((p) => `- ${p.at} ${p.phase}`));
  if (r.analysis.length) {
    lines.push('', '## Traffic shift analysis', '', '| step | stage | weight | gate | verdict | pass | fail | inconclusive | error | detail |');
    lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    lines.push(
      ...r.analysis.map(
        (a) =>
          `| ${a.step} | ${a.stage} | ${a.weight}% | ${cell(a.gate)} | ${a.verdict === 'pass' ? 'pass' : `**${a.verdict}**`} | ${a.pass} | ${a.fail} | ${a.inconclusive} | ${a.error} | ${cell(a.detail)} |`,
      ),
    );
  }
  lines.push(...riskPreviewSection(r.riskPreviews), ...fundingSection(r.funding));
  if (r.samples.length) {
    lines.push('', '## Traffic shift samples', '', '| time | stage | weight | queue depth | p99 ms | error rate |', '| --- | --- | --- | --- | --- | --- |');
    lines.push(...r.samples.map((s) => `| ${s.at} | ${s.stage} | ${s.weight}% | ${s.queueDepth} | ${s.p99LatencyMs ?? ''} | ${s.errorRate} |`));
  }
  return `${lines.join('\n')}\n`;
}

/** The risk previews the run took (before the approval, in the bundled playbook): counts and the accounts shown. */
function riskPreviewSection(previews: RiskPreviewSeen[]): string[] {
  const out: string[] = [];
  for (const p of previews) {
    const c = p.counts;
    out.push('', `## Risk preview (${p.step}, ${p.at})`, '');
    out.push(
      `${c.wouldLiquidate ?? 0} would be liquidated, ${c.reduceOnly ?? 0} reduce-only, ${c.warning ?? 0} warned, of ${c.accounts ?? 0} accounts with positions.`,
    );
    if (p.accounts.length) {
      out.push('', '| account | band | uniMMR | equity | maintenance | would be liquidated |', '| --- | --- | --- | --- | --- | --- |');
      out.push(
        ...p.accounts.map((a) => `| ${cell(a.account)} | ${a.band} | ${a.uniMMR} | ${a.equity} | ${a.maintenance} | ${a.wouldLiquidate ? '**yes**' : 'no'} |`),
      );
    }
  }
  return out;
}

/** The missed funding intervals settled during the run, each with its holders at the funding time. */
function fundingSection(funding: FundingSettlement[]): string[] {
  if (!funding.length) return [];
  const out = ['', '## Missed funding settled', '', '| symbol | interval start | rate | mark | paid | received | holders (account qty amount) |'];
  out.push('| --- | --- | --- | --- | --- | --- | --- |');
  out.push(
    ...funding.map(
      (f) =>
        `| ${f.symbol} | ${f.intervalStart} | ${f.rate} | ${f.markPrice} | ${f.paid} | ${f.received} | ${f.holders.length ? cell(f.holders.map((h) => `${h.account} ${h.qty} ${h.amount}`).join('; ')) : 'none'} |`,
    ),
  );
  return out;
}
