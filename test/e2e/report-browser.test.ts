/**
 * The dashboard and the incident report in a real headless Chromium (Debian's, driven over the DevTools
 * protocol by src/report/browser.ts): what a person sees, checked in the page itself.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, findChromium, pdfTitle, type Page } from '../../src/report/browser.js';
import { firstStdoutLine, ROOT, runCli, spawnCli } from '../support/cli.js';

const PLAYBOOK = join(ROOT, 'playbooks/um-excess-queue-depth.yaml');

interface Journaled {
  event: string;
  step: string | null;
  stage?: number;
}
const journalOf = (file: string): Journaled[] =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Journaled);

/** Every pair of boxes that overlap by more than half a pixel each way. */
const OVERLAPS = (selector: string): string => `(() => {
  const boxes = [...document.querySelectorAll(${JSON.stringify(selector)})].map((e) => ({ text: e.textContent, r: e.getBoundingClientRect() }));
  const out = [];
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i].r, b = boxes[j].r;
      if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5) out.push(boxes[i].text + ' / ' + boxes[j].text);
    }
  return { count: boxes.length, overlaps: out };
})()`;

/** Every visible element with its own text whose colour is under 4.5:1 against the background behind it (WCAG AA). */
const LOW_CONTRAST = `(() => {
  const parse = (c) => { const m = /rgba?\\(([^)]+)\\)/.exec(c); if (!m) return null; const [r, g, b, a = 1] = m[1].split(',').map(Number); return { r, g, b, a }; };
  const lum = ({ r, g, b }) => { const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const behind = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0) return c; } return { r: 255, g: 255, b: 255, a: 1 }; };
  const low = [];
  let checked = 0;
  for (const el of document.querySelectorAll('main *')) {
    if (el.closest('svg') || el.getClientRects().length === 0) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const fg = parse(getComputedStyle(el).color);
    if (!fg) continue;
    checked++;
    const [hi, lo] = [lum(fg), lum(behind(el))].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 4.5) low.push(el.tagName + '.' + el.className + ' ' + ratio.toFixed(2) + ': ' + el.textContent.trim().slice(0, 40));
  }
  return { checked, low };
})()`;

const CHROMIUM = findChromium();
// .ci/run installs Debian's chromium when it is missing; on a machine without it this is skipped, said so.
const SKIP = CHROMIUM ? undefined : 'no Chromium installed (apt-get install chromium; .ci/run installs it)';
if (SKIP) console.warn(`skipped: the dashboard and the incident report in a real browser: ${SKIP}`);

describe.skipIf(SKIP !== undefined)(`the dashboard and the incident report in headless Chromium${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let browser: Browser;
  let work: string;
  /** The state dir the live rehearsal ran in, and its run. */
  let state: string;
  let runId: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'recoverctl-browser-'));
    state = join(work, 'state');
    browser = await Browser.launch();
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const open = async (url: string, width = 1200): Promise<Page> => {
    const page = await browser.newPage({ width, height: 900 });
    await page.goto(url);
    return page;
  };

  /** `recoverctl dashboard` as a user starts it: its URL is the first line on stdout. */
  const dashboard = (): Promise<string> => firstStdoutLine(spawnCli(['dashboard', '--state-dir', state, '--port', '0'], { cwd: work }));

  it('shows a live rehearsal: the run in the list, then the stage and gate values while the traffic shift is under way, updated without a reload', async () => {
    const url = await dashboard();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const list = await open(url);
    expect(await list.evaluate('document.querySelector("#no-runs") !== null')).toBe(true);
    const rehearsal = spawnCli(['rehearse', PLAYBOOK, '--state-dir', state], { cwd: work });
    // The run appears in the list as it starts, pushed by the server (the page is not reloaded).
    await list.evaluate('window.sameList = true');
    await list.waitFor('document.querySelector("#runs-table tr[data-run]") !== null', 60_000);
    expect(await list.evaluate('window.sameList')).toBe(true);
    runId = await list.evaluate<string>('document.querySelector("#runs-table tr[data-run]").dataset.run');

    const run = await open(`${url}runs/${runId}`);
    await run.evaluate('window.samePage = true');
    await run.waitFor(
      'document.querySelector("#now-step")?.textContent.startsWith("shift") && document.querySelector("#now-gates tr[data-gate]") !== null',
      60_000,
    );
    const shot = await run.screenshot();
    writeFileSync(join(work, 'dashboard-shift.png'), shot);
    expect(shot.subarray(0, 4).toString('hex')).toBe('89504e47');
    expect(shot.length).toBeGreaterThan(30_000);
    const now = await run.evaluate<{ stage: string; weight: string; gates: string[]; status: string }>(`({
      stage: document.querySelector('#now-stage').textContent,
      weight: document.querySelector('#now-weight').textContent,
      gates: [...document.querySelectorAll('#now-gates tr[data-gate]')].map((r) => r.textContent),
      status: document.querySelector('#now-status').textContent,
    })`);
    expect(now.status).toBe('running');
    expect(now.stage).toMatch(/^\d\/4 of shift \((running|pass)\)$/);
    expect(now.weight).toMatch(/^\d+%$/);
    expect(now.gates.find((g) => g.startsWith('maxQueueDepth'))).toMatch(/^maxQueueDepth\d+<= 500(pass|fail)$/);
    const records = Number(await run.evaluate<string>('document.body.dataset.records'));
    await run.waitFor(`Number(document.body.dataset.records) > ${records}`, 20_000);

    const done = await rehearsal;
    expect(done.exitCode, String(done.stderr).slice(-1500)).toBe(0);
    await run.waitFor('document.querySelector("#now-status")?.textContent === "success"', 20_000);
    await list.waitFor(`document.querySelector('#runs-table tr[data-run="${runId}"] td:nth-child(3)')?.textContent === 'success'`, 20_000);
    // Everything above arrived over server-sent events: neither page was reloaded.
    expect(await run.evaluate('window.samePage')).toBe(true);
    expect(await list.evaluate('window.sameList')).toBe(true);
    expect(await run.evaluate('document.querySelectorAll("#stages tbody tr").length')).toBe(4);
    expect([...run.consoleErrors, ...list.consoleErrors].join('\n')).toBe('');
  }, 150_000);

  it('lists every run, and says so when a journal’s tail is torn', async () => {
    // A copy of the run, its last record cut in the middle as a crash would leave it.
    const torn = `${runId.slice(0, -6)}torn01`;
    mkdirSync(join(state, 'runs', torn));
    const text = readFileSync(join(state, 'runs', runId, 'journal.ndjson'), 'utf8');
    const cut = text.lastIndexOf('\n', text.length - 2) + 40;
    writeFileSync(join(state, 'runs', torn, 'journal.ndjson'), text.slice(0, cut));
    const url = await dashboard();
    const list = await open(url);
    const rows = await list.evaluate<string[]>(
      '[...document.querySelectorAll("#runs-table tr[data-run]")].map((r) => r.dataset.run + " " + r.children[2].textContent)',
    );
    expect(rows.sort()).toEqual([`${runId} success`, `${torn} stopped (resumable) (torn tail)`].sort());
    const page = await open(`${url}runs/${torn}`);
    expect(await page.evaluate('document.querySelector("#journal-notice").textContent')).toMatch(
      /^the journal ends in a torn record \(\d+ bytes without their newline/,
    );
    expect(await page.evaluate('document.querySelector("#now-status").textContent')).toBe('stopped (resumable)');
    expect(page.consoleErrors).toEqual([]);
  }, 60_000);

  it('the report of the bundled rehearsal: labelled axes, marker labels that do not overlap, one row per stage, its own step done, AA contrast light and dark', async () => {
    const html = join(state, 'runs', runId, 'incident.html');
    const journal = journalOf(join(state, 'runs', runId, 'journal.ndjson'));
    const page = await open(pathToFileURL(html).href);
    const markers = await page.evaluate<{ count: number; overlaps: string[] }>(OVERLAPS('#timeline .marker-label, #timeline .step-label'));
    expect(markers.count).toBeGreaterThan(8);
    expect(markers.overlaps).toEqual([]);
    expect(await page.evaluate<string[]>('[...document.querySelectorAll("#timeline .marker-label")].map((e) => e.textContent)')).toEqual(
      expect.arrayContaining([
        'detected',
        expect.stringMatching(/^mitigated \+/),
        expect.stringMatching(/^resumed \+/),
        expect.stringMatching(/^closed \+/),
        'open',
      ]),
    );
    for (const chart of ['#timeline', '#traffic']) {
      expect(await page.evaluate(`document.querySelector("${chart} .x-axis .axis-label")?.textContent`)).toBe('time (UTC)');
      expect(await page.evaluate(`document.querySelectorAll("${chart} .x-axis .tick-label").length`)).toBeGreaterThanOrEqual(4);
      expect((await page.evaluate<{ overlaps: string[] }>(OVERLAPS(`${chart} .tick-label`))).overlaps).toEqual([]);
    }
    expect(await page.evaluate('document.querySelector("#traffic .legend").textContent')).toContain('queue depth (left axis)');
    const stages = new Set(journal.filter((e) => e.event === 'measurement').map((e) => `${e.step}:${e.stage}`));
    expect(await page.evaluate('document.querySelectorAll("#stages tbody tr").length')).toBe(stages.size);
    expect(await page.evaluate('document.querySelector("#raw-samples").open')).toBe(false);
    // The report step wrote this page: it shows itself done.
    expect(await page.evaluate('document.querySelector(\'#timeline rect.bar[data-step="incident-report"]\').classList.contains("success")')).toBe(true);
    for (const step of new Set(journal.filter((e) => e.event === 'start').map((e) => e.step)))
      expect(await page.evaluate(`document.querySelector('#timeline [data-step="${step}"]') !== null`), step ?? '').toBe(true);
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      const contrast = await page.evaluate<{ checked: number; low: string[] }>(LOW_CONTRAST);
      expect(contrast.checked, scheme).toBeGreaterThan(100);
      expect(contrast.low, scheme).toEqual([]);
    }
    expect(await page.evaluate('getComputedStyle(document.body).backgroundColor')).toBe('rgb(13, 17, 23)');
    writeFileSync(join(work, 'report-dark.png'), await page.screenshot());
    expect(page.consoleErrors).toEqual([]);
  }, 60_000);

  it('the report of a failed drill opens with the failure and the rollback, and prints to PDF', async () => {
    const failedState = join(work, 'failed');
    const r = await runCli(['rehearse', PLAYBOOK, '--state-dir', failedState], { cwd: work, env: { RECOVERCTL_CHAOS: 'smoke-failure' }, timeoutMs: 90_000 });
    expect(r.exitCode, r.stderr.slice(-800)).toBe(1);
    const run = readdirSync(join(failedState, 'runs'))[0] as string;
    const html = join(failedState, 'runs', run, 'incident.html');
    expect(existsSync(html)).toBe(true);
    const page = await open(pathToFileURL(html).href);
    const first = await page.evaluate<{ after: string | undefined; text: string; y: number }>(`({
      after: [...document.querySelectorAll('main > section:not([hidden])')].map((s) => s.id)[1],
      text: document.querySelector('#failure').textContent,
      y: document.querySelector('#failure').getBoundingClientRect().top,
    })`);
    expect(first.after).toBe('failure');
    expect(first.y).toBeLessThan(250);
    expect(first.text).toMatch(/^Recovery failedStep smoke — Prove the hotfix on a testnet failed at \S+: smoke\.testnet could not test margin 1\.4\.3/);
    expect(first.text).toMatch(
      /Rollback: succeeded; its steps: rollback-engine success, rollback-halt success, rollback-hotfix success, rollback-notify success$/,
    );
    expect(page.consoleErrors).toEqual([]);

    const pdf = join(work, 'failed.pdf');
    const printed = await runCli(['report', 'incident', run, '--state-dir', failedState, '--pdf', pdf], { cwd: work });
    expect(printed.exitCode, printed.stderr).toBe(0);
    expect(printed.stdout, printed.stderr).toBe(pdf);
    const bytes = readFileSync(pdf);
    expect(bytes.subarray(0, 5).toString()).toBe('%PDF-');
    expect(pdfTitle(bytes)).toBe('Incident report: INC-2025-08-29-futures');
    // The page it printed from is not left beside the run.
    expect(readdirSync(join(failedState, 'runs', run)).filter((f) => f.startsWith('.incident-print'))).toEqual([]);

    copyFileSync(pdf, join(work, 'kept.pdf'));
    const missing = await runCli(['report', 'incident', run, '--state-dir', failedState, '--pdf', pdf, '--chromium', '/nonexistent/chromium'], { cwd: work });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^--pdf: chromium \(\/nonexistent\/chromium\) could not be started/)]);
  }, 120_000);
});
