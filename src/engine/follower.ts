import { request, type IncomingMessage } from 'node:http';
import { createWriteStream, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, closeSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineRuntime } from './runtime.js';
import type { Command } from './types.js';
import { decodeRecord, segmentName } from './wal.js';
import { dataDirLayout } from '../util/data-dir.js';

/**
 * Follower mode (`--follow URL --token-file F`): a standby engine that starts from its primary's state
 * and then applies the primary's WAL records as they become durable, with the same state machine, so
 * both have the same state at every seq. Issue 14; docs/engine.md "Hot standby".
 */

/**
 * The primary's token, read from its file each time: a primary writes a fresh token when it restarts,
 * and a follower (or a promoted standby fencing its old primary) must keep reaching it.
 */
export function readToken(tokenFile: string): string {
  return readFileSync(tokenFile, 'utf8').trim();
}

/** How long a follower waits before it reconnects a broken stream. */
const RECONNECT_MS = 250;

/** One request to the primary's control API; the answer's status and body. */
async function call(url: string, token: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const req = request(url, { method: body === undefined ? 'GET' : 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Fence the (old) primary with an epoch; true once it answered that it is fenced. */
export async function fencePrimary(url: string, tokenFile: string, epoch: number): Promise<boolean> {
  try {
    return (await call(`${url}/fence`, readToken(tokenFile), { epoch })).status === 200;
  } catch {
    return false;
  }
}

/**
 * A data dir with no state yet starts from the primary's: `GET /state` is written as its first
 * snapshot, byte for byte (the same format, trailer and checksum). A data dir that has state keeps it,
 * and the stream resumes after its last seq.
 */
export async function bootstrapFollower(dataDir: string, url: string, token: string): Promise<{ seq: number } | undefined> {
  const layout = dataDirLayout(dataDir);
  mkdirSync(layout.snapshots, { recursive: true });
  const hasSnapshot = readdirSync(layout.snapshots).some((f) => /^\d+\.ndjson$/.test(f));
  const hasWal = existsSync(layout.wal) && readdirSync(layout.wal).some((f) => /^\d{20}\.log$/.test(f));
  if (hasSnapshot || hasWal) return undefined;
  const r = await call(`${url}/state`, token);
  if (r.status !== 200) throw new Error(`GET ${url}/state answered ${r.status}: ${r.body.slice(0, 200)}`);
  const header = JSON.parse(r.body.slice(0, r.body.indexOf('\n'))) as { seq: number };
  const file = join(layout.snapshots, `${header.seq}.ndjson`);
  writeFileSync(`${file}.tmp`, r.body, { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
  // Then the history before that state, as a WAL segment of its own (the state first: a crash in
  // between leaves a data dir that starts from it, without the history): the follower's WAL then explains
  // what happened since a pre-outage snapshot, as its primary's does (integrity checks after a promotion).
  await copyHistory(`${url}/wal/stream?from=1&to=${header.seq}`, token, layout.wal);
  return { seq: header.seq };
}

/** The start of a file (its first record is all that is read of it). */
function firstBytes(file: string, n: number): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    return buf.toString('utf8', 0, readSync(fd, buf, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * The primary's WAL records up to the state a new follower starts from, streamed to disk (not held in
 * memory: a WAL can be large) and then named as the segment of its first record. Nothing is kept when
 * the primary cannot give them: the follower still starts, from its state, without the history.
 */
async function copyHistory(url: string, token: string, walDir: string): Promise<void> {
  mkdirSync(walDir, { recursive: true });
  const tmp = join(walDir, 'history.tmp');
  const ok = await new Promise<boolean>((resolve, reject) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return resolve(false);
      }
      const out = createWriteStream(tmp, { mode: 0o644 });
      res.pipe(out);
      out.on('finish', () => resolve(true));
      out.on('error', reject);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  const head = ok ? firstBytes(tmp, 65_536) : '';
  const first = head.includes('\n') ? decodeRecord<Command>(head.slice(0, head.indexOf('\n'))) : { error: 'empty' };
  if ('error' in first) return rmSync(tmp, { force: true });
  renameSync(tmp, join(walDir, segmentName(first.seq)));
}

/** Ask the primary whether it is fenced, and at which seq (null when it cannot be reached). */
export async function primaryFence(url: string, tokenFile: string): Promise<{ fenced: boolean; seq: number } | null> {
  try {
    const r = await call(`${url}/health`, readToken(tokenFile));
    if (r.status !== 200) return null;
    const h = JSON.parse(r.body) as { fenced?: boolean; seq: number };
    return { fenced: h.fenced === true, seq: h.seq };
  } catch {
    return null;
  }
}

/**
 * Why a data dir that already has state cannot follow this primary, or null when it can: its records
 * must be a prefix of the primary's. A primary's epoch began at `epochSince`; a follower that is past
 * that seq without having applied that epoch's record holds records the primary never wrote (it was a
 * primary that took writes after a forced promotion), and one ahead of the primary has them too.
 */
export function divergence(
  own: { seq: number; epoch: number; epochSince: number },
  primary: { seq: number; epoch: number; epochSince: number },
): string | null {
  if (own.epochSince !== primary.epochSince && own.seq >= primary.epochSince && primary.epochSince > own.epochSince)
    return `this data dir has records up to seq ${own.seq} from epoch ${own.epoch}, but the primary's epoch ${primary.epoch} began at seq ${primary.epochSince}: records ${primary.epochSince}..${own.seq} here were never the primary's (writes after a forced promotion); follow from a fresh data dir and keep this one for the investigation`;
  if (own.seq > primary.seq)
    return `this data dir is at seq ${own.seq}, past the primary's ${primary.seq}: it holds records the primary does not have; follow from a fresh data dir`;
  return null;
}

/** The primary's seq and epoch, as `GET /health` gives them (throws with the reason when it cannot be asked). */
export async function primaryEpoch(url: string, tokenFile: string): Promise<{ seq: number; epoch: number; epochSince: number }> {
  const r = await call(`${url}/health`, readToken(tokenFile));
  if (r.status !== 200) throw new Error(`GET ${url}/health answered ${r.status}`);
  const h = JSON.parse(r.body) as { seq: number; epoch?: number; epochSince?: number };
  return { seq: h.seq, epoch: h.epoch ?? 0, epochSince: h.epochSince ?? 0 };
}

/**
 * How old a record was when it was applied: its commit time on the primary to now (one host's clock, or
 * synchronised ones). A testnet's manual clock makes this meaningless: it reads 0 then.
 */
function ageMs(ts: number): number {
  const age = Date.now() - ts;
  return age >= 0 && age < 3_600_000 ? age : 0;
}

/**
 * A heartbeat comes behind every durable record it counts, so its durable seq is always applied here by
 * now: the lag is what the primary has made since (not yet on its disk, or not yet sent), and how long
 * the heartbeat took to get here.
 */
function heartbeat(status: NonNullable<EngineRuntime['following']>, seq: number, line: string): void {
  const hb = JSON.parse(line) as { seq: number; applied?: number; ts: number };
  status.lagRecords = Math.max(0, (hb.applied ?? hb.seq) - seq);
  status.lagMs = ageMs(hb.ts);
}

/**
 * Follow the primary's `GET /wal/stream` from the runtime's next seq, applying each record; reconnect
 * (resuming from the next seq) when the connection drops. A record whose CRC fails, or one that does not
 * follow on, stops the follower through `fail`: it never applies a stream it cannot trust.
 */
export function followPrimary(rt: EngineRuntime, url: string, tokenFile: string, fail: (e: Error) => void): () => void {
  let stopped = false;
  let current: IncomingMessage | undefined;
  let timer: NodeJS.Timeout | undefined;
  const status = rt.following as NonNullable<EngineRuntime['following']>;
  const connect = (): void => {
    if (stopped) return;
    let token: string;
    try {
      token = readToken(tokenFile);
    } catch {
      return retry();
    }
    const req = request(`${url}/wal/stream?from=${rt.seq + 1}`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return res.statusCode === 410
          ? fail(new Error(`the primary no longer has the records after seq ${rt.seq} (410): start this follower from a fresh data dir`))
          : retry();
      }
      current = res;
      status.connected = true;
      let rest = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (!handle(line)) return;
        }
      });
      res.on('end', retry);
      res.on('error', retry);
    });
    req.on('error', retry);
    req.end();
  };
  const retry = (): void => {
    status.connected = false;
    current = undefined;
    if (!stopped && timer === undefined) timer = setTimeout(() => ((timer = undefined), connect()), RECONNECT_MS);
  };
  const handle = (line: string): boolean => {
    if (stopped) return false;
    if (line.startsWith('{"type":"heartbeat"')) {
      heartbeat(status, rt.seq, line);
      return true;
    }
    const rec = decodeRecord<Command>(line);
    if ('error' in rec) {
      stop();
      fail(new Error(`the primary's stream sent a record this follower cannot trust after seq ${rt.seq}: ${rec.error}`));
      return false;
    }
    if (rec.seq <= rt.seq) return true;
    try {
      void rt.applyFollowed(rec.seq, rec.body);
      status.lagMs = ageMs(rec.body.ts);
    } catch (e) {
      stop();
      fail(e as Error);
      return false;
    }
    return true;
  };
  const stop = (): void => {
    stopped = true;
    if (timer) clearTimeout(timer);
    current?.destroy();
    status.connected = false;
  };
  connect();
  return stop;
}
