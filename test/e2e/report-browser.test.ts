import { execa } from 'execa';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, tempDir } from '../support/cli.js';

const CHROMIUM = '/usr/bin/chromium';

/** Headless Chromium as the probe of this workplace runs it: no sandbox (root), no network chatter. */
function chromium(args: string[], profile: string) {
  return execa(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      ...args,
    ],
    { reject: false, timeout: 60_000 },
  );
}

// .ci/run installs Debian's chromium when it is missing; on a machine without it this is skipped, said so.
const SKIP = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)`;
if (SKIP) console.warn(`skipped: the HTML incident report in a real browser: ${SKIP}`);
describe.skipIf(SKIP !== undefined)(`the HTML incident report in a real browser${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  it('renders every step, the charts and no console errors', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const r = await runCli(['rehearse', join(ROOT, 'playbooks/um-excess-queue-depth.yaml'), '--state-dir', state], { timeoutMs: 120_000 });
    expect(r.exitCode, r.stderr.slice(-1000)).toBe(0);
    const html = /incident report: (\S+)/.exec(r.stderr)?.[1] as string;
    const run = readdirSync(join(state, 'runs'))[0] as string;
    const steps = [
      ...new Set(
        readFileSync(join(state, 'runs', run, 'journal.ndjson'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { event: string; step: string | null })
          .filter((e) => e.event === 'start')
          .map((e) => e.step as string),
      ),
    ];

    const png = join(dir, 'report.png');
    const shot = await chromium(
      [`--screenshot=${png}`, '--window-size=1200,1800', '--enable-logging=stderr', '--v=0', `file://${html}`],
      join(dir, 'profile-a'),
    );
    expect(shot.exitCode, shot.stderr.slice(-800)).toBe(0);
    expect(statSync(png).size).toBeGreaterThan(20_000);
    // Console messages show as CONSOLE lines in Chromium's log; the page must log no error.
    expect(shot.stderr).not.toMatch(/CONSOLE.*(error|Uncaught)|Uncaught/i);

    const dom = await chromium(['--dump-dom', `file://${html}`], join(dir, 'profile-b'));
    expect(dom.exitCode).toBe(0);
    for (const step of steps) expect(dom.stdout, step).toContain(`data-step="${step}"`);
    expect(dom.stdout).toMatch(/<path id="queue-depth" d="M[\d.]+,[\d.]+ L/);
    expect(dom.stdout).toMatch(/<path id="admission-weight" d="M[\d.]+,[\d.]+ L/);
    expect(dom.stdout).toMatch(/<p id="rto">RTO [^<]+ against 15m: <span class="met">met<\/span>/);
    expect(dom.stdout).toContain('EXCESS_QUEUE_DEPTH');
  });
});
