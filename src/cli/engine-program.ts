import { Argument, Option, type Command } from 'commander';
import type {
  DepositAsset,
  EngineDepositFlags,
  EngineFaultFlags,
  EngineHaltFlags,
  EngineResumeFlags,
  EngineStartFlags,
  EngineTarget,
  FaultKind,
} from './engine.js';

const FAULT_KINDS = ['margin-burst', 'crash'] as const satisfies readonly FaultKind[];
const DEPOSIT_ASSETS = ['USDT', 'USDC'] as const satisfies readonly DepositAsset[];

function example(...lines: string[]): string {
  return `\n${lines.length > 1 ? 'Examples' : 'Example'}:\n${lines.map((l) => `  ${l}`).join('\n')}`;
}

/** One subcommand of `engine`, with the options every one of them takes. */
function engineSubcommand(engine: Command, name: string, description: string): Command {
  return engine.command(name).description(description).option('--data-dir <dir>', "the engine's data dir", 'var/engine');
}

/**
 * `recoverctl engine <command>`: commander wiring only, each action imports ./engine.js when it runs.
 * Subcommands are made with `.command()`, so they inherit the program's exitOverride and help settings.
 */
export function addEngineCommands(program: Command): void {
  const engine = program
    .command('engine')
    .description('start, stop and drive the futures engine of a data dir')
    .addHelpText('after', "\nRun 'recoverctl engine <command> --help' for a command's own options and an example.");

  engineSubcommand(engine, 'start', 'start the engine detached (or attach to the one running there) and wait until it is ready')
    .option('--port <n>', 'loopback port (0 picks a free one)', '0')
    .option('--testnet', 'mark the engine as a testnet')
    .option('--seed <n>', 'seed of the price feed')
    .option('--feed-interval <duration>', 'index feed step; 0ms turns the feed off (default 1s)')
    .option('--funding-interval <duration>', 'funding interval (default 8h)')
    .option('--queue-limit <n>', 'margin queue limit (default 10000)')
    .option('--json', 'print {pid, url, started, phase, ...} as JSON')
    .addHelpText('after', example('recoverctl engine start --data-dir var/engine'))
    .action(async (opts: EngineStartFlags) => {
      const { engineStart } = await import('./engine.js');
      await engineStart(opts);
    });

  engineSubcommand(engine, 'stop', 'stop the engine: SIGTERM (it flushes its WAL), SIGKILL after 10s')
    .option('--json', 'print {wasRunning, forced, pid} as JSON')
    .addHelpText('after', example('recoverctl engine stop --data-dir var/engine'))
    .action(async (opts: EngineTarget) => {
      const { engineStop } = await import('./engine.js');
      await engineStop(opts);
    });

  engineSubcommand(engine, 'status', 'phase, seq, margin module, queue depth and admission; exit 1 when not running')
    .option('--json', 'print the engine info and its /health as JSON')
    .addHelpText('after', example('recoverctl engine status --data-dir var/engine'))
    .action(async (opts: EngineTarget) => {
      const { engineStatus } = await import('./engine.js');
      await engineStatus(opts);
    });

  addTradingCommands(engine);
}

/** The subcommands that act on a running engine's trading: money in, phases, snapshots, faults. */
function addTradingCommands(engine: Command): void {
  engineSubcommand(engine, 'deposit', 'credit collateral to an account (creating it) and print its new balance')
    .requiredOption('--account <id>', 'the account to credit')
    .addOption(new Option('--asset <asset>', 'the collateral asset').choices(DEPOSIT_ASSETS).makeOptionMandatory())
    .requiredOption('--amount <decimal>', 'a positive decimal, at most 8 decimals, like 1000 or 250.5')
    .option('--json', 'print the account (balances, positions, ...) and what was deposited as JSON')
    .addHelpText('after', example('recoverctl engine deposit --data-dir var/engine --account alice --asset USDT --amount 1000'))
    .action(async (opts: EngineDepositFlags) => {
      const { engineDeposit } = await import('./engine.js');
      await engineDeposit(opts);
    });

  engineSubcommand(engine, 'halt', 'halt all trading')
    .option('--reason <text>', 'the reason recorded in the WAL and shown by /health', 'operator')
    .option('--json', 'print {phase, reason} as JSON')
    .addHelpText('after', example('recoverctl engine halt --data-dir var/engine --reason "margin queue runaway"'))
    .action(async (opts: EngineHaltFlags) => {
      const { engineHalt } = await import('./engine.js');
      await engineHalt(opts);
    });

  engineSubcommand(engine, 'resume', 'walk the phases back to open, checking after each dwell that the engine stayed there')
    .option('--phases <list>', 'phases to walk, in order', 'cancel-only,post-only,open')
    .option('--dwell <duration>', 'time in each phase but the last', '0s')
    .option('--json', 'print {phase} as JSON')
    .addHelpText('after', example('recoverctl engine resume --data-dir var/engine --phases cancel-only,post-only,open --dwell 1s'))
    .action(async (opts: EngineResumeFlags) => {
      const { engineResume } = await import('./engine.js');
      await engineResume(opts);
    });

  engineSubcommand(engine, 'snapshot', 'write a snapshot and print its path alone on stdout (seq, records and sha256 on stderr)')
    .option('--json', 'print {path, seq, sha256, records} as JSON')
    .addHelpText(
      'after',
      example(
        'recoverctl engine snapshot --data-dir var/engine',
        'recoverctl integrity check --snapshot "$(recoverctl engine snapshot --data-dir var/engine)" --against "$(recoverctl engine snapshot --data-dir var/engine)"',
      ),
    )
    .action(async (opts: EngineTarget) => {
      const { engineSnapshot } = await import('./engine.js');
      await engineSnapshot(opts);
    });

  engineSubcommand(engine, 'fault', 'inject a fault: margin-burst floods the margin queue, crash makes the engine SIGKILL itself')
    .addArgument(new Argument('<kind>', 'the fault').choices(FAULT_KINDS))
    .option('--events <n>', 'margin-burst: how many recalculation events (default twice the queue limit)')
    .option('--json', "print the engine's answer as JSON")
    .addHelpText('after', example('recoverctl engine fault margin-burst --data-dir var/engine --events 25000'))
    .action(async (kind: FaultKind, opts: EngineFaultFlags) => {
      const { engineFault } = await import('./engine.js');
      await engineFault(kind, opts);
    });
}
