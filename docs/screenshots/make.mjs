#!/usr/bin/env node
// Regenerates the screenshots in this folder (docs/dashboard.md, docs/report.md show them): a rehearsal
// of the bundled playbook watched on `recoverctl dashboard`, its incident report light and dark, and the
// report of a failed drill. Needs a build (npm run screenshots builds first) and Chromium.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const bin = join(root, 'bin/recoverctl.js');
const playbook = join(root, 'playbooks/um-excess-queue-depth.yaml');
const { Browser } = await import(pathToFileURL(join(root, 'dist/report/browser.js')).href);

const work = mkdtempSync(join(tmpdir(), 'recoverctl-shots-'));
const children = [];
const cli = (args, env = {}) => {
  const child = spawn(process.execPath, [bin, ...args], { cwd: work, env: { ...process.env, NO_COLOR: '1', CI: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.done = new Promise((r) => child.on('exit', (code) => r(code)));
  return child;
};
const firstLine = (child) =>
  new Promise((ok, fail) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('\n')) ok(out.split('\n')[0]);
    });
    child.on('exit', (code) => fail(new Error(`exited ${code} before printing a line`)));
  });
const save = (name, png) => {
  writeFileSync(join(here, name), png);
  console.log(`${name}: ${png.length} bytes`);
};

let browser;
try {
  browser = await Browser.launch();
  const state = join(work, 'state');
  const url = await firstLine(cli(['dashboard', '--state-dir', state, '--port', '0']));
  const rehearsal = cli(['rehearse', playbook, '--state-dir', state]);
  const list = await browser.newPage({ width: 1280, height: 420 });
  await list.goto(url);
  await list.waitFor('document.querySelector("#runs-table tr[data-run]") !== null', 60_000);
  const run = await list.evaluate('document.querySelector("#runs-table tr[data-run]").dataset.run');
  await list.waitFor('document.querySelector("#live-status").textContent === "live"');
  save('dashboard-runs.png', await list.screenshot());

  const page = await browser.newPage({ width: 1280, height: 1500 });
  await page.goto(`${url}runs/${run}`);
  // During the traffic shift, past its first stage, with gate values in.
  await page.waitFor('Number(document.querySelector("#now-stage")?.dataset.stage) >= 2 && document.querySelector("#now-gates tr[data-gate]") !== null', 60_000);
  save('dashboard-run.png', await page.screenshot());
  if ((await rehearsal.done) !== 0) throw new Error('the rehearsal failed');

  const report = await browser.newPage({ width: 1280, height: 2000 });
  await report.goto(pathToFileURL(join(state, 'runs', run, 'incident.html')).href);
  save('report.png', await report.screenshot());
  await report.emulateMedia({ colorScheme: 'dark' });
  save('report-dark.png', await report.screenshot());

  const failedState = join(work, 'failed');
  await cli(['rehearse', playbook, '--state-dir', failedState], { RECOVERCTL_CHAOS: 'smoke-failure' }).done;
  const failedRun = readdirSync(join(failedState, 'runs'))[0];
  const failed = await browser.newPage({ width: 1280, height: 1100 });
  await failed.goto(pathToFileURL(join(failedState, 'runs', failedRun, 'incident.html')).href);
  save('report-failed.png', await failed.screenshot());
} finally {
  await browser?.close();
  for (const c of children) if (c.exitCode === null) c.kill('SIGINT');
  await Promise.all(children.map((c) => c.done));
  rmSync(work, { recursive: true, force: true });
}
