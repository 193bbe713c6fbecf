import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, UsageError } from '../errors.js';

/** A new playbook from a template: the $schema line for editors, every section, comments. */
export function playbookTemplate(name: string, schemaPath: string): string {
  return `# yaml-language-server: $schema=${schemaPath}
# ${name}: a recovery playbook. Check it with \`recoverctl validate\`, see what it would do with
# \`recoverctl plan\`, rehearse it against a scratch engine with \`recoverctl rehearse\`.
apiVersion: recoverctl/v1
kind: Playbook
metadata:
  name: ${name}
  incident: INC-YYYY-MM-DD-what      # free text, shown in reports
  rto: 15m                           # recovery time objective; the incident report flags a breach
engine:
  dataDir: ../var/engine             # the engine's data dir, relative to this file (or url: + tokenFile:)
rehearsal:
  timeScale: 0.02                    # rehearse runs waits and bakes this much faster
vars:
  preOutageSnapshot:
    description: the last snapshot before the halt (rehearse sets it; give it with --var otherwise)
steps:
  - id: attach
    name: Attach to the engine, halted
    uses: engine.start
  - id: verify-snapshot
    uses: snapshot.verify
    with: { path: "\${{ vars.preOutageSnapshot }}" }
  - id: integrity
    name: No order lost since the snapshot
    uses: integrity.check
    with: { snapshot: "\${{ vars.preOutageSnapshot }}" }
  - id: approve
    uses: gate.approve                # asks on a TTY; --yes approves; without either it fails
    with: { message: "Resume trading?" }
  - id: resume
    uses: engine.resume
    with: { phases: [cancel-only, post-only, open], dwell: 30s }
  - id: report
    uses: report.incident
    if: always()                      # runs even after a failure, so the timeline is written
rollback:                             # runs at once, in order, when a step fails
  - uses: engine.halt
    with: { reason: "${name}: rolled back" }
`;
}

export function initCommand(name: string | undefined, opts: { dir: string; force?: boolean }): void {
  const playbook = name ?? 'recovery';
  if (!/^[a-z0-9-]+$/.test(playbook)) throw new UsageError(`init: '${playbook}' is not a playbook name ([a-z0-9-]+)`);
  const file = resolve(opts.dir, `${playbook}.yaml`);
  if (existsSync(file) && !opts.force) throw new InputError(`${file} already exists; pass --force to overwrite it`);
  const schema = fileURLToPath(new URL('../../docs/playbook.schema.json', import.meta.url));
  const schemaPath = relative(dirname(file), schema) || schema;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, playbookTemplate(playbook, schemaPath));
  process.stdout.write(`${join(relative(process.cwd(), dirname(file)) || '.', `${playbook}.yaml`)}\n`);
}
