import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, tempDir } from '../support/cli.js';

interface TrialEvent {
  event: 'chaos-trial';
  trial: number;
  spec: { seed: number; fault: string; point: string; load: number };
  struck: string | null;
  outcome: string;
  exitCode: number | null;
  properties: { id: string; ok: boolean; message: string }[];
  ok: boolean;
  reproducer: string;
  runId: string | null;
}

function events(stdout: string): (TrialEvent | { event: 'chaos-summary'; ok: boolean; trials: number; broken: number })[] {
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as TrialEvent);
}

const BUNDLED = join(ROOT, 'playbooks/um-excess-queue-depth.yaml');
const UNSAFE = join(ROOT, 'test/fixtures/chaos/unsafe-no-smoke.yaml');

describe('rehearse --chaos', () => {
  it('the bundled playbook under every fault that has a place in it: each struck, every property judged and holding (--json, --junit)', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    // At half the playbook's time scale: the bakes are shorter, the faults and the properties the same.
    const r = await runCli(
      ['rehearse', BUNDLED, '--chaos', '7', '--seed', '1', '--time-scale', '0.01', '--state-dir', state, '--json', '--junit', join(dir, 'chaos.xml')],
      {
        timeoutMs: 400_000,
      },
    );
    expect(r.exitCode, r.stderr.slice(-3000)).toBe(0);
    const all = events(r.stdout);
    const trials = all.filter((e): e is TrialEvent => e.event === 'chaos-trial');
    expect(trials).toHaveLength(7);
    expect(new Set(trials.map((t) => t.spec.fault))).toEqual(
      new Set(['engine-crash', 'runner-crash', 'bad-hotfix', 'smoke-failure', 'burst-after-resume', 'control-latency', 'wal-stall']),
    );
    for (const t of trials) {
      expect(t.struck, `${t.spec.fault} at ${t.spec.point}`).not.toBeNull();
      expect(t.properties.map((p) => p.id)).toEqual(['P1', 'P2', 'P3', 'P4']);
      expect(t.properties.filter((p) => !p.ok)).toEqual([]);
      expect(['recovered', 'rolled-back', 'human-needed']).toContain(t.outcome);
      expect(t.reproducer).toBe(`recoverctl rehearse ${BUNDLED} --chaos-trial ${t.spec.seed}:${t.spec.fault}:${t.spec.point} --time-scale 0.01`);
    }
    // A bad hotfix or a testnet that cannot start never reaches production: the run rolls back.
    for (const f of ['bad-hotfix', 'smoke-failure']) expect(trials.find((t) => t.spec.fault === f)?.outcome).toBe('rolled-back');
    expect(all.at(-1)).toMatchObject({ event: 'chaos-summary', ok: true, trials: 7, broken: 0 });
    expect(r.stderr).toMatch(/TRIAL\s+SEED\s+FAULT\s+WHERE\s+OUTCOME\s+RTO\s+PROPERTIES/);
    expect(r.stderr).toMatch(/every property judged on 7 of 7 trials; 0 of 7 broke something/);
    expect(r.stderr).toMatch(/metrics-down has no place to strike/);
    const xml = readFileSync(join(dir, 'chaos.xml'), 'utf8');
    expect(xml.match(/<testcase /g)).toHaveLength(7);
    expect(xml).toContain('failures="0"');
    // Every trial's journal is kept in the state dir: plan's RTO prediction counts chaos trials.
    expect(readdirSync(join(state, 'runs')).sort()).toEqual(trials.map((t) => t.runId).sort());
  }, 420_000);

  it('catches an unsafe playbook (no smoke test, loose gates): P1 broken, a reproducer, a minimal one, and the reproducer replays it', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const r = await runCli(['rehearse', UNSAFE, '--chaos', '1', '--faults', 'bad-hotfix', '--seed', '5', '--state-dir', state], { timeoutMs: 200_000 });
    expect(r.exitCode, r.stderr.slice(-3000)).toBe(1);
    expect(r.stderr).toMatch(/P1 broken: trading ended open on margin 1\.4\.4, which halts under the incident's load/);
    expect(r.stderr).toMatch(/P3 broken: exit 0 with P1 broken/);
    expect(r.stderr).toContain(`reproduce: recoverctl rehearse ${UNSAFE} --chaos-trial 5001:bad-hotfix:deploy\n`);
    // Shrunk: it breaks with no client load at all.
    expect(r.stderr).toMatch(
      new RegExp(`minimal reproducer \\(1 shrink trial\\): recoverctl rehearse ${UNSAFE.replace(/[.]/g, '\\.')} --chaos-trial 5001:bad-hotfix:deploy:0\\n`),
    );
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      "chaos: P1 broken in trial 5001:bad-hotfix:deploy: trading ended open on margin 1.4.4, which halts under the incident's load",
    );
    expect(r.stderr).not.toMatch(/^\s+at /m);
    // A broken trial keeps its scratch folder for a person to look at, and says where; this test removes them.
    const kept = [...r.stderr.matchAll(/scratch kept: (\S+?)\)?$/gm)].map((m) => m[1] as string);
    expect(kept.length).toBeGreaterThan(0);
    for (const k of kept) expect(readdirSync(k)).toEqual(expect.arrayContaining(['engine', 'state', 'run.err']));
    for (const k of kept) rmSync(k, { recursive: true, force: true });

    const replay = await runCli(['rehearse', UNSAFE, '--chaos-trial', '5001:bad-hotfix:deploy:0', '--state-dir', state, '--json'], { timeoutMs: 200_000 });
    expect(replay.exitCode, replay.stderr.slice(-2000)).toBe(1);
    const [trial] = events(replay.stdout).filter((e): e is TrialEvent => e.event === 'chaos-trial');
    expect(trial).toMatchObject({ spec: { seed: 5001, fault: 'bad-hotfix', point: 'deploy', load: 0 }, outcome: 'recovered', exitCode: 0, ok: false });
    expect(trial?.properties.filter((p) => !p.ok).map((p) => p.id)).toEqual(['P1', 'P3']);
    expect(replay.stderr).not.toMatch(/minimal reproducer/);
    for (const m of replay.stderr.matchAll(/scratch kept: (\S+)$/gm)) rmSync(m[1] as string, { recursive: true, force: true });
  }, 420_000);

  it('refuses what it cannot do with one line and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--chaos-trial', '1:engine-crash:shfit'], /engine-crash cannot strike at step 'shfit' \(did you mean 'shift'\?\); it strikes at: attach, /],
      [['--chaos', '3', '--faults', 'wal-stal'], /--faults: unknown fault 'wal-stal' \(did you mean 'wal-stall'\?\)/],
      [['--chaos', '0'], /--chaos: expected a number of trials 1\.\.1000, got '0'/],
      [['--chaos', '2', '--faults', 'gateway-refuses'], /none of the faults \(gateway-refuses\) has a place to strike/],
      [['--chaos', '2', '--chaos-trial', '1:wal-stall:shift'], /--chaos and --chaos-trial: give one of them/],
      [['--chaos', '2', '--no-auto-approve'], /--no-auto-approve: chaos trials answer approval gates themselves/],
      [['--chaos', '2', '--all'], /--chaos and --all: rehearse one playbook under chaos at a time/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(['rehearse', BUNDLED, ...args]);
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });
});
