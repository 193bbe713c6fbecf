import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** True for the names a playbook folder's playbooks have. */
export function isPlaybookName(name: string): boolean {
  return /\.ya?ml$/.test(name);
}

/**
 * The playbook files named by command-line arguments: a file as it is, a folder as its `*.yaml` and
 * `*.yml` files (not recursive, sorted), each path as the user typed it plus the file name. A folder that
 * cannot be read or holds no playbook is a problem of its own; the other arguments still count.
 */
export function expandPlaybookArgs(args: readonly string[]): { files: string[]; problems: { arg: string; message: string }[] } {
  const files: string[] = [];
  const problems: { arg: string; message: string }[] = [];
  for (const arg of args) {
    let isDir = false;
    try {
      isDir = statSync(arg).isDirectory();
    } catch {
      // not there: loadPlaybook names the problem for this argument
    }
    if (!isDir) {
      files.push(arg);
      continue;
    }
    let names: string[];
    try {
      names = readdirSync(arg).filter(isPlaybookName).sort();
    } catch (e) {
      problems.push({ arg, message: `${arg}: cannot read the folder (${(e as NodeJS.ErrnoException).code ?? String(e)})` });
      continue;
    }
    if (names.length === 0) problems.push({ arg, message: `${arg}: no playbooks (*.yaml, *.yml) in this folder` });
    for (const name of names) files.push(join(arg, name));
  }
  return { files, problems };
}
