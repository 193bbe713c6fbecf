/**
 * The blue-green path's rollback after a promotion, end to end (issue 14): the bundled um-blue-green
 * playbook with a bad hotfix (margin 1.4.4, and no smoke test to catch it) is rehearsed through a real
 * HAProxy; the traffic shift's gates trip on the new primary and the rollback switches back to the old one.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, tempDir } from '../support/cli.js';
import { onPath } from '../support/haproxy.js';

const BAD_SHA = (
  readFileSync(join(ROOT, 'playbooks/hotfixes/SHA256SUMS'), 'utf8')
    .split('\n')
    .find((l) => l.endsWith('margin-1.4.4.mjs')) ?? ''
).split(' ')[0] as string;

/** um-blue-green.yaml deploying 1.4.4 on the standby, without the smoke test that would refuse it. */
function badBlueGreen(dir: string): string {
  cpSync(join(ROOT, 'playbooks'), join(dir, 'playbooks'), { recursive: true });
  const text = readFileSync(join(ROOT, 'playbooks/um-blue-green.yaml'), 'utf8')
    .replace('hotfixes/margin-1.4.3.mjs', 'hotfixes/margin-1.4.4.mjs')
    .replace(/hotfixSha256: [0-9a-f]{64}/, `hotfixSha256: ${BAD_SHA}`)
    .replace('hotfixVersion: 1.4.3', 'hotfixVersion: 1.4.4')
    .replace('  gateway: haproxy\n', '  gateway: haproxy\n  expectOutcome: failed\n')
    .replace(/ {2}- id: smoke\n[\s\S]*?(?= {2}- id: deploy\n)/, '');
  expect(text).not.toContain('id: smoke');
  const file = join(dir, 'playbooks', 'bg-bad-hotfix.yaml');
  writeFileSync(file, text);
  return file;
}

describe.skipIf(!onPath('haproxy'))('blue-green rollback after a promotion', () => {
  it('a bad hotfix on the promoted standby trips the gates; the rollback switches back: one writer, the old primary, halted on 1.4.2, nothing lost', async () => {
    const dir = tempDir();
    const r = await runCli(['rehearse', badBlueGreen(dir), '--state-dir', join(dir, 'state'), '--json'], { timeoutMs: 150_000 });
    expect(r.exitCode, r.stderr.slice(-2500)).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; step: string | null; phase?: string; outputs?: Record<string, unknown>; results?: unknown[] });
    expect(events.find((e) => e.event === 'fail')).toMatchObject({ step: 'shift' });
    expect(events.find((e) => e.event === 'ok' && e.step === 'promote')?.outputs).toMatchObject({ epoch: 1, forced: false });
    // After the promotion the rollback is a switch back, HAProxy's canary pointed at the old primary again.
    const back = events.find((e) => e.event === 'ok' && e.step === 'rollback-switch')?.outputs;
    expect(back).toMatchObject({ action: 'switched-back', epoch: 2 });
    expect(String(back?.gateway)).toMatch(/^gateway be_orders\/engine: 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+$/);
    expect(r.stderr).toMatch(/rehearse: ✓ exactly one engine takes writes \(engine: primary, engine-standby: primary \(fenced\)\)/);
    expect(r.stderr).toMatch(/rehearse: ✓ engine halted after the rollback \(halted, margin 1\.4\.2\)/);
    expect(r.stderr).toMatch(/rehearse: ✓ nothing lost/);
    expect(r.stderr).toMatch(/path blue-green: a standby promoted \(epoch 1\) .* after detection, then switched back by the rollback/);
    expect(events.at(-1)).toMatchObject({ event: 'rehearse-summary', ok: true, results: [{ outcome: 'failed', ok: true, path: 'blue-green' }] });
  }, 180_000);
});
