/**
 * The incident report as files: built from a run's journal, with the per-account files `report.users`
 * wrote listed for the links, written in each format asked for. What the report step, `report incident`
 * and `rehearse` share.
 */
import { readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { RunEvent } from '../runner/events.js';
import { renderHtml } from './html.js';
import { buildIncident, detectionOf, renderMarkdown, type BuildOptions, type IncidentReport } from './incident.js';

/** How many per-account files the report links by name; the rest are counted. */
export const LINKED_USER_FILES = 200;

export type IncidentFormat = 'md' | 'json' | 'html';

/** The report of a run's events, with the per-account files listed (read from their folder, if it is still there). */
export function incidentOf(events: RunEvent[], fallback: { at: string | null; reason: string | null }, now: Date, opts: BuildOptions = {}): IncidentReport {
  const report = buildIncident(events, detectionOf(events, fallback), now, opts);
  const u = report.users;
  if (u?.dir) {
    try {
      const names = readdirSync(u.dir)
        .filter((n) => n.endsWith('.json') || n.endsWith('.csv'))
        .sort();
      u.links = names.slice(0, LINKED_USER_FILES);
      u.more = Math.max(0, names.length - u.links.length);
    } catch {
      // The folder is gone (a rehearsal's scratch): the report still says how many and where.
    }
  }
  return report;
}

/** A link from a report in `out` to a per-account file: relative, so the folder can be copied whole. */
function userFileHref(report: IncidentReport, out: string): (name: string) => string {
  const dir = report.users?.dir ?? '';
  return (name) => relative(out, join(dir, name)).split(sep).map(encodeURIComponent).join('/');
}

/** One format's text. */
export function renderIncident(report: IncidentReport, format: IncidentFormat, out: string): string {
  if (format === 'json') return `${JSON.stringify(report, null, 2)}\n`;
  if (format === 'md') return renderMarkdown(report);
  return renderHtml(report, { userFileHref: userFileHref(report, out) });
}

/** Write `incident.<format>` files into `out`; returns each file's path. */
export async function writeIncidentFiles(
  report: IncidentReport,
  out: string,
  formats: readonly IncidentFormat[],
): Promise<Partial<Record<IncidentFormat, string>>> {
  await mkdir(out, { recursive: true });
  const files: Partial<Record<IncidentFormat, string>> = {};
  for (const f of formats) {
    const file = join(out, `incident.${f}`);
    await writeFile(file, renderIncident(report, f, out));
    files[f] = file;
  }
  return files;
}
