/**
 * HAProxy through its runtime API (doc/management.txt, "Unix Socket commands"): `set server B/S weight W`
 * on the stats socket, read back with `show servers state B`. An empty answer to a set means it took.
 */
import { parseDuration } from '../../util/duration.js';
import { errorMessage } from '../types.js';
import type { HaproxyProviderConfig } from './schema.js';
import { ProviderError, oneLine, type ProviderDeps, type ProviderFailure, type TrafficProvider, type TrafficWeights } from './types.js';

/** Waits before asking a socket that refused the connection again (3.75 s in all), then it is unreachable. */
const REFUSED_RETRY_MS = [250, 500, 1_000, 2_000];
const REFUSED = /\b(ECONNREFUSED|ENOENT|EAGAIN)\b/;

/** `ms`, or the signal's reason as soon as it aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });
}

/** One server row of `show servers state` (format version 1), the columns a shift needs. */
export interface ServerState {
  backend: string;
  server: string;
  address: string;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  /** srv_admin_state: a mask; 0x01 forced, 0x02 inherited, 0x04 configured, 0x20 resolution maintenance; 0x08/0x10 drain. */
  adminState: number;
  /** srv_uweight: the weight in force. */
  weight: number;
  /** srv_iweight: the weight in the configuration. */
  initialWeight: number;
  /** srv_port (HAProxy 1.8 and later); null when the dump has no such column. */
  port: number | null;
}

const COLUMNS = {
  be_name: 'backend',
  srv_name: 'server',
  srv_addr: 'address',
  srv_op_state: 'opState',
  srv_admin_state: 'adminState',
  srv_uweight: 'weight',
  srv_iweight: 'initialWeight',
} as const;

/**
 * Parse `show servers state [<backend>]`: a format version line, a `#` line naming the columns, then one
 * row per server. Columns are found by name, so newer versions that add columns still parse. Throws a
 * plain Error (the caller says where) when the text is not that dump.
 */
export function parseServersState(text: string): ServerState[] {
  const lines = text.split('\n').map((l) => l.trim());
  const header = lines.find((l) => l.startsWith('#'));
  if (!/^\d+$/.test(lines[0] ?? '') || header === undefined) throw new Error(`not a server state dump: ${JSON.stringify(oneLine(text, 120))}`);
  const names = header.replace(/^#\s*/, '').split(/\s+/);
  const at = Object.fromEntries(Object.keys(COLUMNS).map((c) => [c, names.indexOf(c)])) as Record<keyof typeof COLUMNS, number>;
  const portAt = names.indexOf('srv_port');
  const missing = Object.entries(at).filter(([, i]) => i < 0);
  if (missing.length) throw new Error(`server state dump without the column${missing.length > 1 ? 's' : ''} ${missing.map(([c]) => c).join(', ')}`);
  return lines
    .slice(1)
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const f = l.split(/\s+/);
      const num = (c: keyof typeof COLUMNS): number => Number(f[at[c]]);
      const row: ServerState = {
        backend: f[at.be_name] ?? '',
        server: f[at.srv_name] ?? '',
        address: f[at.srv_addr] ?? '',
        opState: num('srv_op_state'),
        adminState: num('srv_admin_state'),
        weight: num('srv_uweight'),
        initialWeight: num('srv_iweight'),
        port: portAt < 0 || !/^\d+$/.test(f[portAt] ?? '') ? null : Number(f[portAt]),
      };
      if (![row.opState, row.adminState, row.weight, row.initialWeight].every(Number.isInteger))
        throw new Error(`not a server state row: ${JSON.stringify(l)}`);
      return row;
    });
}

/** `stats socket <path> level admin` as the operator would write it for this address. */
function statsSocketLine(address: string): string {
  const url = new URL(address);
  const where = url.protocol === 'unix:' ? decodeURIComponent(url.pathname) : `${url.hostname.startsWith('[') ? 'ipv6' : 'ipv4'}@${url.host}`;
  return `stats socket ${where} level admin`;
}

/**
 * What an answer of the runtime API means, null when it means success. The texts are HAProxy's
 * (cli.c, server.c), matched here because the CLI has no other way to say them.
 */
export function haproxyAnswer(
  answer: string,
  o: { socket: string; backend: string; server: string; weight: number },
): { failure: ProviderFailure; detail: string } | null {
  const text = answer.trim();
  if (text === '') return null;
  const first = text.split('\n')[0] ?? '';
  if (first === 'No such backend.' || first === "Can't find backend.") return { failure: 'not-found', detail: `no such backend ${o.backend} (${o.socket})` };
  if (first === 'No such server.') return { failure: 'not-found', detail: `no such server ${o.server} in backend ${o.backend} (${o.socket})` };
  if (first === 'Permission denied')
    return { failure: 'forbidden', detail: `Permission denied: the socket ${o.socket} is not at admin level (configure \`${statsSocketLine(o.socket)}\`)` };
  if (first.startsWith('Backend is using a static LB algorithm'))
    return {
      failure: 'rejected',
      detail: `backend ${o.backend} uses a static algorithm (static-rr, first), which accepts only weights 0 and 100% of the initial weight, not ${o.weight}: use balance roundrobin or leastconn for a staged shift`,
    };
  if (first.startsWith('Absolute weight can only be between')) return { failure: 'rejected', detail: `weight ${o.weight} refused: ${first}` };
  return { failure: 'failed', detail: `unexpected answer: ${oneLine(text, 200)}` };
}

export class HaproxyProvider implements TrafficProvider {
  readonly type = 'haproxy';
  private readonly timeoutMs: number;

  constructor(
    private readonly config: HaproxyProviderConfig,
    private readonly deps: Pick<ProviderDeps, 'socket' | 'signal'>,
  ) {
    this.timeoutMs = parseDuration(config.timeout) ?? 5_000;
  }

  async current(): Promise<TrafficWeights> {
    const rows = await this.state();
    return { weight: this.row(rows, this.config.canary).weight, remainderWeight: this.config.remainder ? this.row(rows, this.config.remainder).weight : null };
  }

  async set(weight: number): Promise<TrafficWeights> {
    const { canary, remainder } = this.config;
    // Raise before lowering, so that no moment has both servers at weight 0 (every request would get a 503).
    const wanted: [string, number][] =
      remainder === undefined
        ? [[canary, weight]]
        : weight === 0
          ? [
              [remainder, 100],
              [canary, 0],
            ]
          : [
              [canary, weight],
              [remainder, 100 - weight],
            ];
    for (const [server, w] of wanted) await this.setWeight(server, w);
    const now = await this.current();
    for (const [server, w] of wanted) {
      const got = server === canary ? now.weight : now.remainderWeight;
      if (got !== w)
        throw new ProviderError('haproxy', `${this.config.backend}/${server}`, 'mismatch', `weight set to ${w}, \`show servers state\` reads ${got}`);
    }
    return now;
  }

  abort(): Promise<TrafficWeights> {
    return this.set(0);
  }

  /**
   * Point the canary server at another engine (a promoted standby): `set server B/S addr IP port P`,
   * then read back from `show servers state`. Its weight stays as it was.
   */
  async retarget(host: string, port: number): Promise<{ from: string; to: string }> {
    const { backend, canary, socket } = this.config;
    const before = this.row(await this.state(), canary);
    const answer = await this.ask(`set server ${backend}/${canary} addr ${host} port ${port}`, canary);
    // Success is a sentence ("IP changed from ...", "no need to change the addr, port changed ..."); the read-back decides.
    const meaning = haproxyAnswer(answer, { socket, backend, server: canary, weight: 0 });
    if (meaning && meaning.failure !== 'failed') throw new ProviderError('haproxy', `${backend}/${canary}`, meaning.failure, meaning.detail);
    const after = this.row(await this.state(), canary);
    if (after.address !== host || after.port !== port)
      throw new ProviderError(
        'haproxy',
        `${backend}/${canary}`,
        'mismatch',
        `address set to ${host}:${port}, \`show servers state\` reads ${after.address}:${after.port ?? '?'} (${oneLine(answer, 160)})`,
      );
    return { from: `${before.address}:${before.port ?? '?'}`, to: `${host}:${port}` };
  }

  private async setWeight(server: string, weight: number): Promise<void> {
    const answer = await this.ask(`set server ${this.config.backend}/${server} weight ${weight}`, server);
    const meaning = haproxyAnswer(answer, { socket: this.config.socket, backend: this.config.backend, server, weight });
    if (meaning) throw new ProviderError('haproxy', `${this.config.backend}/${server}`, meaning.failure, meaning.detail);
  }

  private async state(): Promise<ServerState[]> {
    const { backend, canary, socket } = this.config;
    const answer = await this.ask(`show servers state ${backend}`, canary);
    try {
      return parseServersState(answer);
    } catch (e) {
      const meaning = haproxyAnswer(answer, { socket, backend, server: canary, weight: 0 });
      throw new ProviderError('haproxy', backend, meaning?.failure ?? 'failed', meaning?.detail ?? `\`show servers state ${backend}\`: ${errorMessage(e)}`);
    }
  }

  private row(rows: ServerState[], server: string): ServerState {
    const { backend, socket } = this.config;
    const row = rows.find((r) => r.backend === backend && r.server === server);
    if (!row) throw new ProviderError('haproxy', `${backend}/${server}`, 'not-found', `no such server ${server} in backend ${backend} (${socket})`);
    return row;
  }

  private async ask(line: string, server: string): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.deps.socket(this.config.socket, line, { signal: this.deps.signal, timeoutMs: this.timeoutMs });
      } catch (e) {
        if (this.deps.signal.aborted) throw this.deps.signal.reason;
        // A socket that refuses the connection never saw the command: ask again for a few seconds (HAProxy
        // reloading moves its socket), but never after a timeout, when the command may have been applied.
        const delay = REFUSED_RETRY_MS[attempt];
        if (delay === undefined || !REFUSED.test(errorMessage(e))) this.unreachable(e, server);
        await pause(delay, this.deps.signal);
      }
    }
  }

  private unreachable(e: unknown, server: string): never {
    const why = oneLine(errorMessage(e));
    // The real socket names the address in its errors already; say it once.
    const detail = why.includes(this.config.socket) ? `cannot reach the stats socket: ${why}` : `cannot reach ${this.config.socket}: ${why}`;
    throw new ProviderError('haproxy', `${this.config.backend}/${server}`, 'unreachable', detail);
  }
}
