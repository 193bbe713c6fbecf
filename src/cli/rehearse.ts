import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { InputError, Interrupted, RecoverctlError, RollbackFailed, StepFailed, UsageError } from '../errors.js';
import { loadPlaybook } from '../playbook/load.js';
import { buildRedactor, resolveVars } from '../runner/scope.js';
import type { StepCheck } from '../steps/types.js';
import { rehearsalApprover } from '../ui/approver.js';
import type { RunRecorder } from '../ui/recorder.js';
import { executeRun } from './run.js';

export const MIN_TIME_SCALE = 0.005;

export interface RehearseFlags {
  seed?: string;
  accounts?: string;
  timeScale?: string;
  noAutoApprove?: boolean;
  autoApprove?: boolean;
  keep?: boolean;
  json?: boolean;
  junit?: string;
  stateDir: string;
}

function log(json: boolean, text: string): void {
  process.stderr.write(`${new Date().toISOString()} rehearse: ${text}\n`);
  void json;
}

/**
 * A full rehearsal: a scratch production engine with seeded accounts, positions and open orders on
 * margin 1.4.2, traffic, a pre-outage snapshot, the margin burst until the engine halts itself with
 * EXCESS_QUEUE_DEPTH; then the playbook for real against it, and checks of the outcome.
 */
export async function rehearseCommand(file: string, flags: RehearseFlags, collect?: (recorder: RunRecorder) => void): Promise<void> {
  const pb = await loadPlaybook(file);
  const seed = flags.seed === undefined ? 2026 : Number(flags.seed);
  const accounts = flags.accounts === undefined ? 40 : Number(flags.accounts);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected a whole number, got '${flags.seed ?? ''}'`);
  if (!Number.isInteger(accounts) || accounts < 2 || accounts > 5_000) throw new UsageError(`--accounts: expected 2..5000, got '${flags.accounts ?? ''}'`);
  const timeScale = flags.timeScale === undefined ? (pb.spec.rehearsal?.timeScale ?? 1) : Number(flags.timeScale);
  // Below this, bakes are too short for the gates to see what traffic does (the load rate is not scaled).
  if (!Number.isFinite(timeScale) || timeScale < MIN_TIME_SCALE || timeScale > 1) {
    throw new UsageError(`--time-scale: expected a number in [${MIN_TIME_SCALE}, 1], got '${flags.timeScale ?? timeScale}'`);
  }
  if (!pb.spec.engine) throw new UsageError(`${pb.file} has no engine: section; there is nothing to rehearse against (use run)`);

  const { startEngine, stopEngine } = await import('../engine-client/supervisor.js');
  const { LoadGenerator } = await import('../engine-client/load.js');
  const scratch = mkdtempSync(join(tmpdir(), 'recoverctl-rehearsal-'));
  const dataDir = join(scratch, 'engine');
  // What the playbook writes (reports, notifications) outlives the scratch folder: it goes by the journal.
  const outDir = join(resolve(flags.stateDir), 'rehearsals', basename(scratch));
  let failed: Error | undefined;
  let incidentHtml: string | undefined;
  // Whatever ends this process (a second Ctrl-C, a closed pipe), the scratch engine must not outlive it.
  let enginePid: number | undefined;
  const killScratch = (): void => {
    if (enginePid === undefined) return;
    try {
      process.kill(enginePid, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  const onPipeError = (e: NodeJS.ErrnoException): void => {
    if (e.code !== 'EPIPE') throw e;
  };
  process.on('exit', killScratch);
  process.stderr.on('error', onPipeError);
  const setupAbort = new AbortController();
  const onSetupSignal = (): void => setupAbort.abort();
  process.once('SIGINT', onSetupSignal);
  process.once('SIGTERM', onSetupSignal);
  const checkSetup = (): void => {
    if (setupAbort.signal.aborted) throw new Interrupted('rehearsal interrupted while setting up; the scratch engine is stopped');
  };
  try {
    log(flags.json ?? false, `scratch engine in ${dataDir} (seed ${seed}, ${accounts} accounts, time scale ${timeScale})`);
    const { client, info } = await startEngine(dataDir, { seed, feedInterval: '100ms', fundingInterval: '1s', exitWithMe: true });
    enginePid = info.pid;
    checkSetup();
    const traders = Array.from({ length: accounts }, (_, i) => `trader-${String(i + 1).padStart(4, '0')}`);
    for (const [i, a] of traders.entries()) {
      await client.deposit(a, 'USDT', '1000000');
      if (i % 3 === 0) await client.deposit(a, 'USDC', '250000');
    }
    await client.setPhase('open');
    // Positions: neighbours trade with each other; then resting orders on both sides of the book.
    const health = await client.health();
    const btc = Number(health.marks.BTCUSDT);
    const eth = Number(health.marks.ETHUSDT);
    for (let i = 0; i + 1 < traders.length; i += 2) {
      const qty = (0.01 * (1 + (i % 5))).toFixed(3);
      await client.placeOrder({ account: traders[i] as string, symbol: 'BTCUSDT', side: 'sell', type: 'limit', price: btc.toFixed(1), qty });
      await client.placeOrder({ account: traders[i + 1] as string, symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: (btc + 5).toFixed(1), qty });
    }
    for (const [i, a] of traders.entries()) {
      await client.placeOrder({ account: a, symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: (eth - 5 - i * 0.05).toFixed(2), qty: '0.1', postOnly: true });
      await client.placeOrder({ account: a, symbol: 'BTCUSDC', side: 'sell', type: 'limit', price: (btc + 50 + i).toFixed(1), qty: '0.01', postOnly: true });
    }
    checkSetup();
    const snap = await client.snapshot();
    log(flags.json ?? false, `pre-outage snapshot ${snap.path} (seq ${snap.seq}, ${snap.records} records)`);
    // Trading goes on after the snapshot until the incident: the WAL must explain all of it.
    const { readFileSync } = await import('node:fs');
    const gen = new LoadGenerator({ url: info.url, token: readFileSync(join(dataDir, 'control.token'), 'utf8').trim(), rate: 200, accounts: traders, seed });
    gen.start();
    await new Promise((r) => setTimeout(r, 500));
    await gen.stop();
    await client.fault('margin-burst');
    const deadline = Date.now() + 10_000;
    let halted = await client.health();
    while (!(halted.phase === 'halted' && halted.reason?.startsWith('EXCESS_QUEUE_DEPTH')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      halted = await client.health();
    }
    if (halted.phase !== 'halted' || !halted.reason?.startsWith('EXCESS_QUEUE_DEPTH')) {
      throw new InputError(`the injected margin burst did not halt the scratch engine (phase ${halted.phase}, reason ${halted.reason ?? 'none'})`);
    }
    log(flags.json ?? false, `incident reproduced: ${halted.reason}`);
    // Paging someone takes time: funding intervals end while trading is halted, for the playbook to settle.
    await new Promise((r) => setTimeout(r, 2_500));
    checkSetup();
    process.off('SIGINT', onSetupSignal);
    process.off('SIGTERM', onSetupSignal);

    const declared = pb.spec.vars ?? {};
    const overrides: Record<string, string> = {};
    if ('preOutageSnapshot' in declared) overrides.preOutageSnapshot = snap.path;
    if ('outDir' in declared) overrides.outDir = outDir;
    const vars = resolveVars(pb, overrides, process.env);
    const redactor = buildRedactor(pb, vars);
    const approver = flags.noAutoApprove || flags.autoApprove === false ? undefined : rehearsalApprover;
    const engine = { dataDir };
    const { result, runDir, recorder } = await executeRun({
      pb,
      stateDir: resolve(flags.stateDir),
      vars,
      varOverrides: overrides,
      redactor,
      timeScale,
      engine,
      yes: false,
      json: flags.json ?? false,
      junit: collect ? undefined : flags.junit,
      ...(approver ? { approver } : {}),
      afterRun: async (runResult, recorder, dir) => {
        // Take nothing for granted: look at the engine and the files the run says it made, checking what
        // the playbook's own steps promise.
        const checks: StepCheck[] = [];
        const h = await client.health();
        const { readJournal } = await import('../runner/journal.js');
        const events = readJournal(join(dir, 'journal.ndjson')).events;
        const okOutputs = (uses: string) => events.filter((e) => e.event === 'ok' && e.uses === uses && e.phase === 'main').map((e) => (e as { outputs: Record<string, unknown> }).outputs);
        const has = (uses: string) => pb.steps.some((st) => st.uses === uses);
        const { runIntegrity } = await import('../integrity/run.js');
        const integrity = await runIntegrity({ snapshot: snap.path, engine: info.url, tokenFile: join(dataDir, 'control.token'), wal: join(dataDir, 'wal') });
        checks.push({ name: 'nothing lost: integrity clean against the pre-outage snapshot and the WAL', ok: integrity.clean, ...(integrity.clean ? {} : { message: JSON.stringify(integrity.counts) }) });
        checks.push({ name: 'ledger and funding balance to the unit', ok: Object.values(h.ledger).every((v) => v === '0'), message: JSON.stringify(h.ledger) });
        if (runResult.outcome === 'success') {
          if (has('engine.resume')) checks.push({ name: 'engine open after the recovery', ok: h.phase === 'open', message: `${h.phase}${h.reason ? `: ${h.reason}` : ''}` });
          const deployed = okOutputs('hotfix.deploy').at(-1);
          if (deployed) checks.push({ name: 'the deployed hotfix is active', ok: h.modules.margin?.active === deployed.version, message: `margin ${h.modules.margin?.active ?? '?'}, deployed ${String(deployed.version)}` });
        } else {
          checks.push({ name: 'engine halted after the rollback', ok: h.phase === 'halted', message: `${h.phase}, margin ${h.modules.margin?.active ?? '?'}` });
        }
        for (const r of okOutputs('report.incident')) {
          const files = ['md', 'json', 'html'].map((f) => r[f]).filter((f): f is string => typeof f === 'string');
          checks.push({ name: 'incident report written', ok: files.length > 0 && files.every((f) => existsSync(f)), message: files.join(', ') });
          if (typeof r.html === 'string') incidentHtml = r.html;
        }
        recorder.steps.push({ id: 'rehearsal-outcome', phase: 'main', uses: 'rehearse', outcome: checks.every((c) => c.ok) ? 'success' : 'failure', durationMs: 0, attempts: 1, error: checks.filter((c) => !c.ok).map((c) => c.name).join('; ') || undefined, detail: undefined, checks });
        for (const c of checks) process.stderr.write(`${new Date().toISOString()} rehearse: ${c.ok ? '✓' : '✗'} ${c.name}${c.message ? ` (${c.message})` : ''}\n`);
        if (checks.some((c) => !c.ok) && runResult.outcome === 'success') failed = new StepFailed(`rehearsal outcome checks failed: ${checks.filter((c) => !c.ok).map((c) => c.name).join('; ')}`);
      },
    });
    collect?.(recorder);
    const report = incidentHtml ?? join(runDir, 'incident.html');
    if (existsSync(report)) process.stderr.write(`incident report: ${report}\n`);
    if (failed) throw failed;
    switch (result.outcome) {
      case 'success':
        return;
      case 'failed':
        throw new StepFailed(`rehearsal of ${pb.spec.metadata.name}: step ${result.failedStep ?? '?'} failed: ${result.error ?? ''}`);
      case 'rollback-failed':
        throw new RollbackFailed(`rehearsal of ${pb.spec.metadata.name}: rollback failed at ${result.rollbackFailedSteps.join(', ')}`);
      case 'interrupted':
        throw new Interrupted('rehearsal interrupted');
    }
  } finally {
    process.off('SIGINT', onSetupSignal);
    process.off('SIGTERM', onSetupSignal);
    await stopEngine(dataDir).catch(() => undefined);
    process.off('exit', killScratch);
    process.stderr.off('error', onPipeError);
    if (flags.keep) process.stderr.write(`scratch kept: ${scratch}\n`);
    else rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * `rehearse --all DIR`: every playbook in the folder that has an engine, one after the other; a table of
 * outcomes against what each expects (`rehearsal.expectOutcome`), and one JUnit file for all.
 */
export async function rehearseAll(dir: string, flags: RehearseFlags): Promise<void> {
  const { readdirSync } = await import('node:fs');
  const { junitXml } = await import('../ui/junit.js');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const { dirname } = await import('node:path');
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(dir, f));
  } catch (e) {
    throw new InputError(`--all ${dir}: cannot read (${(e as NodeJS.ErrnoException).code ?? ''})`);
  }
  const recorders: RunRecorder[] = [];
  const rows: { playbook: string; expected: string; outcome: string; ok: boolean; seconds: number }[] = [];
  for (const file of files) {
    const pb = await loadPlaybook(file);
    if (!pb.spec.engine) {
      rows.push({ playbook: file, expected: '-', outcome: 'skipped (no engine)', ok: true, seconds: 0 });
      continue;
    }
    const expected = pb.spec.rehearsal?.expectOutcome ?? 'success';
    const started = Date.now();
    let outcome = 'success';
    try {
      await rehearseCommand(file, { ...flags, timeScale: undefined }, (r) => recorders.push(r));
    } catch (e) {
      if (!(e instanceof RecoverctlError)) throw e;
      outcome = e.exitCode === 1 ? 'failed' : e.exitCode === 3 ? 'rollback-failed' : e.exitCode === 130 ? 'interrupted' : `error: ${e.message.split('\n')[0] ?? ''}`;
      if (e.exitCode === 130) throw e;
    }
    rows.push({ playbook: file, expected, outcome, ok: outcome === expected, seconds: (Date.now() - started) / 1000 });
  }
  if (flags.junit) {
    mkdirSync(dirname(resolve(flags.junit)), { recursive: true });
    writeFileSync(flags.junit, junitXml(recorders));
  }
  const w = Math.max(8, ...rows.map((r) => r.playbook.length));
  const lines = [`${'PLAYBOOK'.padEnd(w)}  EXPECTED  OUTCOME          TIME   RESULT`];
  for (const r of rows) lines.push(`${r.playbook.padEnd(w)}  ${r.expected.padEnd(8)}  ${r.outcome.padEnd(15)}  ${`${r.seconds.toFixed(1)}s`.padStart(6)}  ${r.ok ? 'ok' : 'UNEXPECTED'}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  const bad = rows.filter((r) => !r.ok);
  if (bad.length) throw new StepFailed(`${bad.length} rehearsal(s) did not end as expected: ${bad.map((r) => r.playbook).join(', ')}`);
}
