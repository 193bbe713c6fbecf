/**
 * The dashboard's own components, made of the report's: what is happening now in one run (step, stage,
 * phase, weight, each gate's last value against its limit, approvals waiting, notifications), and the
 * list of runs. Pure: the dashboard server feeds them the report it builds from the journal.
 */
import { formatDuration, parseDuration } from '../util/duration.js';
import { stepLabel } from '../ui/lines.js';
import { esc, reportSections, type Section } from './html.js';
import type { IncidentReport } from './incident.js';
import { shortNumber } from './svg.js';

/** What the dashboard knows about a journal besides its records: the run's process, a torn or corrupt tail. */
export interface JournalHealth {
  /** `running`, `stopped (resumable)`, or the run's outcome. */
  status: string;
  records: number;
  tornBytes: number;
  corruptAtLine: number | null;
  truncations: number;
}

/** A torn tail or a corrupt record, said plainly; empty for a healthy journal. */
function journalNotice(h: JournalHealth): string {
  const notes: string[] = [];
  if (h.corruptAtLine !== null)
    notes.push(`line ${h.corruptAtLine} of the journal is not a whole record: shown up to the line before it, as a resume would read it`);
  else if (h.tornBytes > 0 && h.status !== 'running')
    notes.push(
      `the journal ends in a torn record (${h.tornBytes} bytes without their newline: a write the run's crash cut short); shown up to the last whole record`,
    );
  if (h.truncations > 0) notes.push(`the journal was rewritten ${h.truncations} time(s) while watched; read again from the start`);
  return notes.length ? `<p id="journal-notice" class="panel warn" role="status">${notes.map(esc).join('<br>')}</p>` : '';
}

/** The current step, stage, phase and weight; each gate's last value; approvals waiting; notifications sent. */
export function nowSection(r: IncidentReport, h: JournalHealth, nowMs: number): Section {
  const running = r.steps.filter((s) => s.outcome === 'running');
  const current = running[running.length - 1];
  const stage = [...r.stages].reverse().find((s) => current && s.step === current.id) ?? r.stages[r.stages.length - 1];
  const phase = r.phases[r.phases.length - 1]?.phase ?? 'unknown';
  const weight = r.samples[r.samples.length - 1]?.weight ?? stage?.weight;
  const since = current?.startedAt ? ` for ${formatDuration(Math.max(0, nowMs - Date.parse(current.startedAt)))}` : '';
  const items = [
    `<dt>status</dt><dd id="now-status">${esc(h.status)}</dd>`,
    `<dt>current step</dt><dd id="now-step">${current ? `${esc(stepLabel(current.id, current.name))}<span class="muted">${esc(since)}</span>` : '–'}</dd>`,
    `<dt>stage</dt><dd id="now-stage"${stage ? ` data-stage="${stage.stage}"` : ''}>${stage ? `${stage.stage}/${stage.stages} of ${esc(stage.step)} (${esc(stage.verdict)})` : '–'}</dd>`,
    `<dt>trading phase</dt><dd id="now-phase">${esc(phase)}</dd>`,
    `<dt>traffic weight</dt><dd id="now-weight">${weight === undefined ? '–' : `${weight}%`}</dd>`,
    `<dt>journal records</dt><dd id="now-records">${h.records}</dd>`,
  ];
  const gates = stage?.gates.length
    ? `<table id="now-gates"><tr><th>gate</th><th>last value</th><th>limit</th><th>verdict</th></tr>${stage.gates
        .map(
          (g) =>
            `<tr class="verdict-${g.verdict}" data-gate="${esc(g.gate)}"><td>${esc(g.gate)}</td><td class="num">${g.last === null ? '–' : shortNumber(g.last)}</td><td>${esc(g.threshold ?? '')}</td><td class="verdict-${g.verdict}">${g.verdict}</td></tr>`,
        )
        .join('')}</table>`
    : '';
  const waiting = running.filter((s) => s.uses === 'gate.approve');
  const approvals = waiting.length
    ? `<p id="now-approvals" class="panel warn" role="status">Waiting for approval: ${waiting.map((s) => esc(stepLabel(s.id, s.name))).join(', ')}</p>`
    : '<p id="now-approvals" class="muted">No approval waiting.</p>';
  const sent = r.notifications.filter((n) => n.ok);
  const last = sent[sent.length - 1];
  const notes = `<p id="now-notifications">${sent.length} notification${sent.length === 1 ? '' : 's'} sent${last ? `, last ${esc(last.step === 'comms' ? 'status update' : last.step)} (${esc(last.channel)}) at ${esc(last.sentAt)}` : ''}.</p>`;
  return { id: 'now', html: `<h2>Now</h2>${journalNotice(h)}<dl class="grid panel">${items.join('')}</dl>${gates}${approvals}${notes}` };
}

/** A run's page on the dashboard: the live panel, then the report's sections. */
export function runSections(r: IncidentReport, h: JournalHealth, nowMs: number): Section[] {
  const [summary, ...rest] = reportSections(r);
  return [summary as Section, nowSection(r, h, nowMs), ...rest];
}

/** One line of the run list. */
export interface RunListItem {
  run: string;
  playbook: string;
  status: string;
  startedAt: string;
  stepsDone: number;
  steps: number;
  /** From detection (or the run's start) to its end, or to now while it runs. */
  rtoMs: number;
  objective: string | null;
  tornBytes: number;
}

/** The runs, newest first: status, playbook, start, steps done, RTO so far against the objective. */
export function runsSection(items: readonly RunListItem[], stateDir: string): Section {
  if (!items.length) return { id: 'runs', html: `<p id="no-runs">No runs in <code>${esc(stateDir)}</code> yet; this page shows them as they start.</p>` };
  const rows = [...items]
    .reverse()
    .map((r) => {
      const objectiveMs = r.objective ? parseDuration(r.objective) : undefined;
      // Not recovered (failed, stopped, interrupted) is over budget whatever the clock says, as in the report.
      const over = (objectiveMs !== undefined && r.rtoMs > objectiveMs) || (r.status !== 'success' && r.status !== 'running');
      const cls =
        r.status === 'success' ? 'ok' : r.status === 'running' ? 'warn' : r.status.startsWith('interrupted') || r.status.startsWith('stopped') ? 'warn' : 'bad';
      return `<tr data-run="${esc(r.run)}"><td><a href="/runs/${encodeURIComponent(r.run)}">${esc(r.run)}</a></td><td>${esc(r.playbook)}</td><td class="${cls}">${esc(r.status)}${r.tornBytes ? ' <span class="warn">(torn tail)</span>' : ''}</td><td>${esc(r.startedAt)}</td><td class="num">${r.stepsDone}/${r.steps}</td><td class="num${over ? ' bad' : ''}">${esc(formatDuration(r.rtoMs))}${r.objective ? ` of ${esc(r.objective)}` : ''}</td></tr>`;
    })
    .join('\n');
  return {
    id: 'runs',
    html: `<table id="runs-table"><thead><tr><th>run</th><th>playbook</th><th>status</th><th>started</th><th>steps</th><th>RTO so far</th></tr></thead><tbody>
${rows}
</tbody></table>`,
  };
}
