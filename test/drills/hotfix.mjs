// Bad hotfix artifacts: each is refused and changes nothing (modules folder and active.json unchanged).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, dist, ROOT, withTempDir } from './lib.mjs';

const HOTFIX = join(ROOT, 'playbooks', 'hotfixes', 'margin-1.4.3.mjs');
const sha = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

function fingerprint(dataDir) {
  const dir = join(dataDir, 'modules', 'margin');
  return JSON.stringify({
    files: readdirSync(dir)
      .sort()
      .map((f) => [f, sha(join(dir, f))]),
    active: readFileSync(join(dataDir, 'active.json'), 'utf8'),
  });
}

export const badHotfix = {
  name: 'bad hotfix artifacts refused',
  trials: () => 5,
  async run(_trials, _seed) {
    const { startEngine, stopEngine } = await import(dist('engine-client/supervisor.js'));
    return withTempDir(async (dir) => {
      const dataDir = join(dir, 'engine');
      await startEngine(dataDir, { feedInterval: '0ms', exitWithMe: true });
      try {
        const throwing = join(dir, 'margin-1.4.7.mjs');
        writeFileSync(throwing, "throw new Error('boom on load');\n");
        const selfTestFails = join(dir, 'margin-1.4.8.mjs');
        writeFileSync(selfTestFails, readFileSync(HOTFIX, 'utf8').replaceAll("'1.4.3'", "'1.4.8'").replace("seen.join() !== 'b,a'", "seen.join() !== 'x'"));
        const link = join(dir, 'margin-1.4.3.mjs');
        symlinkSync(HOTFIX, link);
        const cases = [
          ['wrong digest', `artifact: "${HOTFIX}", sha256: "${'f'.repeat(64)}"`, 1, /sha256 mismatch/],
          ['a symlink', `artifact: "${link}", sha256: "${sha(HOTFIX)}"`, 1, /is a symlink/],
          ['a module that throws on load', `artifact: "${throwing}", sha256: "${sha(throwing)}"`, 1, /engine refused margin 1\.4\.7: .*failed to load/],
          ['a module that fails its self-test', `artifact: "${selfTestFails}", sha256: "${sha(selfTestFails)}"`, 1, /failed its self-test/],
          ['a version that climbs out of modules/', `artifact: "${HOTFIX}", sha256: "${sha(HOTFIX)}", version: "../../1.4.3"`, 2, /expected a version x\.y\.z/],
        ];
        const failures = [];
        for (const [what, args, code, message] of cases) {
          const before = fingerprint(dataDir);
          const pb = join(dir, 'p.yaml');
          writeFileSync(
            pb,
            `apiVersion: recoverctl/v1\nkind: Playbook\nmetadata: { name: bad }\nengine: { dataDir: "${dataDir}" }\nsteps:\n  - id: deploy\n    uses: hotfix.deploy\n    with: { component: margin, ${args} }\n`,
          );
          const r = spawnSync(process.execPath, [BIN, 'run', pb], { cwd: dir, env: { ...process.env, CI: 'true', NO_COLOR: '1' }, encoding: 'utf8' });
          if (r.status !== code) failures.push(`${what}: exit ${r.status}, expected ${code}`);
          if (!message.test(r.stderr)) failures.push(`${what}: message ${r.stderr.split('\n').slice(-2).join(' | ')}`);
          if (fingerprint(dataDir) !== before) failures.push(`${what}: the modules folder or active.json changed`);
        }
        return {
          trials: cases.length,
          passed: cases.length - new Set(failures.map((f) => f.split(':')[0])).size,
          lost: 0,
          detail: 'refused, modules/ and active.json unchanged',
          failures,
        };
      } finally {
        await stopEngine(dataDir);
      }
    });
  },
};
