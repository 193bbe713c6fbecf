import { resolveRunRef } from '../runner/journal.js';
import { join, resolve } from 'node:path';
import { InputError, UsageError } from '../errors.js';

/** `recoverctl report incident <run-id>`: the incident timeline of a journaled run, on stdout. */
export async function reportIncidentCommand(ref: string, opts: { format: string; stateDir: string }): Promise<void> {
  if (!['md', 'json', 'html'].includes(opts.format)) throw new UsageError(`--format: md, json or html, not '${opts.format}'`);
  const runId = resolveRunRef(resolve(opts.stateDir), ref);
  if (typeof runId !== 'string') throw new UsageError(runId.problem);
  const { JOURNAL_FILE, readJournal, runDir } = await import('../runner/journal.js');
  const { buildIncident, detectionOf, renderHtml, renderMarkdown } = await import('../report/incident.js');
  const file = join(runDir(resolve(opts.stateDir), runId), JOURNAL_FILE);
  let events;
  try {
    events = readJournal(file).events;
  } catch (e) {
    throw new InputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? ''})`);
  }
  const report = buildIncident(events, detectionOf(events, { at: null, reason: null }), new Date());
  process.stdout.write(opts.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : opts.format === 'md' ? renderMarkdown(report) : renderHtml(report));
}

/** `recoverctl report users --snapshot <file> --out <dir>`. */
export async function reportUsersCommand(opts: { snapshot: string; out: string }): Promise<void> {
  const { writeUserReports } = await import('../report/users.js');
  const { SnapshotError } = await import('../snapshot/format.js');
  try {
    const r = await writeUserReports(resolve(opts.snapshot), resolve(opts.out));
    process.stdout.write(`${r.accounts} accounts, ${r.files} files in ${resolve(opts.out)} (snapshot seq ${r.seq})\n`);
  } catch (e) {
    if (e instanceof SnapshotError) throw new InputError(e.message);
    throw e;
  }
}
