import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { firstLine } from '../util/text.js';

/** A browser failure as one line for a user: what Chromium did, not a protocol dump. */
export class BrowserError extends Error {
  override readonly name = 'BrowserError';
}

const CANDIDATES = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'];

/** `RECOVERCTL_CHROMIUM` as given (so an error names a wrong path), else the first Chromium on PATH, else null. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.RECOVERCTL_CHROMIUM) return env.RECOVERCTL_CHROMIUM;
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    for (const name of CANDIDATES) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        // Not here: try the next.
      }
    }
  }
  return null;
}

/** Headless and quiet: without the networking flags Chromium keeps calling Google on a closed network. */
function chromiumArgs(profileDir: string): string[] {
  return [
    '--remote-debugging-pipe',
    '--headless',
    ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-quic',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-extensions',
    '--hide-scrollbars',
    '--mute-audio',
    `--user-data-dir=${profileDir}`,
    'about:blank',
  ];
}

/** Chromium may still be writing its profile as it dies, hence the retries. */
function removeProfile(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
}

const STDERR_TAIL_BYTES = 4096;

interface CdpMessage {
  id?: number;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: { message?: string };
  sessionId?: string;
}

interface Pending {
  method: string;
  resolve: (result: unknown) => void;
  reject: (error: BrowserError) => void;
  timer: NodeJS.Timeout;
}

type Listener = (params: unknown, sessionId: string | undefined) => void;

/** One headless Chromium, driven over the DevTools protocol on a pipe (fd 3 in, fd 4 out; NUL-terminated JSON). */
export class Browser {
  readonly pid: number;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly input: Writable;
  private unread: Buffer = Buffer.alloc(0);
  private stderrTail = '';
  /** Why the process is gone, once it is; every later call fails with it. */
  private goneReason: string | null = null;
  private readonly gone: Promise<void>;
  private closing: Promise<void> | null = null;
  /** A test that crashes before close() must not leave Chromium running, nor (if it can help it) its profile. */
  private readonly killOnExit = (): void => {
    if (this.goneReason === null) this.child.kill('SIGKILL');
    // Its helper processes outlive it by some milliseconds and may write there meanwhile; no event loop is left to wait
    // on, so this waits by blocking, for at most half a second.
    for (let attempt = 0; attempt < 10 && existsSync(this.profileDir); attempt++) {
      try {
        removeProfile(this.profileDir);
      } catch {
        // Still being written: try again.
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  };

  private constructor(
    private readonly child: ChildProcess,
    private readonly executable: string,
    private readonly profileDir: string,
    private readonly timeoutMs: number,
  ) {
    this.pid = child.pid ?? -1;
    // stdio[3] and [4] are pipes: the stdio option of launch() asks for them.
    this.input = child.stdio[3] as Writable;
    const output = child.stdio[4] as Readable;
    // A write to a dead Chromium fails with EPIPE; the exit handler already reports it, with the better reason.
    this.input.on('error', () => undefined);
    output.on('error', () => undefined);
    output.on('data', (chunk: Buffer) => this.receive(chunk));
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    this.gone = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.fail(signal ? `was killed by ${signal}` : `exited with code ${code}`);
        resolve();
      });
      child.once('error', (e) => {
        this.fail(`could not be started (${e.message})`);
        resolve();
      });
    });
    process.on('exit', this.killOnExit);
  }

  /** Starts Chromium and waits until it answers; on any failure nothing is left behind (process or profile). */
  static async launch(opts: { executable?: string; timeoutMs?: number } = {}): Promise<Browser> {
    const executable = opts.executable ?? findChromium();
    if (executable === null) throw new BrowserError('no Chromium found: install chromium (Debian: apt-get install chromium) or set RECOVERCTL_CHROMIUM');
    const profileDir = mkdtempSync(join(tmpdir(), 'recoverctl-chromium-'));
    const child = spawn(executable, chromiumArgs(profileDir), { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    const browser = new Browser(child, executable, profileDir, opts.timeoutMs ?? 30_000);
    try {
      await browser.send('Browser.getVersion');
    } catch (e) {
      await browser.terminate(false);
      throw e;
    }
    return browser;
  }

  /** A protocol call; on the browser itself, or on a page's session when `sessionId` is given. */
  send<T = unknown>(method: string, params: object = {}, sessionId?: string): Promise<T> {
    if (this.goneReason !== null) return Promise.reject(new BrowserError(this.goneMessage(method)));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BrowserError(`chromium did not answer within ${this.timeoutMs / 1000}s (${method})`));
      }, this.timeoutMs);
      this.pending.set(id, { method, resolve: resolve as (result: unknown) => void, reject, timer });
      this.input.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  }

  /** Calls `listener` for every event named `method` until the returned function is called. */
  on<P = unknown>(method: string, listener: (params: P, sessionId: string | undefined) => void): () => void {
    const set = this.listeners.get(method) ?? new Set<Listener>();
    this.listeners.set(method, set);
    set.add(listener as Listener);
    return () => set.delete(listener as Listener);
  }

  /** A new tab with its own session, reporting page, console and log events, at the given viewport. */
  async newPage(opts: { width?: number; height?: number } = {}): Promise<Page> {
    const { targetId } = await this.send<{ targetId: string }>('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
    // Listening before the domains are enabled, so no early console error is missed.
    const page = new Page(this, targetId, sessionId);
    await Promise.all([
      this.send('Page.enable', {}, sessionId),
      this.send('Runtime.enable', {}, sessionId),
      this.send('Log.enable', {}, sessionId),
      this.send(
        'Emulation.setDeviceMetricsOverride',
        { width: opts.width ?? 1280, height: opts.height ?? 900, deviceScaleFactor: 1, mobile: false },
        sessionId,
      ),
    ]);
    return page;
  }

  /** Asks Chromium to quit, kills it if it has not within 3 s, and removes its profile. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.terminate(true);
    return this.closing;
  }

  private async terminate(graceful: boolean): Promise<void> {
    if (this.goneReason === null && graceful) {
      // Chromium may exit before it answers; that is the point.
      this.send('Browser.close').catch(() => undefined);
      await Promise.race([this.gone, new Promise((r) => setTimeout(r, 3000).unref())]);
    }
    if (this.goneReason === null) this.child.kill('SIGKILL');
    await this.gone;
    process.off('exit', this.killOnExit);
    removeProfile(this.profileDir);
  }

  private goneMessage(method: string): string {
    const tail = this.stderrTail.trim().split('\n').pop()?.trim();
    return `chromium (${this.executable}) ${this.goneReason} before it answered ${method}${tail ? `: ${tail}` : ''}`;
  }

  private fail(reason: string): void {
    this.goneReason ??= reason;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new BrowserError(this.goneMessage(p.method)));
    }
  }

  private receive(chunk: Buffer): void {
    this.unread = this.unread.length ? Buffer.concat([this.unread, chunk]) : chunk;
    let end: number;
    while ((end = this.unread.indexOf(0)) !== -1) {
      const frame = this.unread.subarray(0, end).toString('utf8');
      this.unread = this.unread.subarray(end + 1);
      let msg: CdpMessage;
      try {
        msg = JSON.parse(frame) as CdpMessage;
      } catch {
        // Nothing later on the pipe can be trusted either: end it here, as a failure of every pending call.
        this.fail('sent a message that is not JSON');
        this.child.kill('SIGKILL');
        return;
      }
      this.dispatch(msg);
    }
  }

  private dispatch(msg: CdpMessage): void {
    if (msg.id !== undefined) {
      const p = this.pending.get(msg.id);
      if (!p) return; // Timed out already.
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new BrowserError(`${p.method}: ${msg.error.message ?? JSON.stringify(msg.error)}`));
      else p.resolve(msg.result);
    } else if (msg.method !== undefined) {
      for (const listener of this.listeners.get(msg.method) ?? []) listener(msg.params, msg.sessionId);
    }
  }
}

interface RemoteObject {
  value?: unknown;
  description?: string;
}

interface ExceptionDetails {
  text?: string;
  exception?: RemoteObject;
}

/** What an exception says about itself: its description (message and stack) when it has one. */
const exceptionText = (d: ExceptionDetails): string => d.exception?.description ?? d.text ?? 'exception';

/** A tab of a Browser, on its own flattened session. */
export class Page {
  /** Console errors, failed assertions, uncaught exceptions and error log entries, in the order they came. */
  readonly consoleErrors: string[] = [];
  private readonly unsubscribe: (() => void)[];

  /** Made by Browser.newPage, which also enables the domains these events come from. */
  constructor(
    private readonly browser: Browser,
    readonly targetId: string,
    readonly sessionId: string,
  ) {
    const mine =
      <P>(fn: (params: P) => void) =>
      (params: P, sessionId: string | undefined) => {
        if (sessionId === this.sessionId) fn(params);
      };
    this.unsubscribe = [
      browser.on<{ type: string; args: RemoteObject[] }>(
        'Runtime.consoleAPICalled',
        mine((p) => {
          if (p.type === 'error' || p.type === 'assert') {
            this.consoleErrors.push(p.args.map((a) => (a.value !== undefined ? String(a.value) : (a.description ?? ''))).join(' '));
          }
        }),
      ),
      browser.on<{ exceptionDetails: ExceptionDetails }>(
        'Runtime.exceptionThrown',
        mine((p) => this.consoleErrors.push(exceptionText(p.exceptionDetails))),
      ),
      browser.on<{ entry: { level: string; text: string; url?: string } }>(
        'Log.entryAdded',
        mine((p) => {
          if (p.entry.level === 'error') this.consoleErrors.push(p.entry.url ? `${p.entry.text} (${p.entry.url})` : p.entry.text);
        }),
      ),
    ];
  }

  /** Opens `url` and waits for its load event. */
  async goto(url: string, timeoutMs = 30_000): Promise<void> {
    let off = (): void => undefined;
    let timer: NodeJS.Timeout | undefined;
    // Listening before navigating: a small page can fire its load event before Page.navigate's answer arrives.
    const loaded = new Promise<void>((resolve) => {
      off = this.browser.on('Page.loadEventFired', (_params, sessionId) => {
        if (sessionId === this.sessionId) resolve();
      });
    });
    const navigated = async (): Promise<void> => {
      const nav = await this.send<{ errorText?: string }>('Page.navigate', { url });
      if (nav.errorText) throw new BrowserError(`could not open ${url}: ${nav.errorText}`);
      await loaded;
    };
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new BrowserError(`${url} did not finish loading within ${timeoutMs / 1000}s`)), timeoutMs);
    });
    try {
      await Promise.race([navigated(), late]);
    } finally {
      off();
      clearTimeout(timer);
    }
  }

  /** The value of a JavaScript expression in the page (a promise is awaited); an exception in it is a BrowserError. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send<{ result: RemoteObject; exceptionDetails?: ExceptionDetails }>('Runtime.evaluate', {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    if (r.exceptionDetails) throw new BrowserError(firstLine(exceptionText(r.exceptionDetails)));
    return r.result.value as T;
  }

  /** Polls `expression` until it is truthy. */
  async waitFor(expression: string, timeoutMs = 10_000, intervalMs = 50): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.evaluate<unknown>(expression))) {
      if (Date.now() >= deadline) throw new BrowserError(`timed out after ${timeoutMs}ms waiting for: ${expression}`);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  /** A PNG of the viewport, or of the whole page with `fullPage`. */
  async screenshot(opts: { fullPage?: boolean } = {}): Promise<Buffer> {
    let clip = {};
    if (opts.fullPage) {
      const m = await this.send<{ cssContentSize: { width: number; height: number } }>('Page.getLayoutMetrics');
      const size = { width: Math.ceil(m.cssContentSize.width), height: Math.ceil(m.cssContentSize.height) };
      clip = { clip: { x: 0, y: 0, ...size, scale: 1 }, captureBeyondViewport: true };
    }
    const { data } = await this.send<{ data: string }>('Page.captureScreenshot', { format: 'png', ...clip });
    return Buffer.from(data, 'base64');
  }

  /** The page printed as Chromium prints it (print media, A4 unless the page's CSS says otherwise), with backgrounds. */
  async pdf(): Promise<Buffer> {
    const { data } = await this.send<{ data: string }>('Page.printToPDF', { printBackground: true, preferCSSPageSize: true });
    return Buffer.from(data, 'base64');
  }

  /** Media type and colour scheme as the page's CSS sees them; an option left out goes back to the default. */
  async emulateMedia(opts: { colorScheme?: 'light' | 'dark'; media?: 'screen' | 'print' }): Promise<void> {
    await this.send('Emulation.setEmulatedMedia', {
      media: opts.media ?? '',
      features: [{ name: 'prefers-color-scheme', value: opts.colorScheme ?? '' }],
    });
  }

  async close(): Promise<void> {
    for (const off of this.unsubscribe) off();
    await this.browser.send('Target.closeTarget', { targetId: this.targetId });
  }

  private send<T>(method: string, params: object = {}): Promise<T> {
    return this.browser.send<T>(method, params, this.sessionId);
  }
}

const ESCAPES: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, b: 0x08, f: 0x0c };

/** The bytes of a PDF literal string whose `(` is just before `start`: escapes undone, balanced parentheses kept. */
function literalBytes(s: string, start: number): number[] | null {
  const out: number[] = [];
  let depth = 1;
  for (let i = start; i < s.length; i++) {
    const ch = s[i] as string;
    if (ch === '\\') {
      const octal = /^[0-7]{1,3}/.exec(s.slice(i + 1, i + 4))?.[0];
      const next = s[++i] ?? '';
      if (octal) {
        out.push(parseInt(octal, 8) & 0xff);
        i += octal.length - 1;
      } else if (next === '\r' || next === '\n') {
        if (next === '\r' && s[i + 1] === '\n') i++; // A backslash before a line break continues the line.
      } else {
        out.push(ESCAPES[next] ?? next.charCodeAt(0));
      }
    } else if (ch === ')' && --depth === 0) {
      return out;
    } else {
      if (ch === '(') depth++;
      out.push(ch.charCodeAt(0));
    }
  }
  return null;
}

/** A PDF text string as text: UTF-16BE or UTF-8 behind their byte-order marks, else PDFDocEncoding (read as Latin-1, its near twin). */
function decodePdfText(bytes: number[]): string {
  const b = Buffer.from(bytes);
  if (b[0] === 0xfe && b[1] === 0xff)
    return Buffer.from(b.subarray(2, b.length - (b.length % 2)))
      .swap16()
      .toString('utf16le');
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return b.subarray(3).toString('utf8');
  return b.toString('latin1');
}

/**
 * The `/Title` of a PDF's Info dictionary (the one the trailer names), or null. Chromium writes an ASCII title as a
 * literal string (`(Plain \(escaped\) title)`) and any other as UTF-16BE hex (`<FEFF0049…>`); both are read.
 */
export function pdfTitle(pdf: Buffer): string | null {
  const s = pdf.toString('latin1');
  const info = [...s.matchAll(/\/Info\s+(\d+)\s+(\d+)\s+R/g)].pop();
  if (!info) return null;
  const objStart = s.search(new RegExp(`(^|[^\\d])${info[1]}\\s+${info[2]}\\s+obj\\b`));
  if (objStart === -1) return null;
  const objEnd = s.indexOf('endobj', objStart);
  const obj = s.slice(objStart, objEnd === -1 ? undefined : objEnd);
  const title = /\/Title\s*([(<])/.exec(obj);
  if (!title) return null;
  const valueStart = title.index + title[0].length;
  if (title[1] === '(') {
    const bytes = literalBytes(obj, valueStart);
    return bytes && decodePdfText(bytes);
  }
  const hex = /^([0-9A-Fa-f\s]*)>/.exec(obj.slice(valueStart))?.[1]?.replace(/\s+/g, '');
  if (hex === undefined) return null;
  return decodePdfText([...Buffer.from(hex.length % 2 ? `${hex}0` : hex, 'hex')]);
}

/** Prints a self-contained HTML file to PDF with a headless Chromium that is gone again when this returns. */
export async function printToPdf(htmlFile: string, pdfFile: string, opts: { executable?: string } = {}): Promise<void> {
  const browser = await Browser.launch(opts);
  try {
    const page = await browser.newPage();
    await page.goto(pathToFileURL(htmlFile).href);
    writeFileSync(pdfFile, await page.pdf());
  } finally {
    await browser.close();
  }
}
