import { join } from 'node:path';
import type { EngineSupervisor, EngineTarget, Effects, Exec, ExecOutcome, ReportWriter, ScratchEngine, SocketCommand } from '../steps/effects.js';
import { JOURNAL_FILE } from '../runner/journal.js';
import { dataDirLayout } from '../util/data-dir.js';

/** How long a canceled command gets after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 5_000;
const MAX_BUFFER = 16 * 1024 * 1024;

/** Commands through execa: no shell unless asked, stdin closed, the environment extended, never rejecting. */
export const nodeExec: Exec = async (req) => {
  const { execa } = await import('execa');
  const options = {
    cwd: req.cwd,
    env: { ...req.env },
    extendEnv: true,
    stdin: 'ignore' as const,
    reject: false,
    cancelSignal: req.signal,
    forceKillAfterDelay: KILL_GRACE_MS,
    maxBuffer: MAX_BUFFER,
  };
  const child = typeof req.command === 'string' ? execa(req.command, { ...options, shell: true }) : execa(req.command[0] ?? '', req.command.slice(1), options);
  child.stdout?.on('data', (chunk: Buffer) => req.onStdout(chunk));
  child.stderr?.on('data', (chunk: Buffer) => req.onStderr(chunk));
  const r = await child;
  const outcome: ExecOutcome = {
    exitCode: r.exitCode ?? null,
    signal: r.signal ?? null,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    canceled: r.isCanceled,
    error: r.failed && r.exitCode === undefined && r.signal === undefined ? (r.shortMessage ?? 'unknown error') : null,
  };
  // Over maxBuffer execa kills the command: say so rather than report a bare signal.
  if (r.isMaxBuffer) outcome.error = `output over ${MAX_BUFFER} bytes`;
  return outcome;
};

/** One line to a unix or tcp admin socket, the whole answer back (the server closes after answering). */
export const nodeSocket: SocketCommand = async (address, line, o) => {
  const net = await import('node:net');
  const url = new URL(address);
  const options: import('node:net').NetConnectOpts =
    url.protocol === 'unix:' ? { path: decodeURIComponent(url.pathname) } : { host: url.hostname, port: Number(url.port) };
  if (url.protocol !== 'unix:' && url.protocol !== 'tcp:') throw new Error(`socket ${address}: expected unix:///path or tcp://host:port`);
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(options);
    const fail = (e: Error): void => {
      socket.destroy();
      reject(e);
    };
    const onAbort = (): void => fail(new Error(`socket ${address}: aborted`));
    o.signal.addEventListener('abort', onAbort, { once: true });
    socket.setTimeout(o.timeoutMs, () => fail(new Error(`socket ${address}: no answer within ${o.timeoutMs}ms`)));
    socket.on('connect', () => socket.end(`${line}\n`));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e) => fail(new Error(`socket ${address}: ${e.message}`)));
    socket.on('close', () => {
      o.signal.removeEventListener('abort', onAbort);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
};

/** The engine supervisor of src/engine-client, loaded when a step first needs it. */
export const nodeEngines: EngineSupervisor = {
  async connect(target) {
    const { connect } = await import('../engine-client/supervisor.js');
    return connect(target);
  },
  async attach(dataDir) {
    const { attach } = await import('../engine-client/supervisor.js');
    return attach(dataDir);
  },
  async start(dataDir, options) {
    const { startEngine } = await import('../engine-client/supervisor.js');
    return startEngine(dataDir, options);
  },
  async stop(dataDir, timeoutMs) {
    const { stopEngine } = await import('../engine-client/supervisor.js');
    return stopEngine(dataDir, timeoutMs);
  },
  async scratch(dataDir, options): Promise<ScratchEngine> {
    const { startEngine, stopEngine } = await import('../engine-client/supervisor.js');
    const { terminateOnExit } = await import('../util/pid.js');
    // If this process is ended abruptly, the scratch engine must not outlive it.
    const guard = terminateOnExit();
    // The chaos fault `smoke-failure` (docs/chaos.md): the testnet engine's port is already taken, so it cannot start.
    const taken = options.testnet && chaosFaults().has('smoke-failure') ? await holdPort() : undefined;
    try {
      const { client, info } = await startEngine(dataDir, { ...options, ...(taken ? { port: taken.port } : {}), exitWithMe: true });
      guard.watch(info.pid);
      return {
        client,
        info,
        stop: async () => {
          await stopEngine(dataDir).catch(() => undefined);
          guard.release();
        },
      };
    } catch (e) {
      await stopEngine(dataDir).catch(() => undefined);
      guard.release();
      throw e;
    } finally {
      taken?.server.close();
    }
  },
  async load(target: EngineTarget, options) {
    const { readFile } = await import('node:fs/promises');
    const { connect } = await import('../engine-client/supervisor.js');
    const { LoadGenerator } = await import('../engine-client/load.js');
    const client = await connect(target);
    const tokenFile = 'dataDir' in target ? dataDirLayout(target.dataDir).token : target.tokenFile;
    const token = (await readFile(tokenFile, 'utf8')).trim();
    return new LoadGenerator({ ...options, url: client.url, token, instruments: await client.instruments() });
  },
};

/** The reports of src/report, reading the run's journal. */
export const nodeReports: ReportWriter = {
  async incident(o) {
    const { readJournal } = await import('../runner/journal.js');
    const { incidentOf, writeIncidentFiles } = await import('../report/write.js');
    const { events } = readJournal(join(o.runDir, JOURNAL_FILE));
    const report = incidentOf(events, o.fallback, o.now, o.self === undefined ? {} : { self: o.self });
    const files = await writeIncidentFiles(report, o.out, o.formats);
    return { files, steps: report.steps.length, rtoMs: report.rto.actualMs, rtoBreached: report.rto.breached };
  },
  async users(snapshot, out) {
    const { writeUserReports } = await import('../report/users.js');
    return writeUserReports(snapshot, out);
  },
};

/** Every effect as it really happens: what `run` and `rehearse` give their runner. */
export const nodeEffects: Effects = {
  exec: nodeExec,
  fetch: (input, init) => fetch(input, init),
  socket: nodeSocket,
  engines: nodeEngines,
  reports: nodeReports,
};

/** Faults `rehearse --chaos` asks this process to inject in itself (`RECOVERCTL_CHAOS`, comma-separated). */
function chaosFaults(): Set<string> {
  return new Set((process.env.RECOVERCTL_CHAOS ?? '').split(',').filter(Boolean));
}

/** A loopback port held open by this process, so that an engine told to bind it fails as a taken port does. */
async function holdPort(): Promise<{ port: number; server: import('node:net').Server }> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)');
  return { port: address.port, server };
}
