import { resolveRunRef } from '../runner/journal.js';
import { join, resolve } from 'node:path';
import { InputError, UsageError } from '../errors.js';

/**
 * `recoverctl report incident <run-id>`: the incident timeline of a journaled run, on stdout; with
 * `--pdf`, the HTML page printed to a PDF file through headless Chromium.
 */
export async function reportIncidentCommand(ref: string, opts: { format: string; stateDir: string; pdf?: string | boolean; chromium?: string }): Promise<void> {
  if (!['md', 'json', 'html'].includes(opts.format)) throw new UsageError(`--format: md, json or html, not '${opts.format}'`);
  const runId = resolveRunRef(resolve(opts.stateDir), ref);
  if (typeof runId !== 'string') throw new UsageError(runId.problem);
  const { JOURNAL_FILE, readJournal, runDir } = await import('../runner/journal.js');
  const { incidentOf, renderIncident } = await import('../report/write.js');
  const dir = runDir(resolve(opts.stateDir), runId);
  const file = join(dir, JOURNAL_FILE);
  let events;
  try {
    events = readJournal(file).events;
  } catch (e) {
    throw new InputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? ''})`);
  }
  const report = incidentOf(events, { at: null, reason: null }, new Date());
  if (opts.pdf === undefined || opts.pdf === false) {
    process.stdout.write(renderIncident(report, opts.format as 'md' | 'json' | 'html', process.cwd()));
    return;
  }
  const pdf = resolve(typeof opts.pdf === 'string' ? opts.pdf : join(dir, 'incident.pdf'));
  await printReport(renderIncident(report, 'html', dir), dir, pdf, opts.chromium);
  process.stdout.write(`${pdf}\n`);
}

/** The HTML written beside the run (so its relative links resolve), printed to `pdf`; a missing or broken Chromium is exit 2. */
async function printReport(html: string, dir: string, pdf: string, chromium: string | undefined): Promise<void> {
  const { writeFile, rm } = await import('node:fs/promises');
  const { BrowserError, findChromium, printToPdf } = await import('../report/browser.js');
  const executable = chromium ?? findChromium() ?? undefined;
  if (executable === undefined)
    throw new InputError('--pdf: no Chromium found: install it (Debian: apt-get install chromium) or point --chromium or RECOVERCTL_CHROMIUM at it');
  const page = join(dir, `.incident-print-${process.pid}.html`);
  await writeFile(page, html);
  try {
    await printToPdf(page, pdf, { executable });
  } catch (e) {
    if (e instanceof BrowserError) throw new InputError(`--pdf: ${e.message}`);
    throw new InputError(`--pdf: cannot write ${pdf} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    await rm(page, { force: true });
  }
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
