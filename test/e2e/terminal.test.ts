import { execa, execaSync } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, ROOT, tempDir, waitFor } from '../support/cli.js';
import { startTestEngine } from '../support/engine.js';

const TMUX = ['/usr/bin/tmux', '/bin/tmux'].find((p) => existsSync(p));
const sessions: string[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) execaSync(TMUX as string, ['kill-session', '-t', s], { reject: false });
});

const HOTFIX = join(ROOT, 'playbooks/hotfixes/margin-1.4.3.mjs');
const SHA = (readFileSync(join(ROOT, 'playbooks/hotfixes/SHA256SUMS'), 'utf8').split(' ')[0] ?? '').trim();

function playbook(dir: string, dataDir: string): string {
  const file = join(dir, 'shift.yaml');
  writeFileSync(
    file,
    `apiVersion: recoverctl/v1
kind: Playbook
metadata: { name: terminal }
engine: { dataDir: "${dataDir}" }
steps:
  - id: deploy
    uses: hotfix.deploy
    with: { component: margin, artifact: "${HOTFIX}", sha256: "${SHA}" }
  - id: open
    uses: engine.resume
    with: { phases: [open], admission: 0 }
  - id: shift
    name: Move the traffic
    uses: traffic.shift
    with:
      stepWeights: [10, 100]
      bake: 3s
      interval: 300ms
      gates: { maxQueueDepth: 5000 }
      load: { rate: 100, accounts: 10, fund: "1000000", seed: 5 }
  - id: done
    uses: notify
    with: { channel: stdout, message: all traffic shifted }
`,
  );
  return file;
}

// .ci/run installs Debian's tmux when it is missing; on a machine without it this is skipped, said so.
const SKIP = TMUX === undefined ? 'tmux is not installed (apt-get install tmux; .ci/run installs it)' : undefined;
if (SKIP) console.warn(`skipped: the live terminal: ${SKIP}`);
describe.skipIf(SKIP !== undefined)(`the live terminal${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  it('shows the live values first on the spinner line, cut to the width so it never wraps, then every step with its duration', async () => {
    const { dir: dataDir } = await startTestEngine({ feedInterval: '200ms' });
    const dir = tempDir();
    const pb = playbook(dir, dataDir);
    const session = `recoverctl-${process.pid}-${Date.now()}`;
    sessions.push(session);
    const command = `cd ${dir} && env -u CI NO_COLOR=1 ${process.execPath} ${BIN} run ${pb}; echo EXIT=$?; sleep 60`;
    // Narrower than the shift's line would be: the description must be cut, not wrapped.
    const width = 120;
    await execa(TMUX as string, ['new-session', '-d', '-s', session, '-x', String(width), '-y', '50', command]);
    // -J joins a wrapped line back into one, so a line that wrapped shows as wider than the pane.
    const pane = () => execaSync(TMUX as string, ['capture-pane', '-p', '-J', '-t', session], { reject: false }).stdout;
    // Who and how long, then the values, each once, then the description: no `weight 100%` then `weight=100` again.
    const spinnerLine =
      /^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] shift — Move the traffic [\d.]+m?s · stage 2(?:\/2)? · 100% · queueDepth \d+ · errorRate [\d.]+ · p99 (?:[\d.]+ ms|–)(?: · .*)?$/m;
    const snapshots: string[] = [];
    let during = '';
    await waitFor(
      () => {
        during = pane();
        snapshots.push(during);
        return spinnerLine.test(during);
      },
      30_000,
      'the spinner line of the traffic shift',
    ).catch((e: Error) => {
      throw new Error(`${e.message}; the pane showed:\n${during}`);
    });
    const line = spinnerLine.exec(during)?.[0] ?? '';
    expect(line).toMatch(/…$/);
    expect(line).not.toMatch(/=/);
    for (const snapshot of snapshots) {
      for (const l of snapshot.split('\n')) expect([...l].length, `a wrapped line: ${l}`).toBeLessThan(width);
    }
    let final = '';
    await waitFor(
      () => {
        final = pane();
        return final.includes('EXIT=');
      },
      30_000,
      'the run to finish',
    );
    expect(final).toContain('EXIT=0');
    for (const step of ['deploy', 'open', 'done']) expect(final).toMatch(new RegExp(`✓ ${step}\\s+[\\d.]+m?s`));
    expect(final).toMatch(/✓ shift — Move the traffic \([\d.]+m?s\)/);
    expect(final).toMatch(/✓ shift\s+Move the traffic\s+[\d.]+m?s/);
    expect(final).toContain('all traffic shifted');
  });

  it('prints plain lines, no spinner or control characters, to a pipe or with CI=true', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'p.yaml'),
      'apiVersion: recoverctl/v1\nkind: Playbook\nmetadata: { name: plain }\nsteps:\n  - id: pause\n    uses: wait\n    with: { duration: 1200ms }\n',
    );
    for (const env of [{ CI: 'true' }, { CI: '' }]) {
      const r = await execa(process.execPath, [BIN, 'run', 'p.yaml'], { cwd: dir, env, extendEnv: true, reject: false });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).not.toMatch(/[\u001b\r⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
      expect(r.stderr).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z ▶ pause: pause for 1200ms$/m);
    }
  });
});
