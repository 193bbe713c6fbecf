import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ExitCode, PlaybookError, PreflightFailed, RecoverctlError, UsageError } from '../errors.js';
import { VERSION } from '../util/version.js';
import { addEngineCommands } from './engine-program.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Commander wiring only: every command's code is imported when that command runs, so --help stays fast. */
// eslint-disable-next-line max-lines-per-function -- declarative commander wiring, one chained definition per command and no logic: splitting it only scatters the CLI's shape
export function buildProgram(): Command {
  const program = new Command('recoverctl')
    .description('Run YAML recovery playbooks against a halted futures platform.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes: 0 success, 1 a step or check failed (rollback done), 2 bad input,
3 rollback failed or state unknown (a human must look), 130 interrupted (resumable).

Examples:
  recoverctl validate playbooks/
  recoverctl plan playbooks/runner-drill.yaml
  recoverctl run playbooks/runner-drill.yaml --yes --junit results.xml
  recoverctl runs show last`,
    );

  program
    .command('validate')
    .description('check playbooks against the schema and their expressions; no side effects')
    .argument('<playbook...>', 'playbook files, or folders of them (*.yaml, *.yml)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  recoverctl validate playbooks/*.yaml\n  recoverctl validate --json playbooks/')
    .action(async (files: string[], opts: { json?: boolean }) => {
      const { validateCommand } = await import('./validate.js');
      await validateCommand(files, opts);
    });

  program
    .command('plan')
    .description('print what a run would do, with resolved values; no side effects (same as run --dry-run)')
    .argument('<playbook>', 'playbook file')
    .option('--var <KEY=VALUE>', 'override a playbook var (repeatable)', collect, [])
    .option('--from-step <id>', 'plan a run that starts at this step')
    .option('--resume <run-id>', 'plan what resuming this run would do')
    .option('--resume-last', 'plan what resuming the last run of this playbook would do')
    .option('--yes', 'preview a run with --yes: approval gates count as answered in the preflight checks')
    .option('--state-dir <dir>', 'where runs are journaled', '.recoverctl')
    .option('--json', 'print the plan and its preflight checks as one JSON line')
    .addHelpText(
      'after',
      '\nExamples:\n  recoverctl plan playbooks/runner-drill.yaml --var label=rehearsal\n  recoverctl plan playbooks/um-excess-queue-depth.yaml --json',
    )
    .action(async (file: string, opts: RunFlags) => {
      const { runCommand } = await import('./run.js');
      await runCommand(file, { ...opts, dryRun: true });
    });

  program
    .command('run')
    .description('run a playbook: steps in order, rollback on failure, journaled so it can be resumed')
    .argument('<playbook>', 'playbook file')
    .option('--dry-run', 'print the plan and stop; no side effects')
    .option('--resume <run-id>', 'continue an interrupted run from its first unfinished step')
    .option('--resume-last', 'continue the last run of this playbook')
    .option('--force', 'with --resume: accept a playbook whose sha256 changed since the run started')
    .option('--from-step <id>', 'start a fresh run at this step (earlier steps were done by hand)')
    .option('--yes', 'approve every gate.approve step without asking')
    .option('--var <KEY=VALUE>', 'override a playbook var (repeatable)', collect, [])
    .option('--state-dir <dir>', 'where runs are journaled', '.recoverctl')
    .option('--json', 'print one JSON event per line on stdout')
    .option('--junit <file>', 'write a JUnit XML report (one test case per step)')
    .option('--engine-data-dir <dir>', "act on the engine of this data dir instead of the playbook's engine.dataDir")
    .addOption(new Option('--time-scale <factor>', 'multiply waits and bakes (rehearsals)').argParser(parseFactor).hideHelp())
    .addHelpText(
      'after',
      '\nBefore the first step, preflight checks what the run will need (vars, files, commands, approval,\nthe engine, the lock); any problem: exit 2 and nothing is done.\n\nExamples:\n  recoverctl run playbooks/runner-drill.yaml --yes\n  recoverctl run playbooks/runner-drill.yaml --from-step settle --yes\n  recoverctl run playbooks/runner-drill.yaml --yes --json > events.ndjson',
    )
    .action(async (file: string, opts: RunFlags) => {
      const { runCommand } = await import('./run.js');
      await runCommand(file, opts);
    });

  program
    .command('rehearse')
    .description('a scratch engine with the fault injected until it halts itself, then the playbook for real against it')
    .argument('<playbook>', 'playbook file, or with --all a folder of playbooks')
    .option('--all', 'rehearse every playbook in the folder; one table and one JUnit file')
    .option('--seed <n>', 'seed of accounts, prices and traffic', '2026')
    .option('--accounts <n>', 'seeded accounts', '40')
    .option('--time-scale <factor>', "multiply waits and bakes (default: the playbook's rehearsal.timeScale)")
    .option('--no-auto-approve', 'ask at approval gates instead of answering yes')
    .option('--keep', 'keep the scratch folder for inspection')
    .option('--state-dir <dir>', 'where runs are journaled', '.recoverctl')
    .option('--json', 'print one JSON event per line on stdout')
    .option('--junit <file>', 'write a JUnit XML report')
    .option('--chaos <n>', 'n rehearsals, each with one seeded fault struck at a seeded step; safety properties checked on each (docs/chaos.md)')
    .option('--chaos-trial <seed:fault:step>', 'replay one chaos trial exactly (the reproducer --chaos prints)')
    .option('--faults <list>', 'with --chaos: the faults to use, comma-separated (default: every fault in docs/chaos.md)')
    .option('--parallel <n>', 'with --chaos: trials at a time', '2')
    .option('--no-shrink', 'with --chaos: print the reproducer of a broken property without shrinking it')
    .addHelpText(
      'after',
      '\nExit: 0 when every rehearsal ends as its rehearsal.expectOutcome says (default success), 1 when one\ndoes not, 2 for an invalid playbook or bad input, 3 for an unexpected failed rollback.\n\nExamples:\n  recoverctl rehearse playbooks/um-excess-queue-depth.yaml --junit rehearsal.xml\n  recoverctl rehearse --all playbooks/ --json --junit rehearsals.xml > rehearsals.ndjson',
    )
    .action(async (file: string, opts: { stateDir: string; all?: boolean; chaos?: string; chaosTrial?: string }) => {
      if (opts.chaos !== undefined || opts.chaosTrial !== undefined) {
        if (opts.all) throw new UsageError('--chaos and --all: rehearse one playbook under chaos at a time');
        const { chaosCommand } = await import('./chaos.js');
        return chaosCommand(file, opts);
      }
      const { rehearseAll, rehearseCommand } = await import('./rehearse.js');
      if (opts.all) await rehearseAll(file, opts);
      else await rehearseCommand(file, opts);
    });

  const runs = program.command('runs').description('list and inspect journaled runs');
  runs
    .command('list')
    .description('every run in the state dir, newest last')
    .option('--state-dir <dir>', 'where runs are journaled', '.recoverctl')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExample:\n  recoverctl runs list --state-dir .recoverctl')
    .action(async (opts: { stateDir: string; json?: boolean }) => {
      const { runsListCommand } = await import('./runs.js');
      runsListCommand(opts);
    });
  runs
    .command('show')
    .description("one run's steps, outcomes, durations and outputs")
    .argument('<run-id>', "a run id from 'runs list', or last")
    .option('--state-dir <dir>', 'where runs are journaled', '.recoverctl')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  recoverctl runs show last\n  recoverctl runs show last --json')
    .action(async (runId: string, opts: { stateDir: string; json?: boolean }) => {
      const { runsShowCommand } = await import('./runs.js');
      runsShowCommand(runId, opts);
    });

  addEngineCommands(program);

  const integrity = program.command('integrity').description('prove that no order was lost and positions are as before the outage');
  integrity
    .command('check')
    .description('compare a pre-outage snapshot with the state now: missing, unexpected, mismatch, duplicate, conservation, corrupt')
    .requiredOption('--snapshot <pre.ndjson>', 'the pre-outage snapshot')
    .option('--against <post.ndjson|postgres://…>', 'the state now: a snapshot file, or a PostgreSQL database read through --source-map')
    .option('--source-map <map.yaml>', 'with --against postgres://: the SQL returning each record type (kind: IntegritySource)')
    .option('--password-file <file>', 'with --against postgres://: the password (else PGPASSWORD or ~/.pgpass); never printed')
    .option('--engine <url>', "the state now, from a running engine's GET /state")
    .option('--token-file <file>', "with --engine: the engine's control.token")
    .option('--data-dir <dir>', "a local engine's data dir: same as --engine <its url> --token-file DIR/control.token --wal DIR/wal")
    .option('--wal <dir>', "the engine's WAL: changes after the snapshot's seq that it explains are not findings")
    .option('--limit <n>', 'stop after n findings (a cheap "anything wrong?")')
    .option('--json', 'print {clean, counts, findings} as JSON')
    .addHelpText(
      'after',
      '\nExit: 0 clean, 1 findings, 2 an input cannot be read or fails verification.\n\nExamples:\n  recoverctl integrity check --snapshot "$(recoverctl engine snapshot --data-dir var/engine)" --data-dir var/engine\n  recoverctl integrity check --snapshot "$(recoverctl engine snapshot)" --against "$(recoverctl engine snapshot)" --json',
    )
    .action(async (opts: { snapshot: string }) => {
      const { integrityCommand } = await import('./integrity.js');
      await integrityCommand(opts);
    });

  const report = program.command('report').description('incident timelines and per-user order-status reports');
  report
    .command('incident')
    .description("a journaled run's incident timeline: steps, approvals, notifications, phases, traffic samples, RTO")
    .argument('<run-id>', "a run id from 'runs list', or last")
    .option('--format <fmt>', 'md, json or html (self-contained)', 'md')
    .option('--pdf [file]', 'print the HTML report to a PDF through headless Chromium (default: incident.pdf in the run folder); prints its path')
    .option('--chromium <path>', 'the Chromium to print with (default: $RECOVERCTL_CHROMIUM, else chromium on PATH)')
    .option('--state-dir <dir>', 'where runs are journaled', '.recoverctl')
    .addHelpText('after', '\nExamples:\n  recoverctl report incident last --format html > incident.html\n  recoverctl report incident last --pdf incident.pdf')
    .action(async (runId: string, opts: { format: string; stateDir: string; pdf?: string | boolean; chromium?: string }) => {
      const { reportIncidentCommand } = await import('./report.js');
      await reportIncidentCommand(runId, opts);
    });
  report
    .command('users')
    .description('one JSON and one CSV file per affected account: orders with their status, positions, balances')
    .requiredOption('--snapshot <file>', 'the snapshot taken at the halt')
    .requiredOption('--out <dir>', 'where to write the reports')
    .addHelpText('after', '\nExample:\n  recoverctl report users --snapshot "$(recoverctl engine snapshot --data-dir var/engine)" --out var/reports/users')
    .action(async (opts: { snapshot: string; out: string }) => {
      const { reportUsersCommand } = await import('./report.js');
      await reportUsersCommand(opts);
    });

  program
    .command('dashboard')
    .description("a read-only web UI of the state dir's runs, live as their journals grow (127.0.0.1; prints its URL)")
    .option('--state-dir <dir>', 'where runs are journaled', '.recoverctl')
    .option('--port <n>', 'port to listen on; 0 picks a free one', '0')
    .option('--host <addr>', 'address to listen on; beyond loopback only with a token', '127.0.0.1')
    .option('--token <token>', 'require this token (16+ characters; also $RECOVERCTL_DASHBOARD_TOKEN)')
    .option('--token-file <file>', 'require the token in this file (kept out of ps and shell history)')
    .addHelpText('after', '\nExample:\n  recoverctl dashboard --state-dir .recoverctl --port 8088')
    .action(async (opts: { stateDir: string; port: string; host: string; token?: string; tokenFile?: string }) => {
      const { dashboardCommand } = await import('./dashboard.js');
      await dashboardCommand(opts);
    });

  program
    .command('init')
    .description('write a new playbook from a template, with the $schema line and comments')
    .argument('[name]', 'playbook name ([a-z0-9-]+)', 'recovery')
    .option('--dir <dir>', 'where to write <name>.yaml', 'playbooks')
    .option('--force', 'overwrite an existing file')
    .addHelpText('after', '\nExample:\n  recoverctl init db-failover && recoverctl validate playbooks/db-failover.yaml')
    .action(async (name: string, opts: { dir: string; force?: boolean }) => {
      const { initCommand } = await import('./init.js');
      initCommand(name, opts);
    });

  program
    .command('completion')
    .description('print a shell completion script (commands, options, playbook files, step ids for --from-step)')
    .argument('<shell>', 'bash, zsh or fish')
    .argument('[playbook]')
    .addHelpText('after', '\nExamples:\n  source <(recoverctl completion bash)\n  recoverctl completion fish > ~/.config/fish/completions/recoverctl.fish')
    .action(async (shell: string, playbook: string | undefined) => {
      const { completionCommand } = await import('./completion.js');
      await completionCommand(shell, playbook, program);
    });

  program
    .command('schema')
    .description('print the JSON Schema of the playbook format (for editors) on stdout')
    .option('--markdown', 'print the playbook reference (every step kind and field) as Markdown instead')
    .addHelpText('after', '\nExamples:\n  recoverctl schema > playbook.schema.json\n  recoverctl schema --markdown > playbook-reference.md')
    .action(async (opts: { markdown?: boolean }) => {
      const { schemaCommand } = await import('./schema.js');
      await schemaCommand(opts);
    });

  return program;
}

export interface RunFlags {
  dryRun?: boolean;
  resume?: string;
  resumeLast?: boolean;
  force?: boolean;
  fromStep?: string;
  yes?: boolean;
  var: string[];
  stateDir: string;
  json?: boolean;
  junit?: string;
  timeScale?: number;
  engineDataDir?: string;
}

function parseFactor(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 1) throw new InvalidArgumentError('expected a number in (0, 1]');
  return n;
}

/** The single top-level handler: typed errors become one line each and their exit code. */
export async function main(argv: string[]): Promise<void> {
  // A reader that stops early (`recoverctl --help | head`) closes stdout: what it did not read is not
  // wanted, and no crash either. A run goes on to its end regardless (its journal is the record).
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.exitCode = await exitCodeFor(e);
  }
}

async function exitCodeFor(e: unknown): Promise<number> {
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
    return ExitCode.badInput;
  }
  if (e instanceof RecoverctlError) {
    for (const line of e.lines()) process.stderr.write(`${line}\n`);
    // Annotations go to stderr (Actions reads both streams), so stdout stays data only.
    if ((e instanceof PlaybookError || e instanceof PreflightFailed) && process.env.GITHUB_ACTIONS === 'true') {
      const { errorAnnotation } = await import('../ui/annotations.js');
      // Every problem, located in the playbook where it can be (a held lock has no line).
      const problems = e instanceof PreflightFailed ? e.problems : e.diagnostics.map((d) => ({ message: d.message, at: d }));
      for (const p of problems) process.stderr.write(errorAnnotation(p.message, p.at));
    }
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`recoverctl: internal error: ${err.message}\n${process.env.RECOVERCTL_DEBUG ? `${err.stack ?? ''}\n` : ''}`);
  return ExitCode.humanNeeded;
}
