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
}

const VERDICT_RANK = { pass: 0, inconclusive: 1, error: 2, fail: 3 } as const;

/** A traffic-shift sample: each gate's judgement counted into its row for the stage. */
function measured(c: Collected, e: EventOf<'measurement'>): void {
  for (const j of e.judgements) {
    const key = `${e.step}\u0000${e.stage}\u0000${j.gate}`;
    const row = c.analysis.get(key) ?? {
      step: e.step,
      stage: e.stage,
      weight: e.weight,
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

/** Build the incident timeline from a run's events; detection comes from the engine's recorded halt. */
export function buildIncident(events: RunEvent[], detection: { at: string | null; reason: string | null }, now: Date): IncidentReport {
  const start = events.find((e) => e.event === 'run-start');
  const end = [...events].reverse().find((e) => e.event === 'run-end');
  const { steps, notifications, approvals, phases, samples, analysis, rollback, funding, riskPreviews } = collect(events, detection);
  // Before the run ends (the report step itself), the outcome so far: failed once a step has failed.
  const failedSoFar = events.some((e) => e.event === 'fail' && e.phase === 'main' && !e.continued);
  const outcome = end?.event === 'run-end' ? end.outcome : failedSoFar ? (rollback ? 'failed (rolled back)' : 'failed') : 'success';
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
    steps: [...steps.values()],
    notifications,
    approvals,
    rollback,
    // A recovery that failed has not recovered: its RTO is breached, however quickly it gave up.
    rto: {
      objective,
      actualMs,
      breached: objectiveMs === undefined ? null : outcome !== 'success' || actualMs > objectiveMs,
      prediction: start?.event === 'run-start' ? (start.rtoPrediction ?? null) : null,
    },
    phases,
    samples,
    analysis: [...analysis.values()],
    funding,
    riskPreviews: [...riskPreviews.values()],
    // A report written by a step before the run ends closes it at the report's own time.
    comms: commsOf(events, notifications, startedAt, endedAt),
    milestones: milestonesOf(events, detection.at, notifications, endedAt),
    path: pathOf(events, detection.at),
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

/** The risk previews and the missed funding settled, as HTML tables (the same content as the Markdown). */
function riskAndFundingHtml(r: IncidentReport): string {
  const parts: string[] = [];
  for (const p of r.riskPreviews) {
    const rows = p.accounts
      .map(
        (a) =>
          `<tr${a.wouldLiquidate ? ' class="failure"' : ''}><td>${esc(a.account)}</td><td>${esc(a.band)}</td><td>${esc(a.uniMMR)}</td><td>${esc(a.equity)}</td><td>${esc(a.maintenance)}</td><td>${a.wouldLiquidate ? 'yes' : 'no'}</td></tr>`,
      )
      .join('\n');
    parts.push(
      `<h2>Risk preview (${esc(p.step)}, ${esc(p.at)})</h2><p>${p.counts.wouldLiquidate ?? 0} would be liquidated, ${p.counts.reduceOnly ?? 0} reduce-only, ${p.counts.warning ?? 0} warned, of ${p.counts.accounts ?? 0} accounts with positions.</p>`,
      `<table class="risk-preview"><tr><th>account</th><th>band</th><th>uniMMR</th><th>equity</th><th>maintenance</th><th>would be liquidated</th></tr>\n${rows}\n</table>`,
    );
  }
  if (r.funding.length) {
    const rows = r.funding
      .map(
        (f) =>
          `<tr><td>${esc(f.symbol)}</td><td>${esc(f.intervalStart)}</td><td>${esc(f.rate)}</td><td>${esc(f.markPrice)}</td><td>${esc(f.paid)}</td><td>${esc(f.received)}</td><td>${f.holders.map((h) => esc(`${h.account} ${h.qty} ${h.amount}`)).join('<br>') || 'none'}</td></tr>`,
      )
      .join('\n');
    parts.push(
      `<h2>Missed funding settled</h2><table id="funding"><tr><th>symbol</th><th>interval start</th><th>rate</th><th>mark</th><th>paid</th><th>received</th><th>holders (account qty amount)</th></tr>\n${rows}\n</table>`,
    );
  }
  return parts.join('\n');
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function milestonesTable(ms: Milestone[]): string {
  const rows = ms
    .map(
      (m) =>
        `<tr data-milestone="${esc(m.name)}"><td>${esc(m.name)}</td><td>${esc(m.at ?? '–')}</td><td>${m.sinceDetectionMs === null ? '–' : esc(formatDuration(m.sinceDetectionMs))}</td><td>${esc(m.by ?? '')}</td></tr>`,
    )
    .join('');
  return `<h2>Milestones</h2>\n<table id="milestones"><tr><th>milestone</th><th>at</th><th>from detection</th><th>marked by</th></tr>${rows}</table>`;
}

/** Every notification and status update in time order, failed ones marked, and the gaps longer than the cadence. */
function communications(r: IncidentReport): string {
  if (!r.notifications.length && !r.comms.every) return '';
  const cadence = r.comms.every
    ? `<p id="comms-cadence">Status updates every ${esc(r.comms.every)}: ${r.comms.gaps.length ? `<span class="breached">${r.comms.gaps.length} gap(s) longer than that</span>` : '<span class="met">no gap longer than that</span>'}.</p>`
    : '';
  const items = [
    ...r.notifications.map((n) => ({
      at: n.sentAt,
      html: `${esc(n.sentAt)} ${esc(n.step === 'comms' ? 'status update' : n.step)} (${esc(n.channel)})${n.ok ? '' : ' <span class="breached">failed</span>'}`,
    })),
    ...r.comms.gaps.map((g) => ({
      at: g.from,
      html: `<span class="breached">gap</span> ${esc(g.from)} → ${esc(g.to)}: ${esc(formatDuration(g.gapMs))} without a notification`,
    })),
  ].sort((a, b) => a.at.localeCompare(b.at));
  return `<h2>Communications</h2>${cadence}<ul id="communications">${items.map((i) => `<li>${i.html}</li>`).join('')}</ul>`;
}

/** One row per stage and gate: the verdict and the count of each verdict. */
function analysisTable(rows: StageAnalysis[]): string {
  if (!rows.length) return '';
  const body = rows
    .map(
      (a) =>
        `<tr class="verdict-${a.verdict}"><td>${esc(a.step)}</td><td>${a.stage}</td><td>${a.weight}%</td><td>${esc(a.gate)}</td><td class="verdict">${a.verdict}</td><td>${a.pass}</td><td>${a.fail}</td><td>${a.inconclusive}</td><td>${a.error}</td><td>${esc(a.detail)}</td></tr>`,
    )
    .join('\n');
  return `<h2>Traffic shift analysis</h2>
<table id="analysis"><tr><th>step</th><th>stage</th><th>weight</th><th>gate</th><th>verdict</th><th>pass</th><th>fail</th><th>inconclusive</th><th>error</th><th>detail</th></tr>
${body}
</table>`;
}

/** A self-contained HTML page (no network): the timeline of phases and steps, and queue depth and admission weight over time. */
export function renderHtml(r: IncidentReport): string {
  const times = [r.startedAt, r.endedAt, ...(r.detection.at ? [r.detection.at] : []), ...r.samples.map((s) => s.at)].map((t) => Date.parse(t));
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1);
  const W = 900;
  const x = (t: string | null): number => (t ? 160 + ((Date.parse(t) - t0) / (t1 - t0)) * (W - 180) : 160);
  const colour: Record<string, string> = { success: '#2e7d32', failure: '#c62828', skipped: '#9e9e9e', interrupted: '#f9a825', running: '#1565c0' };
  const rows = r.steps
    .map((s, i) => {
      const y = 30 + i * 22;
      const x1 = x(s.startedAt);
      const x2 = Math.max(x1 + 2, x(s.endedAt ?? s.startedAt));
      return `<text x="4" y="${y + 12}" class="label">${esc(s.phase === 'rollback' ? `↩ ${s.id}` : s.id)}</text><rect class="step ${s.outcome}" data-step="${esc(s.id)}" x="${x1.toFixed(1)}" y="${y}" width="${(x2 - x1).toFixed(1)}" height="16" fill="${colour[s.outcome] ?? '#555'}"><title>${esc(`${stepLabel(s.id, s.name)} ${s.outcome} ${formatDuration(s.durationMs)}${s.error ? `: ${firstLine(s.error)}` : ''}`)}</title></rect>`;
    })
    .join('\n');
  const phaseMarks = r.phases
    .map(
      (p) =>
        `<line class="phase" x1="${x(p.at).toFixed(1)}" x2="${x(p.at).toFixed(1)}" y1="20" y2="${40 + r.steps.length * 22}" stroke="#6a1b9a" stroke-dasharray="4 3"><title>${esc(`${p.at} ${p.phase}`)}</title></line><text x="${(x(p.at) + 3).toFixed(1)}" y="16" class="phase-label">${esc(p.phase)}</text>`,
    )
    .join('');
  const H = 160;
  const maxDepth = Math.max(1, ...r.samples.map((s) => s.queueDepth));
  const line = (vals: [string, number][], max: number): string =>
    vals.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${(H - 10 - (v / max) * (H - 30)).toFixed(1)}`).join(' ');
  const depthPath = line(
    r.samples.map((s) => [s.at, s.queueDepth]),
    maxDepth,
  );
  const weightPath = line(
    r.samples.map((s) => [s.at, s.weight]),
    100,
  );
  const chart = r.samples.length
    ? `<svg class="chart" id="traffic" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="queue depth and admission weight over time"><path id="queue-depth" d="${depthPath}" fill="none" stroke="#c62828" stroke-width="2"/><path id="admission-weight" d="${weightPath}" fill="none" stroke="#1565c0" stroke-width="2"/><text x="4" y="14" class="label">queue depth (max ${maxDepth}, red) · admission weight % (blue)</text></svg>`
    : '<p>No traffic-shift samples in this run.</p>';
  const stepRows = r.steps
    .map((s) => {
      const detail = errorDetail(s.error);
      const outcome = `${esc(s.outcome)}${s.error ? `: ${esc(firstLine(s.error))}` : ''}${detail ? `<pre class="tail">${esc(detail)}</pre>` : ''}`;
      return `<tr class="${s.outcome}"><td>${esc(s.phase === 'rollback' ? `rollback/${s.id}` : s.id)}</td><td class="name">${esc(s.name ?? '')}</td><td>${esc(s.uses)}</td><td>${esc(s.startedAt ?? '')}</td><td>${esc(s.endedAt ?? '')}</td><td>${outcome}</td><td>${esc(formatDuration(s.durationMs))}</td></tr>`;
    })
    .join('\n');
  const gateRows = r.samples
    .map(
      (s) =>
        `<tr><td>${esc(s.at)}</td><td>${s.stage}</td><td>${s.weight}%</td><td>${s.queueDepth}</td><td>${s.p99LatencyMs ?? ''}</td><td>${s.errorRate}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Incident report: ${esc(r.incident ?? r.playbook)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.label{font:11px sans-serif}.phase-label{font:10px sans-serif;fill:#6a1b9a}.breached{color:#c62828;font-weight:bold}.met{color:#2e7d32;font-weight:bold}tr.failure td,tr.verdict-fail td{background:#fdecea}tr.verdict-inconclusive td,tr.verdict-error td{background:#fff8e1}pre.tail{margin:4px 0 0;font-size:12px;white-space:pre-wrap}</style></head>
<body>
<h1>Incident report: ${esc(r.incident ?? r.playbook)}</h1>
<p>Playbook <code>${esc(r.playbook)}</code>, run <code>${esc(r.run)}</code>, outcome <strong id="outcome">${esc(r.outcome)}</strong>.</p>
<p>Detected ${esc(r.detection.at ?? 'unknown')}${r.detection.reason ? `: ${esc(r.detection.reason)}` : ''}.</p>
<p id="path">Path: ${esc(pathLine(r.path))}</p>
<p id="rto">RTO ${esc(formatDuration(r.rto.actualMs))}${r.rto.objective ? ` against ${esc(r.rto.objective)}: <span class="${r.rto.breached ? 'breached' : 'met'}">${r.rto.breached ? 'breached' : 'met'}</span>` : ''}${esc(predictedNote(r.rto.prediction))}</p>
<h2>Timeline</h2>
<svg class="chart" id="timeline" viewBox="0 0 ${W} ${50 + r.steps.length * 22}" width="${W}" height="${50 + r.steps.length * 22}" role="img" aria-label="steps and trading phases over time">${phaseMarks}${rows}</svg>
<h2>Queue depth and admission weight</h2>
${chart}
<h2>Steps</h2>
<table id="steps"><tr><th>step</th><th>name</th><th>kind</th><th>start</th><th>end</th><th>outcome</th><th>duration</th></tr>
${stepRows}
</table>
${analysisTable(r.analysis)}
<h2>Gate values per traffic stage</h2>
<table id="gates"><tr><th>time</th><th>stage</th><th>weight</th><th>queue depth</th><th>p99 ms</th><th>error rate</th></tr>
${gateRows}
</table>
${milestonesTable(r.milestones)}
${communications(r)}
${riskAndFundingHtml(r)}
</body></html>
`;
}
