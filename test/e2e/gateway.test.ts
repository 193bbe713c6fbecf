/**
 * traffic.shift through the real infrastructure: Debian's HAProxy in front of a real engine (canary
 * `engine`, remainder `sorry`), Debian's Prometheus scraping it, and `bin/recoverctl.js run` driving both.
 * The same infrastructure `rehearse` starts for a gateway playbook (src/cli/rehearsal-infra.ts).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { nodeSocket } from '../../src/cli/effects.js';
import { findBinary, startRehearsalInfra, type RehearsalInfra } from '../../src/cli/rehearsal-infra.js';
import { startEngine, stopEngine } from '../../src/engine-client/supervisor.js';
import { parseServersState } from '../../src/steps/providers/haproxy.js';
import { dataDirLayout } from '../../src/util/data-dir.js';
import { hasStackTrace, runCli, spawnCli, waitFor } from '../support/cli.js';

const missing = ['haproxy', 'prometheus'].filter((b) => !findBinary(b));
if (missing.length) console.log(`gateway tests skipped: ${missing.join(', ')} not installed (apt-get install ${missing.join(' ')})`);

describe.skipIf(missing.length > 0)(
  `traffic.shift through HAProxy, gated by Prometheus${missing.length ? ` (skipped: ${missing.join(', ')} missing)` : ''}`,
  () => {
    let root: string;
    let engineDir: string;
    let infra: RehearsalInfra;

    const ask = (line: string): Promise<string> =>
      nodeSocket(infra.vars.gatewaySocket as string, line, { signal: new AbortController().signal, timeoutMs: 5_000 });
    /** canary/remainder as HAProxy holds them now. */
    const weights = async (): Promise<[number, number]> => {
      const servers = parseServersState(await ask('show servers state be_orders'));
      const w = (name: string): number => servers.find((s) => s.server === name)?.weight ?? -1;
      return [w('engine'), w('sorry')];
    };

    beforeAll(async () => {
      // Not tempDir(): that is emptied after each test, and the engine and HAProxy live for the whole file.
      root = mkdtempSync(join(tmpdir(), 'recoverctl-gateway-'));
      engineDir = join(root, 'engine');
      const { client, info } = await startEngine(engineDir, { feedInterval: '100ms', exitWithMe: true });
      await client.setPhase('open');
      infra = await startRehearsalInfra({
        scratch: root,
        engineUrl: info.url,
        tokenFile: dataDirLayout(engineDir).token,
        gateway: 'haproxy',
        prometheus: true,
      });
    }, 60_000);

    afterAll(async () => {
      await infra?.stop();
      await stopEngine(engineDir, 5_000).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    });

    beforeEach(async () => {
      // Every test starts where the rehearsal's gateway starts: everyone on the sorry server.
      await ask('set server be_orders/sorry weight 100');
      await ask('set server be_orders/engine weight 0');
    });

    /** A playbook in its own folder: one traffic.shift with `shift` fields, a rollback that leaves a mark. */
    function playbook(shift: string, opts: { gate?: string } = {}): { dir: string; file: string } {
      const dir = join(root, `pb-${Math.random().toString(36).slice(2, 8)}`);
      mkdirSync(dir);
      const gate = opts.gate ?? `{ name: queue-depth, query: "max(engine_margin_queue_depth)", max: 1000 }`;
      const file = join(dir, 'gateway.yaml');
      writeFileSync(
        file,
        `apiVersion: recoverctl/v1
kind: Playbook
metadata: { name: gateway-shift }
engine: { dataDir: ${engineDir} }
steps:
  - id: shift
    uses: traffic.shift
    with:
      provider: { type: haproxy, socket: "${infra.vars.gatewaySocket}", backend: be_orders, canary: engine, remainder: sorry }
      prometheus: { address: "${infra.vars.prometheusUrl}", timeout: 2s }
      gates:
        maxQueueDepth: 500
        prometheus:
          - ${gate}
      load: { rate: 100, accounts: 4, fund: "1000000", seed: 3, url: "${infra.vars.gatewayUrl}" }
${shift}
rollback:
  - id: mark
    uses: notify
    with: { channel: file, path: rollback.log, message: "traffic taken back" }
`,
      );
      return { dir, file };
    }
    const run = (file: string, dir: string, ...more: string[]) =>
      runCli(['run', file, '--state-dir', join(dir, 'state'), ...more], { cwd: dir, timeoutMs: 90_000 });
    const journalOf = (dir: string): string => {
      const runs = join(dir, 'state', 'runs');
      return readdirSync(runs)
        .map((r) => readFileSync(join(runs, r, 'journal.ndjson'), 'utf8'))
        .join('');
    };

    it('completes a shift: HAProxy reads back 100/0 and orders reach the engine through it', async () => {
      const { dir, file } = playbook('      stepWeights: [10, 50, 100]\n      bake: 600ms\n      interval: 150ms');
      const r = await run(file, dir);
      expect(r.stderr).not.toMatch(/✗/);
      expect(r.exitCode).toBe(0);
      expect(await weights()).toEqual([100, 0]);
      const journal = journalOf(dir);
      const ok = journal
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { event: string; outputs?: Record<string, unknown>; judgements?: { gate: string; verdict: string }[] })
        .find((e) => e.event === 'ok');
      expect(ok?.outputs).toMatchObject({ weight: 100, remainderWeight: 0, provider: 'haproxy' });
      expect(Number(ok?.outputs?.accepted)).toBeGreaterThan(0);
      expect(journal).toContain('"gate":"queue-depth","source":"prometheus","verdict":"pass"');
    });

    it('a Prometheus gate that fails at stage 1 takes the traffic back to 0/100 and the rollback runs', async () => {
      const { dir, file } = playbook('      stepWeights: [10, 100]\n      bake: 600ms\n      interval: 150ms', {
        gate: '{ name: engine-up, query: "min(up{job=\\"engine\\"})", max: 0 }',
      });
      const r = await run(file, dir);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(
        /✗ shift .*gate breached at stage 1 \(weight 10%\): engine-up 1 > 0 \(engine-up failed once \(failureLimit 0\)\); traffic taken back \(canary 0%, remainder 100%\)/,
      );
      expect(r.stderr).toMatch(/⚖ shift: stage 1\/2 10%: engine-up ✗ fail/);
      expect(await weights()).toEqual([0, 100]);
      expect(readFileSync(join(dir, 'rollback.log'), 'utf8')).toContain('traffic taken back');
      expect(hasStackTrace(r.stderr)).toBe(false);
    });

    it('an empty result pauses the shift: without a terminal or --yes it aborts, with --yes it is promoted', async () => {
      const shift = '      stepWeights: [50, 100]\n      bake: 500ms\n      interval: 150ms';
      const gate = '{ name: absent, query: "max(no_such_metric_anywhere)", max: 1 }';
      const first = playbook(shift, { gate });
      const refused = await run(first.file, first.dir);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toMatch(/! shift: stage 1\/2 paused: absent inconclusive once \(inconclusiveLimit 0\)/);
      expect(refused.stderr).toMatch(/analysis inconclusive at stage 1 \(weight 50%\).*--yes/);
      expect(await weights()).toEqual([0, 100]);
      const second = playbook(shift, { gate });
      const promoted = await run(second.file, second.dir, '--yes');
      expect(promoted.exitCode).toBe(0);
      expect(promoted.stderr).toMatch(/! shift: stage 1\/2: promoted past absent by --yes/);
      expect(await weights()).toEqual([100, 0]);
    });

    it('refuses malformed PromQL in preflight, at its line, before any traffic moves', async () => {
      const { dir, file } = playbook('      stepWeights: [100]\n      bake: 500ms', { gate: '{ name: broken, query: "max(", max: 1 }' });
      const r = await run(file, dir);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(/gateway\.yaml:\d+:\d+: step shift: gates\.prometheus\.0\.query "max\(": Prometheus rejected the query \(bad_data\)/);
      expect(await weights()).toEqual([0, 100]);
    });

    it('killed mid-shift, resumed: HAProxy still holds stage 2 and the shift continues from there', async () => {
      const { dir, file } = playbook('      stepWeights: [10, 50, 100]\n      bake: 4s\n      interval: 200ms');
      const child = spawnCli(['run', file, '--state-dir', join(dir, 'state')], { cwd: dir });
      await waitFor(() => journalOfSafe(dir).includes('"stage":2,"stages":3,"weight":50,"verdict"'), 60_000, 'the shift to sample stage 2');
      child.kill('SIGKILL');
      await child.catch(() => undefined);
      expect(await weights()).toEqual([50, 50]);
      const resumed = await run(file, dir, '--resume-last');
      expect(resumed.exitCode).toBe(0);
      expect(resumed.stderr).toMatch(/! shift: resumed: haproxy has the canary at 50% and the remainder at 50%; continuing at stage 2\/3/);
      expect(await weights()).toEqual([100, 0]);
    });

    function journalOfSafe(dir: string): string {
      try {
        return journalOf(dir);
      } catch {
        return '';
      }
    }
  },
);
