import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { LockHeldError } from '../errors.js';
import { isPidAlive } from '../util/pid.js';

export { isPidAlive };

export interface LockHolder {
  pid: number;
  runId: string;
  host: string;
  playbook: string;
  since: string;
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.runId !== 'string') return undefined;
    return {
      pid: parsed.pid,
      runId: parsed.runId,
      host: parsed.host ?? '?',
      playbook: parsed.playbook ?? '?',
      since: parsed.since ?? '?',
    };
  } catch {
    return undefined;
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return Infinity;
  }
}

/** A short synchronous pause (the lock is taken before anything else runs). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A takeover marker left by a process that died mid-takeover is cleared after a while. */
function removeIfOlder(path: string, ms: number): void {
  try {
    if (Date.now() - statSync(path).mtimeMs > ms) unlinkSync(path);
  } catch {
    // gone already
  }
}

/**
 * An exclusive lock file (O_EXCL) naming its holder. A lock whose holder pid is dead on this host
 * is stale and taken over; a live holder is named in the error.
 */
export class RunLock {
  private held = false;

  private constructor(
    readonly path: string,
    readonly holder: LockHolder,
  ) {}

  static acquire(path: string, holder: Omit<LockHolder, 'host' | 'since'>): RunLock {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const me: LockHolder = { ...holder, host: hostname(), since: new Date().toISOString() };
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        writeSync(fd, `${JSON.stringify(me)}\n`);
        closeSync(fd);
        const lock = new RunLock(path, me);
        lock.held = true;
        return lock;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const other = readHolder(path);
      if (other && other.host === me.host && isPidAlive(other.pid) && other.pid !== process.pid) {
        throw new LockHeldError(`${path}: locked by run ${other.runId} (pid ${other.pid}, since ${other.since}); wait for it or stop it first`);
      }
      if (other && other.host !== me.host) {
        throw new LockHeldError(`${path}: locked by run ${other.runId} on host ${other.host} (pid ${other.pid}); remove the file only if that run is gone`);
      }
      if (!other && ageMs(path) < 1_000) {
        // Probably being written by its creator this very moment: look again shortly.
        pause(20);
        continue;
      }
      // Stale (dead pid, or an unreadable file left by a crash). Takeovers are serialised by a second O_EXCL
      // file, so two processes cannot both remove the stale lock and each create their own.
      const takeover = `${path}.takeover`;
      let fd: number;
      try {
        fd = openSync(takeover, 'wx', 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        removeIfOlder(takeover, 10_000);
        pause(20);
        continue;
      }
      try {
        const again = readHolder(path);
        const same = again?.pid === other?.pid && again?.runId === other?.runId;
        if (same) unlinkSync(path);
      } catch {
        // gone already
      } finally {
        closeSync(fd);
        unlinkSync(takeover);
      }
    }
    throw new LockHeldError(`${path}: could not take the lock (contended)`);
  }

  /** Who holds the lock now, without taking it: a live holder on this host, or one on another host. */
  static holder(path: string): LockHolder | undefined {
    const other = readHolder(path);
    if (!other) return undefined;
    if (other.host !== hostname()) return other;
    return isPidAlive(other.pid) && other.pid !== process.pid ? other : undefined;
  }

  /** Remove the lock if it is still ours. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    const current = readHolder(this.path);
    if (current && current.pid === this.holder.pid && current.runId === this.holder.runId) {
      try {
        unlinkSync(this.path);
      } catch {
        // already gone
      }
    }
  }
}
