import { join } from 'node:path';

/**
 * The layout of an engine's data dir (docs/engine.md), shared by the engine, its supervisor and every
 * step or command that reads it: each path into a data dir is made here, nowhere else.
 */
export function dataDirLayout(dir: string) {
  return {
    /** The control API's bearer token (0600). */
    token: join(dir, 'control.token'),
    /** The running engine's pid, url and start time, written by the supervisor. */
    info: join(dir, 'engine.json'),
    /** Held by the engine process: one engine per data dir. */
    engineLock: join(dir, 'engine.lock'),
    log: join(dir, 'engine.log'),
    /** Held by a recoverctl run: one run per engine. */
    runLock: join(dir, 'recoverctl.lock'),
    wal: join(dir, 'wal'),
    snapshots: join(dir, 'snapshots'),
    modules: join(dir, 'modules'),
    /** Which module version is active for each component. */
    activeModules: join(dir, 'active.json'),
    /**
     * Left by a forced promotion of this engine's standby (`{"epoch": N, "by": URL}`): a primary that
     * starts on this data dir journals a fence at that epoch before it takes any write.
     */
    fenceMarker: join(dir, 'fenced-by.json'),
  };
}
