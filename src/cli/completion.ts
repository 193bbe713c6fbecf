import type { Command } from 'commander';
import { UsageError } from '../errors.js';

interface CommandInfo {
  path: string[];
  options: string[];
}

function walk(cmd: Command, path: string[] = []): CommandInfo[] {
  const out: CommandInfo[] = [];
  for (const sub of cmd.commands) {
    const p = [...path, sub.name()];
    const options = sub.options
      .filter((o) => !o.hidden)
      .map((o) => o.long)
      .filter((l): l is string => Boolean(l));
    out.push({ path: p, options: [...options, '--help'] });
    out.push(...walk(sub, p));
  }
  return out;
}

const FILE_OPTIONS = ['--snapshot', '--against', '--junit', '--token-file'];
const DIR_OPTIONS = ['--state-dir', '--data-dir', '--out', '--wal'];

function bash(program: Command): string {
  const infos = walk(program);
  const top = infos
    .filter((i) => i.path.length === 1)
    .map((i) => i.path[0])
    .join(' ');
  const subs = infos
    .filter((i) => i.path.length === 1)
    .map((i) => {
      const children = infos.filter((c) => c.path.length === 2 && c.path[0] === i.path[0]).map((c) => c.path[1]);
      return children.length
        ? `    ${i.path[0]}) [ "$COMP_CWORD" -eq 2 ] && { COMPREPLY=( $(compgen -W "${children.join(' ')}" -- "$cur") ); return; } ;;`
        : '';
    })
    .filter(Boolean)
    .concat(['    completion) [ "$COMP_CWORD" -eq 2 ] && { COMPREPLY=( $(compgen -W "bash zsh fish" -- "$cur") ); return; } ;;'])
    .join('\n');
  const opts = infos.map((i) => `    "${i.path.join(' ')}") opts="${i.options.join(' ')}" ;;`).join('\n');
  return `# recoverctl completion for bash: source <(recoverctl completion bash)
_recoverctl() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then COMPREPLY=( $(compgen -W "${top}" -- "$cur") ); return; fi
  case "$prev" in
    --from-step)
      local pb="" w
      for w in "\${COMP_WORDS[@]}"; do case "$w" in *.yaml|*.yml) pb="$w" ;; esac; done
      COMPREPLY=( $(compgen -W "$(recoverctl completion steps "$pb" 2>/dev/null)" -- "$cur") ); return ;;
    ${DIR_OPTIONS.join('|')}) COMPREPLY=( $(compgen -d -- "$cur") ); return ;;
    ${FILE_OPTIONS.join('|')}) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
  esac
  case "\${COMP_WORDS[1]}" in
${subs}
  esac
  if [[ "$cur" == -* ]]; then
    local key="\${COMP_WORDS[1]}" opts=""
    if [ "$COMP_CWORD" -ge 3 ] && [[ "\${COMP_WORDS[2]}" != -* ]]; then key="\${COMP_WORDS[1]} \${COMP_WORDS[2]}"; fi
    case "$key" in
${opts}
    esac
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") ); return
  fi
  COMPREPLY=( $(compgen -f -X '!*.@(yaml|yml)' -- "$cur") $(compgen -d -S / -- "$cur") )
}
shopt -s extglob 2>/dev/null
complete -o filenames -F _recoverctl recoverctl
`;
}

function fish(program: Command): string {
  const infos = walk(program);
  const lines = ['# recoverctl completion for fish: recoverctl completion fish | source'];
  for (const i of infos.filter((x) => x.path.length === 1)) {
    lines.push(`complete -c recoverctl -n '__fish_use_subcommand' -a '${i.path[0]}'`);
  }
  for (const i of infos.filter((x) => x.path.length === 2)) {
    lines.push(`complete -c recoverctl -n '__fish_seen_subcommand_from ${i.path[0]}' -a '${i.path[1]}'`);
  }
  lines.push(`complete -c recoverctl -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'`);
  for (const i of infos) {
    for (const o of i.options) lines.push(`complete -c recoverctl -n '__fish_seen_subcommand_from ${i.path[i.path.length - 1]}' -l ${o.slice(2)}`);
  }
  lines.push(
    `complete -c recoverctl -n '__fish_seen_subcommand_from run plan' -l from-step -x -a '(recoverctl completion steps (commandline -opc | string match -r ".*\\.ya?ml$") 2>/dev/null)'`,
  );
  return `${lines.join('\n')}\n`;
}

/** `recoverctl completion bash|zsh|fish`, and `completion steps <playbook>` for --from-step. */
/** `program` is the CLI's own command tree, passed in rather than imported back from main.ts (no import cycle). */
export async function completionCommand(shell: string, arg: string | undefined, program: Command): Promise<void> {
  if (shell === 'steps') {
    if (!arg) return;
    const { loadPlaybook } = await import('../playbook/load.js');
    const pb = await loadPlaybook(arg).catch(() => undefined);
    if (pb) process.stdout.write(`${pb.steps.map((s) => s.id).join('\n')}\n`);
    return;
  }
  if (shell === 'bash') process.stdout.write(bash(program));
  else if (shell === 'zsh')
    process.stdout.write(`# recoverctl completion for zsh: source <(recoverctl completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${bash(program)}`);
  else if (shell === 'fish') process.stdout.write(fish(program));
  else throw new UsageError(`completion: bash, zsh or fish, not '${shell}'`);
}
