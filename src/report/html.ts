/**
 * The components the incident report and the dashboard are both made of: each a section of HTML with
 * inline SVG (no script, no network), built from an IncidentReport. The report puts them on one
 * self-contained page; the dashboard serves the same sections and replaces them as the journal grows.
 * Every chart has a text equivalent: a <title> and <desc>, and the table beside it.
 */
import { formatDuration, parseDuration } from '../util/duration.js';
import { firstLine, stepLabel } from '../ui/lines.js';
import type { IncidentReport, IncidentStep, Milestone, StageRow } from './incident.js';
import { pathLine, predictedNote } from './incident.js';
import { LABEL_LANE_PX, placeLabels, scale, shortNumber, timeTicks, valueTicks, type Tick } from './svg.js';
import { REPORT_CSS } from './theme.js';

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** One section of a page: its element id and its inner HTML. */
export interface Section {
  id: string;
  html: string;
}

export interface RenderOptions {
  /** How a per-account file is linked: its href from the file name; no links without it. */
  userFileHref?: (name: string) => string;
}

/** Chart geometry: the width every chart shares, and the plot's left and right edges. */
const W = 960;
const PLOT_L = 170;
const PLOT_R = W - 24;

/** The time span every chart of a report shares: detection (or the run's start) to its end. */
function timeDomain(r: IncidentReport): [number, number] {
  const times = [r.startedAt, r.endedAt, ...(r.detection.at ? [r.detection.at] : []), ...r.samples.map((s) => s.at)].map((t) => Date.parse(t));
  const t0 = Math.min(...times);
  return [t0, Math.max(...times, t0 + 1)];
}

/** The x axis: a baseline, a tick and a clock label at each round time, and the axis title. */
function timeAxis(ticks: Tick[], x: (t: number) => number, y: number, top: number): string {
  const marks = ticks
    .map(
      (t) =>
        `<line class="grid-line" x1="${x(t.t).toFixed(1)}" x2="${x(t.t).toFixed(1)}" y1="${top}" y2="${y}"/><line x1="${x(t.t).toFixed(1)}" x2="${x(t.t).toFixed(1)}" y1="${y}" y2="${y + 5}"/><text class="tick-label" x="${x(t.t).toFixed(1)}" y="${y + 17}" text-anchor="middle">${t.label}</text>`,
    )
    .join('');
  return `<g class="axis x-axis"><line x1="${PLOT_L}" x2="${PLOT_R}" y1="${y}" y2="${y}"/>${marks}<text class="axis-label" x="${(PLOT_L + PLOT_R) / 2}" y="${y + 33}" text-anchor="middle">time (UTC)</text></g>`;
}

/** The page's first lines: what, which run, how it ended, when it was detected, the path taken. */
export function summarySection(r: IncidentReport): Section {
  const outcomeClass = r.outcome === 'success' ? 'ok' : r.outcome === 'running' ? 'warn' : 'bad';
  return {
    id: 'summary',
    html: `<h1>Incident report: ${esc(r.incident ?? r.playbook)}</h1>
<p>Playbook <code>${esc(r.playbook)}</code>, run <code>${esc(r.run)}</code>, outcome <strong id="outcome" class="badge ${outcomeClass}">${esc(r.outcome)}</strong></p>
<p>Detected ${esc(r.detection.at ?? 'unknown')}${r.detection.reason ? `: ${esc(r.detection.reason)}` : ''}. Recovery ran ${esc(r.startedAt)} to ${esc(r.endedAt)}.</p>
<p id="path">Path: ${esc(pathLine(r.path))}</p>`,
  };
}

/** A failed run's first news: the step that failed, why, and what the rollback did. Empty for a run that did not fail. */
export function failureSection(r: IncidentReport): Section {
  if (!r.failure && !r.rollback) return { id: 'failure', html: '' };
  const f = r.failure;
  const failed = f
    ? `<p id="failed-step"><strong>Step ${esc(stepLabel(f.step, f.name))} failed</strong>${f.at ? ` at ${esc(f.at)}` : ''}: ${esc(firstLine(f.error))}</p>`
    : '';
  const rb = r.rollback;
  // The reason is the failure above when there is one: said once.
  const rolled = rb
    ? `<p id="rollback">Rollback${f ? '' : ` (${esc(rb.reason)})`}: <strong class="${rb.ok === null ? 'warn' : rb.ok ? 'ok' : 'bad'}">${rb.ok === null ? 'running' : rb.ok ? 'succeeded' : 'FAILED: a person must act'}</strong>${rollbackSteps(r)}</p>`
    : '<p id="rollback">No rollback ran.</p>';
  const heading =
    r.outcome === 'rollback-failed'
      ? 'Recovery failed, and so did its rollback'
      : r.outcome.startsWith('failed') || r.outcome === 'running'
        ? 'Recovery failed'
        : `Recovery ${r.outcome}`;
  return { id: 'failure', html: `<h2>${esc(heading)}</h2>${failed}${rolled}` };
}

function rollbackSteps(r: IncidentReport): string {
  const steps = r.steps.filter((s) => s.phase === 'rollback');
  if (!steps.length) return '';
  return `; its steps: ${steps.map((s) => `${esc(s.id)} <span class="${s.outcome === 'success' ? 'ok' : s.outcome === 'failure' ? 'bad' : 'muted'}">${esc(s.outcome)}</span>`).join(', ')}`;
}

/** The prediction's p50 and p90 as times from detection (it covers the steps, which start after it). */
function predictedFromDetection(r: IncidentReport): { p50: number; p90: number } | null {
  const p = r.rto.prediction;
  if (!p || p.status !== 'predicted') return null;
  const lead = r.detection.at ? Math.max(0, Date.parse(r.startedAt) - Date.parse(r.detection.at)) : 0;
  const basis = p.asRun ?? p;
  return { p50: lead + basis.p50Ms, p90: lead + basis.p90Ms };
}

/** Met, breached, breached because the run did not recover, or within the budget so far. */
function rtoVerdict(r: IncidentReport): string {
  if (!r.rto.breached) return r.outcome === 'success' ? 'met' : 'within so far';
  const objectiveMs = parseDuration(r.rto.objective ?? '') ?? Infinity;
  return r.rto.actualMs > objectiveMs || r.outcome === 'success' ? 'breached' : 'breached (not recovered)';
}

/** The RTO budget: time spent since detection against the objective, with the prediction's p50 and p90. */
export function rtoSection(r: IncidentReport): Section {
  const objectiveMs = r.rto.objective ? (parseDuration(r.rto.objective) ?? null) : null;
  const spent = Math.max(0, r.rto.actualMs);
  const pred = predictedFromDetection(r);
  const max = Math.max(objectiveMs ?? 0, spent, pred?.p90 ?? 0, 1) * 1.04;
  const x = scale(0, max, PLOT_L, PLOT_R);
  const over = objectiveMs !== null && spent > objectiveMs;
  const share = objectiveMs ? ` (${Math.round((spent / objectiveMs) * 100)}% of the budget)` : '';
  const verdict = r.rto.objective ? ` against ${esc(r.rto.objective)}: <span class="${r.rto.breached ? 'breached' : 'met'}">${rtoVerdict(r)}</span>` : '';
  const text = `RTO ${esc(formatDuration(spent))}${verdict}${share}${esc(predictedNote(r.rto.prediction))}`;
  const marks: string[] = [];
  if (objectiveMs !== null)
    marks.push(
      `<line class="budget-objective" x1="${x(objectiveMs).toFixed(1)}" x2="${x(objectiveMs).toFixed(1)}" y1="8" y2="40"/><text class="marker-label" x="${(x(objectiveMs) - 3).toFixed(1)}" y="54" text-anchor="end">objective ${esc(r.rto.objective ?? '')}</text>`,
    );
  if (pred)
    for (const [name, v] of [
      ['p50', pred.p50],
      ['p90', pred.p90],
    ] as const)
      marks.push(
        `<line class="budget-predicted" x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="4" y2="44"><title>predicted ${name} ${esc(formatDuration(v))} from detection</title></line>`,
      );
  const desc = `${formatDuration(spent)} spent since detection${objectiveMs !== null ? ` of an objective of ${r.rto.objective ?? ''}` : ''}${pred ? `; predicted p50 ${formatDuration(pred.p50)}, p90 ${formatDuration(pred.p90)} from detection` : ''}.`;
  const svg = `<svg class="chart" id="rto-bar" viewBox="0 0 ${W} 62" role="img" aria-labelledby="rto-bar-title rto-bar-desc"><title id="rto-bar-title">RTO budget</title><desc id="rto-bar-desc">${esc(desc)}</desc>
<text x="4" y="28">spent from detection</text><rect class="budget-track" x="${PLOT_L}" y="12" width="${PLOT_R - PLOT_L}" height="24" rx="3"/><rect class="budget-spent${over ? ' over' : ''}" x="${PLOT_L}" y="12" width="${Math.max(1, x(spent) - PLOT_L).toFixed(1)}" height="24" rx="3"/>${marks.join('')}
<text x="${PLOT_L}" y="54">0</text></svg>`;
  return { id: 'rto-budget', html: `<h2>RTO budget</h2><p id="rto">${text}</p>${svg}` };
}

const MILESTONE_LABEL: Record<Milestone['name'], string> = {
  detected: 'detected',
  'first notification': 'first notice',
  mitigated: 'mitigated',
  resumed: 'resumed',
  closed: 'closed',
};

/** The markers over the timeline: each trading phase change and each milestone reached. */
function markersOf(r: IncidentReport): { at: number; text: string; kind: 'phase' | 'milestone' }[] {
  const phases = r.phases.map((p) => ({ at: Date.parse(p.at), text: p.phase, kind: 'phase' as const }));
  const milestones = r.milestones
    .filter((m) => m.at !== null)
    .map((m) => ({
      at: Date.parse(m.at as string),
      text: `${MILESTONE_LABEL[m.name]}${m.sinceDetectionMs !== null && m.sinceDetectionMs > 0 ? ` +${formatDuration(m.sinceDetectionMs)}` : ''}`,
      kind: 'milestone' as const,
    }));
  return [...milestones, ...phases];
}

/** Trading phase bands: each phase from its change to the next (or the end of the chart). */
function phaseBands(r: IncidentReport, x: (t: number) => number, t1: number, top: number, bottom: number): string {
  const sorted = [...r.phases].sort((a, b) => a.at.localeCompare(b.at));
  return sorted
    .map((p, i) => {
      const from = x(Date.parse(p.at));
      const to = x(i + 1 < sorted.length ? Date.parse((sorted[i + 1] as { at: string }).at) : t1);
      return `<rect class="band ${esc(p.phase)}" x="${from.toFixed(1)}" y="${top}" width="${Math.max(0, to - from).toFixed(1)}" height="${bottom - top}"><title>${esc(`${p.phase} from ${p.at}`)}</title></rect>`;
    })
    .join('');
}

const ROW = 22;

function stepBar(s: IncidentStep, y: number, x: (t: number) => number, t1: number): string {
  const label0 = s.phase === 'rollback' ? `↩ ${s.id}` : s.id;
  const name0 = label0.length > 22 ? `${label0.slice(0, 21)}…` : label0;
  if (!s.startedAt)
    return `<text class="step-label" x="4" y="${y + 12}">${esc(name0)}</text><text class="step-note" data-step="${esc(s.id)}" x="${PLOT_L + 4}" y="${y + 12}">${esc(s.outcome)}</text>`;
  const x1 = x(s.startedAt ? Date.parse(s.startedAt) : t1);
  const x2 = Math.max(x1 + 2, x(s.endedAt ? Date.parse(s.endedAt) : s.outcome === 'running' ? t1 : Date.parse(s.startedAt ?? '') || t1));
  const shown = name0;
  const tip = `${stepLabel(s.id, s.name)}: ${s.outcome} ${formatDuration(s.durationMs)}${s.error ? `: ${firstLine(s.error)}` : ''}`;
  return `<text class="step-label" x="4" y="${y + 12}">${esc(shown)}</text><rect class="bar ${s.outcome}" data-step="${esc(s.id)}" x="${x1.toFixed(1)}" y="${y}" width="${(x2 - x1).toFixed(1)}" height="16" rx="2"><title>${esc(tip)}</title></rect>`;
}

/** The timeline: phase bands, labelled phase and milestone markers (no two labels overlap), notifications, one bar per step, a time axis. */
export function timelineSection(r: IncidentReport): Section {
  const [t0, t1] = timeDomain(r);
  const x = scale(t0, t1, PLOT_L, PLOT_R);
  const markers = markersOf(r);
  const { labels, lanes } = placeLabels(
    markers.map((m) => ({ x: x(m.at), text: m.text })),
    4,
    W - 4,
  );
  const top = 6 + lanes * LABEL_LANE_PX;
  const rowsTop = top + 8;
  const notesY = rowsTop;
  const stepsTop = rowsTop + ROW;
  const bottom = stepsTop + r.steps.length * ROW + 4;
  const markerSvg = markers
    .map((m, i) => {
      const l = labels[i] as (typeof labels)[number];
      const ly = top - l.lane * LABEL_LANE_PX - 4;
      return `<g class="marker-group ${m.kind}"><line class="marker" x1="${l.x.toFixed(1)}" x2="${l.x.toFixed(1)}" y1="${ly + 3}" y2="${bottom}"/><text class="marker-label" x="${l.textX.toFixed(1)}" y="${ly}" text-anchor="${l.anchor}">${esc(m.text)}</text></g>`;
    })
    .join('');
  const dots = r.notifications
    .map(
      (n) =>
        `<circle class="dot${n.ok ? '' : ' failed'}" cx="${x(Date.parse(n.sentAt)).toFixed(1)}" cy="${notesY + 8}" r="5"><title>${esc(`${n.sentAt} ${n.step === 'comms' ? 'status update' : n.step} (${n.channel})${n.ok ? '' : ' failed'}`)}</title></circle>`,
    )
    .join('');
  const bars = r.steps.map((s, i) => stepBar(s, stepsTop + i * ROW, x, t1)).join('');
  const H = bottom + 40;
  const desc = `${r.steps.length} steps from ${r.startedAt} to ${r.endedAt}; trading phases ${r.phases.map((p) => p.phase).join(', ') || 'none recorded'}; milestones ${
    r.milestones
      .filter((m) => m.at)
      .map((m) => m.name)
      .join(', ') || 'none'
  }. The steps table below has the same.`;
  const svg = `<svg class="chart" id="timeline" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="timeline-title timeline-desc"><title id="timeline-title">Timeline of the recovery</title><desc id="timeline-desc">${esc(desc)}</desc>
${phaseBands(r, x, t1, rowsTop, bottom)}${markerSvg}<text class="step-label" x="4" y="${notesY + 12}">notifications</text>${dots}${bars}${timeAxis(timeTicks(t0, t1), x, bottom, rowsTop)}</svg>`;
  const legend = `<p class="muted legend">Bars: steps (green done, red failed, grey skipped, amber interrupted, blue running). Bands: trading phase (red halted, amber cancel-only or post-only, green open). Dots: notifications.</p>`;
  return { id: 'timeline-section', html: `<h2>Timeline</h2>${svg}${legend}` };
}

/** A line through (time, value) points. */
function polyline(points: [number, number][], x: (t: number) => number, y: (v: number) => number): string {
  return points.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
}

/** Queue depth (left axis) and admission weight (right axis, %) over time, with a legend. */
export function trafficSection(r: IncidentReport): Section {
  if (!r.samples.length) return { id: 'traffic-section', html: '<h2>Queue depth and admission weight</h2><p>No traffic-shift samples in this run.</p>' };
  const [t0, t1] = timeDomain(r);
  const x = scale(t0, t1, PLOT_L, PLOT_R);
  const top = 34;
  const bottom = 214;
  const depthTicks = valueTicks(Math.max(1, ...r.samples.map((s) => s.queueDepth)));
  const depthMax = depthTicks[depthTicks.length - 1] as number;
  const yDepth = scale(0, depthMax, bottom, top);
  const yWeight = scale(0, 100, bottom, top);
  const left = depthTicks
    .map(
      (v) =>
        `<line x1="${PLOT_L - 5}" x2="${PLOT_L}" y1="${yDepth(v).toFixed(1)}" y2="${yDepth(v).toFixed(1)}"/><text class="tick-label" x="${PLOT_L - 8}" y="${(yDepth(v) + 4).toFixed(1)}" text-anchor="end">${shortNumber(v)}</text>`,
    )
    .join('');
  const right = [0, 25, 50, 75, 100]
    .map(
      (v) =>
        `<line x1="${PLOT_R}" x2="${PLOT_R + 5}" y1="${yWeight(v).toFixed(1)}" y2="${yWeight(v).toFixed(1)}"/><text class="tick-label" x="${PLOT_R - 4}" y="${(yWeight(v) - 3).toFixed(1)}" text-anchor="end">${v}%</text>`,
    )
    .join('');
  const depth = polyline(
    r.samples.map((s) => [Date.parse(s.at), s.queueDepth]),
    x,
    yDepth,
  );
  const weight = polyline(
    r.samples.map((s) => [Date.parse(s.at), s.weight]),
    x,
    yWeight,
  );
  const maxDepth = Math.max(...r.samples.map((s) => s.queueDepth));
  const desc = `${r.samples.length} samples from ${r.samples[0]?.at ?? ''} to ${r.samples[r.samples.length - 1]?.at ?? ''}: queue depth at most ${maxDepth}, admission weight up to ${Math.max(...r.samples.map((s) => s.weight))}%. The stage table below has each stage's values.`;
  const svg = `<svg class="chart" id="traffic" viewBox="0 0 ${W} ${bottom + 40}" role="img" aria-labelledby="traffic-title traffic-desc"><title id="traffic-title">Queue depth and admission weight over time</title><desc id="traffic-desc">${esc(desc)}</desc>
<g class="legend"><rect class="swatch-depth" x="${PLOT_L}" y="8" width="14" height="4"/><text x="${PLOT_L + 20}" y="14">queue depth (left axis)</text><rect class="swatch-weight" x="${PLOT_L + 220}" y="8" width="14" height="4"/><text x="${PLOT_L + 240}" y="14">admission weight % (right axis)</text></g>
<g class="axis y-axis"><line x1="${PLOT_L}" x2="${PLOT_L}" y1="${top}" y2="${bottom}"/>${left}<text class="axis-label" x="4" y="${top + 4}">queue depth</text></g>
<g class="axis y-axis"><line x1="${PLOT_R}" x2="${PLOT_R}" y1="${top}" y2="${bottom}"/>${right}</g>
<path id="queue-depth" class="line-depth" d="${depth}"/><path id="admission-weight" class="line-weight" d="${weight}"/>${timeAxis(timeTicks(t0, t1), x, bottom, top)}</svg>`;
  return { id: 'traffic-section', html: `<h2>Queue depth and admission weight</h2>${svg}` };
}

const num = (v: number | null): string => (v === null ? '–' : shortNumber(v));

/** The traffic shift, one row per stage: weight, bake, samples, each gate's min/max/last against its limit, the verdict. */
export function stagesSection(r: IncidentReport): Section {
  if (!r.stages.length) return { id: 'stages-section', html: '' };
  const gates = [...new Set(r.stages.flatMap((s) => s.gates.map((g) => g.gate)))];
  const limitOf = (gate: string): string => r.stages.flatMap((s) => s.gates).find((g) => g.gate === gate && g.threshold)?.threshold ?? '';
  const head = `<tr><th>step</th><th>stage</th><th>weight</th><th>bake</th><th>samples</th>${gates.map((g) => `<th>${esc(g)}${limitOf(g) ? `<br><span class="muted">${esc(limitOf(g))}</span>` : ''}</th>`).join('')}<th>verdict</th></tr>`;
  const body = r.stages.map((s) => stageRowHtml(s, gates)).join('\n');
  return {
    id: 'stages-section',
    html: `<h2>Traffic shift, stage by stage</h2><p class="muted">Each gate's minimum, maximum and last value over the stage, against its limit; the verdict is the worst of the stage's samples.</p>
<table id="stages"><thead>${head}</thead><tbody>
${body}
</tbody></table>${samplesDetails(r)}`,
  };
}

function stageRowHtml(s: StageRow, gates: string[]): string {
  const cells = gates
    .map((name) => {
      const g = s.gates.find((x) => x.gate === name);
      if (!g) return '<td class="muted">–</td>';
      const counts = [g.fail ? `${g.fail} fail` : '', g.inconclusive ? `${g.inconclusive} inconclusive` : '', g.error ? `${g.error} error` : '']
        .filter(Boolean)
        .join(', ');
      return `<td class="verdict-${g.verdict}" title="${esc(g.detail)}">min ${num(g.min)} · max ${num(g.max)} · last ${num(g.last)}${counts ? `<br>${counts}` : ''}</td>`;
    })
    .join('');
  return `<tr class="verdict-${s.verdict}" data-stage="${s.stage}"><td>${esc(s.step)}</td><td class="num">${s.stage}/${s.stages}</td><td class="num">${s.weight}%</td><td class="num">${s.bakeMs === null ? '–' : esc(formatDuration(s.bakeMs))}</td><td class="num">${s.samples}</td>${cells}<td class="verdict verdict-${s.verdict}">${s.verdict}</td></tr>`;
}

/** Every raw sample, folded away (the stage table is what a reader needs; incident.json has them too). */
function samplesDetails(r: IncidentReport): string {
  if (!r.samples.length) return '';
  const rows = r.samples
    .map(
      (s) =>
        `<tr><td>${esc(s.at)}</td><td class="num">${s.stage}</td><td class="num">${s.weight}%</td><td class="num">${s.queueDepth}</td><td class="num">${s.p99LatencyMs ?? ''}</td><td class="num">${s.errorRate}</td></tr>`,
    )
    .join('\n');
  return `<details id="raw-samples"><summary>All ${r.samples.length} samples</summary>
<table id="gates"><tr><th>time</th><th>stage</th><th>weight</th><th>queue depth</th><th>p99 ms</th><th>error rate</th></tr>
${rows}
</table></details>`;
}

/** The lines of an error after its summary (a failed command's stderr), or '' when there are none. */
function errorDetail(error: string | null): string {
  if (!error) return '';
  const nl = error.indexOf('\n');
  return nl === -1 ? '' : error.slice(nl + 1);
}

/** A time of day (UTC) in a table cell, the full timestamp in its tooltip and datetime. */
function timeCell(at: string | null): string {
  return at ? `<td><time datetime="${esc(at)}" title="${esc(at)}">${esc(at.slice(11, 23))}</time></td>` : '<td></td>';
}

export function stepsSection(r: IncidentReport): Section {
  const rows = r.steps
    .map((s) => {
      const detail = errorDetail(s.error);
      const outcome = `${esc(s.outcome)}${s.error ? `: ${esc(firstLine(s.error))}` : ''}${detail ? `<pre class="tail">${esc(detail)}</pre>` : ''}`;
      return `<tr class="${s.outcome}"><td>${esc(s.phase === 'rollback' ? `rollback/${s.id}` : s.id)}</td><td class="name">${esc(s.name ?? '')}</td><td>${esc(s.uses)}</td>${timeCell(s.startedAt)}${timeCell(s.endedAt)}<td>${outcome}</td><td class="num">${esc(formatDuration(s.durationMs))}</td></tr>`;
    })
    .join('\n');
  return {
    id: 'steps-section',
    html: `<h2>Steps</h2>
<table id="steps"><tr><th>step</th><th>name</th><th>kind</th><th>start (UTC)</th><th>end (UTC)</th><th>outcome</th><th>duration</th></tr>
${rows}
</table>`,
  };
}

export function milestonesSection(r: IncidentReport): Section {
  const rows = r.milestones
    .map(
      (m) =>
        `<tr data-milestone="${esc(m.name)}"><td>${esc(m.name)}</td><td>${esc(m.at ?? '–')}</td><td class="num">${m.sinceDetectionMs === null ? '–' : esc(formatDuration(m.sinceDetectionMs))}</td><td>${esc(m.by ?? '')}</td></tr>`,
    )
    .join('');
  return {
    id: 'milestones-section',
    html: `<h2>Milestones</h2>\n<table id="milestones"><tr><th>milestone</th><th>at</th><th>from detection</th><th>marked by</th></tr>${rows}</table>`,
  };
}

/** Every notification and status update in time order, failed ones marked, and the gaps longer than the cadence. */
export function communicationsSection(r: IncidentReport): Section {
  if (!r.notifications.length && !r.comms.every) return { id: 'communications-section', html: '' };
  const cadence = r.comms.every
    ? `<p id="comms-cadence">Status updates every ${esc(r.comms.every)}: ${r.comms.gaps.length ? `<span class="breached">${r.comms.gaps.length} gap(s) longer than that</span>` : '<span class="met">no gap longer than that</span>'}.</p>`
    : '';
  const items = [
    ...r.notifications.map((n) => ({
      at: n.sentAt,
      html: `<time>${esc(n.sentAt)}</time> ${esc(n.step === 'comms' ? 'status update' : n.step)} (${esc(n.channel)})${n.ok ? '' : ' <span class="breached">failed</span>'}`,
    })),
    ...r.comms.gaps.map((g) => ({
      at: g.from,
      html: `<span class="breached">gap</span> ${esc(g.from)} → ${esc(g.to)}: ${esc(formatDuration(g.gapMs))} without a notification`,
    })),
  ].sort((a, b) => a.at.localeCompare(b.at));
  return {
    id: 'communications-section',
    html: `<h2>Communications</h2>${cadence}<ul id="communications">${items.map((i) => `<li>${i.html}</li>`).join('')}</ul>`,
  };
}

/** Who was affected: the accounts reported, the orders open at the halt, the funding settled, and the per-account files. */
export function usersSection(r: IncidentReport, opts: RenderOptions = {}): Section {
  const u = r.users;
  if (!u && !r.funding.length) return { id: 'users-section', html: '' };
  const items: string[] = [];
  if (u) {
    items.push(`<dt>accounts reported</dt><dd id="users-accounts">${u.accounts}</dd>`);
    items.push(`<dt>orders open at the halt</dt><dd id="users-open-orders">${u.openOrders ?? '–'}</dd>`);
    items.push(`<dt>snapshot</dt><dd>seq ${u.seq ?? '–'}</dd>`);
  }
  const symbols = [...new Set(r.funding.map((f) => f.symbol))];
  items.push(
    `<dt>funding settled</dt><dd id="users-funding">${r.funding.length} interval${r.funding.length === 1 ? '' : 's'}${symbols.length ? ` (${esc(symbols.join(', '))})` : ''}</dd>`,
  );
  const href = opts.userFileHref;
  const links =
    u && href && u.links.length
      ? `<ul id="user-files">${u.links.map((n) => `<li><a href="${esc(href(n))}">${esc(n)}</a></li>`).join('')}${u.more ? `<li class="muted">and ${u.more} more in ${esc(u.dir)}</li>` : ''}</ul>`
      : u
        ? `<p class="muted">${u.files} files in <code>${esc(u.dir)}</code></p>`
        : '';
  return { id: 'users-section', html: `<h2>Affected users</h2><dl class="grid panel">${items.join('')}</dl>${links}` };
}

/** A funding interval's holders (account qty amount): inline when few, folded away when many. */
function holdersHtml(holders: IncidentReport['funding'][number]['holders']): string {
  if (!holders.length) return 'none';
  const list = holders.map((h) => esc(`${h.account} ${h.qty} ${h.amount}`)).join('<br>');
  return holders.length <= 5 ? list : `<details><summary>${holders.length} holders</summary>${list}</details>`;
}

/** The risk previews and the missed funding settled, as tables. */
export function riskFundingSection(r: IncidentReport): Section {
  const parts: string[] = [];
  for (const p of r.riskPreviews) {
    const rows = p.accounts
      .map(
        (a) =>
          `<tr${a.wouldLiquidate ? ' class="failure"' : ''}><td>${esc(a.account)}</td><td>${esc(a.band)}</td><td class="num">${esc(a.uniMMR)}</td><td class="num">${esc(a.equity)}</td><td class="num">${esc(a.maintenance)}</td><td>${a.wouldLiquidate ? 'yes' : 'no'}</td></tr>`,
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
          `<tr><td>${esc(f.symbol)}</td><td>${esc(f.intervalStart)}</td><td class="num">${esc(f.rate)}</td><td class="num">${esc(f.markPrice)}</td><td class="num">${esc(f.paid)}</td><td class="num">${esc(f.received)}</td><td>${holdersHtml(f.holders)}</td></tr>`,
      )
      .join('\n');
    parts.push(
      `<h2>Missed funding settled</h2><table id="funding"><tr><th>symbol</th><th>interval start</th><th>rate</th><th>mark</th><th>paid</th><th>received</th><th>holders (account qty amount)</th></tr>\n${rows}\n</table>`,
    );
  }
  return { id: 'risk-funding-section', html: parts.join('\n') };
}

/** Every section of a report, in reading order: a failed run's failure and rollback come first. */
export function reportSections(r: IncidentReport, opts: RenderOptions = {}): Section[] {
  return [
    summarySection(r),
    failureSection(r),
    rtoSection(r),
    timelineSection(r),
    trafficSection(r),
    stagesSection(r),
    stepsSection(r),
    milestonesSection(r),
    communicationsSection(r),
    usersSection(r, opts),
    riskFundingSection(r),
  ];
}

/** Sections as page markup: each in its own element, so the dashboard can replace one by id. */
export function sectionsHtml(sections: readonly Section[]): string {
  return sections.map((s) => `<section id="${s.id}"${s.html ? '' : ' hidden'}>${s.html}</section>`).join('\n');
}

/** The self-contained report page: the stylesheet inline, no script, no network. */
export function renderHtml(r: IncidentReport, opts: RenderOptions = {}): string {
  const title = `Incident report: ${r.incident ?? r.playbook}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"><title>${esc(title)}</title>
<style>${REPORT_CSS}</style></head>
<body><main>
${sectionsHtml(reportSections(r, opts))}
</main></body></html>
`;
}
