/**
 * `recoverctl dashboard`: a read-only web UI over a state dir's journals. It reads nothing else (no
 * engine, no network), so it can start beside a run or long after it. Each open run page is fed by a
 * follower of that run's journal: new whole records are rendered with the report's components and
 * pushed as server-sent events. Loopback only unless a token guards it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { buildIncident, detectionOf, latestEnd, type IncidentReport } from '../report/incident.js';
import { runSections, runsSection, type JournalHealth, type RunListItem } from '../report/live.js';
import { esc, type Section } from '../report/html.js';
import { REPORT_CSS } from '../report/theme.js';
import type { EventOf, RunEvent } from '../runner/events.js';
import { JournalFollower } from '../runner/follow.js';
import { isRunId, JOURNAL_FILE, runsDir } from '../runner/journal.js';
import { runStatus } from '../runner/status.js';
import { DASHBOARD_JS, page } from './assets.js';

export interface DashboardOptions {
  stateDir: string;
  /** 127.0.0.1 unless a token guards the dashboard. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  token?: string | null;
  /** How often journals are looked at for new records (a stat of a local file, not the engine). */
  pollMs?: number;
}

export interface Dashboard {
  /** The URL to open, with the token when there is one. */
  url: string;
  port: number;
  close(): Promise<void>;
}

const COOKIE = 'recoverctl_dashboard';
const HEARTBEAT_MS = 15_000;

/** Server-sent events to one browser, remembering what it was sent so only changed sections go again. */
interface Client {
  res: ServerResponse;
  sent: Map<string, string>;
}

/** The run a journal describes so far: its report, and what the page says about the journal itself. */
function viewOf(events: RunEvent[], f: JournalFollower, nowMs: number): { report: IncidentReport; health: JournalHealth } {
  const lastStart = events.findLast((e): e is EventOf<'run-start'> => e.event === 'run-start');
  const status = lastStart ? runStatus({ end: latestEnd(events), lastStart }) : 'starting';
  const live = status === 'running' || status === 'starting';
  // A run that stopped without its end is shown as it stopped: at its last record, not growing with the clock.
  const asOf = live ? nowMs : Date.parse(events[events.length - 1]?.ts ?? new Date(nowMs).toISOString());
  const report = buildIncident(events, detectionOf(events, { at: null, reason: null }), new Date(asOf), { soFar: status });
  const s = f.current;
  return { report, health: { status, records: events.length, tornBytes: s.tornBytes, corruptAtLine: s.corruptAtLine, truncations: s.truncations } };
}

/** One run's journal, followed while at least one browser watches it. */
class RunWatch {
  readonly follower: JournalFollower;
  readonly clients = new Set<Client>();
  private rendered: { sections: Section[]; records: number; live: boolean; title: string } | null = null;
  private renderedAt = 0;
  /** What the journal looked like when last rendered: a page request may poll in between, so poll()'s answer is not enough. */
  private renderedVersion = '';

  private version(): string {
    const s = this.follower.current;
    return `${s.events.length}:${s.tornBytes}:${s.corruptAtLine}:${s.truncations}`;
  }

  constructor(file: string) {
    this.follower = new JournalFollower(file);
  }

  /** Read new records; re-render when they came, or every second while the run is live (its RTO so far grows). */
  tick(nowMs: number): void {
    this.follower.poll();
    const changed = this.version() !== this.renderedVersion;
    if (!changed && this.rendered && !(this.rendered.live && nowMs - this.renderedAt >= 1_000)) return;
    this.render(nowMs);
    for (const c of this.clients) this.push(c);
  }

  render(nowMs: number): NonNullable<RunWatch['rendered']> {
    const events = this.follower.current.events;
    this.renderedVersion = this.version();
    this.renderedAt = nowMs;
    try {
      const { report, health } = viewOf(events, this.follower, nowMs);
      this.rendered = {
        sections: runSections(report, health, nowMs),
        records: events.length,
        live: health.status === 'running' || health.status === 'starting',
        title: `${health.status}: ${report.incident ?? report.playbook} (${report.run})`,
      };
    } catch (e) {
      // One run's journal the model cannot take must not stop the dashboard for every run.
      const message = `cannot show this run: ${(e as Error).message}`;
      this.rendered = { sections: [{ id: 'summary', html: `<p class="bad">${esc(message)}</p>` }], records: events.length, live: false, title: message };
    }
    return this.rendered;
  }

  push(c: Client): void {
    const r = this.rendered;
    if (!r) return;
    const changed: Record<string, string> = {};
    for (const s of r.sections) if (c.sent.get(s.id) !== s.html) changed[s.id] = s.html;
    for (const [id, html] of Object.entries(changed)) c.sent.set(id, html);
    sendEvent(c.res, 'view', { sections: changed, records: r.records, live: r.live, title: r.title });
  }
}

function sendEvent(res: ServerResponse, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** The run list, refreshed from each journal's new records; a run's status is looked at again every time (its process may die). */
class RunList {
  private readonly followers = new Map<string, { f: JournalFollower; item: RunListItem | null; version: string }>();
  readonly clients = new Set<Client>();
  private html = '';
  private readAt = -Infinity;
  private last: RunListItem[] = [];

  constructor(private readonly stateDir: string) {}

  /** Every run, read again at most once a second: only new records are parsed, only changed runs recomputed. */
  items(nowMs: number): RunListItem[] {
    if (nowMs - this.readAt < 1_000) return this.last;
    this.readAt = nowMs;
    let ids: string[] = [];
    try {
      ids = readdirSync(runsDir(this.stateDir)).filter(isRunId);
    } catch {
      // no runs folder yet: no runs
    }
    for (const id of this.followers.keys()) if (!ids.includes(id)) this.followers.delete(id);
    const items: RunListItem[] = [];
    for (const id of ids) {
      let entry = this.followers.get(id);
      if (!entry) this.followers.set(id, (entry = { f: new JournalFollower(join(runsDir(this.stateDir), id, JOURNAL_FILE)), item: null, version: '' }));
      entry.f.poll();
      const s = entry.f.current;
      const version = `${s.events.length}:${s.tornBytes}:${s.truncations}`;
      // A finished run's line changes only with its journal; an unfinished one's with the clock and its process.
      if (version !== entry.version || entry.item?.status === 'running' || entry.item?.status === 'starting') {
        entry.version = version;
        try {
          entry.item = listItem(id, entry.f, nowMs);
        } catch {
          entry.item = null;
        }
      }
      if (entry.item) items.push(entry.item);
    }
    this.last = items.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.run.localeCompare(b.run));
    return this.last;
  }

  tick(nowMs: number): void {
    const html = runsSection(this.items(nowMs), this.stateDir).html;
    if (html === this.html) return;
    this.html = html;
    for (const c of this.clients) sendEvent(c.res, 'view', { sections: { runs: html }, records: 0, live: true });
  }
}

function listItem(id: string, f: JournalFollower, nowMs: number): RunListItem | null {
  const events = f.current.events;
  const start = events[0];
  if (start?.event !== 'run-start') return null;
  const lastStart = events.findLast((e): e is EventOf<'run-start'> => e.event === 'run-start') ?? start;
  const ended = latestEnd(events);
  const status = runStatus({ end: ended, lastStart });
  const from = detectionOf(events, { at: null, reason: null }).at ?? start.ts;
  const until = ended ? Date.parse(ended.ts) : status === 'running' ? nowMs : Date.parse(events[events.length - 1]?.ts ?? start.ts);
  const done = new Set(events.filter((e) => (e.event === 'ok' || e.event === 'skip') && e.phase === 'main').map((e) => e.step));
  return {
    run: id,
    playbook: start.playbook,
    status,
    startedAt: start.ts,
    stepsDone: done.size,
    steps: start.steps.length,
    rtoMs: Math.max(0, until - Date.parse(from)),
    objective: start.rto,
    tornBytes: status === 'running' ? 0 : f.current.tornBytes,
  };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** `%` escapes decoded, or null for a malformed one (never a thrown URIError out of a request handler). */
function decoded(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** Every token the request carries: `?token=` (a fresh URL beats a stale cookie), a bearer header, this port's cookie. */
function presented(req: IncomingMessage, url: URL, cookie: string): string[] {
  const out: string[] = [];
  const query = url.searchParams.get('token');
  if (query !== null) out.push(query);
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) out.push(auth.slice(7));
  for (const c of (req.headers.cookie ?? '').split(';')) {
    const value = c.trim().startsWith(`${cookie}=`) ? decoded(c.trim().slice(cookie.length + 1)) : null;
    if (value !== null) out.push(value);
  }
  return out;
}

function sendText(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

/** Headers every answer carries: nothing cached, nothing framed, nothing loaded from elsewhere. */
const SECURITY_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
};

const TEXT = 'text/plain; charset=utf-8';
const HTML = 'text/html; charset=utf-8';

/** The HTTP side: who may ask (Host, token), what each path answers, and the event streams it feeds. */
class DashboardServer {
  readonly watches = new Map<string, RunWatch>();
  readonly list: RunList;
  readonly sockets = new Set<ServerResponse>();
  port = 0;
  private readonly token: Buffer | null;

  constructor(
    private readonly o: DashboardOptions,
    readonly host: string,
  ) {
    this.list = new RunList(o.stateDir);
    this.token = o.token ? digest(o.token) : null;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    try {
      this.answer(req, res);
    } catch (e) {
      // A bug shown as a 500 and logged, never a dashboard gone for everyone.
      process.stderr.write(`dashboard: ${req.method} ${req.url}: ${(e as Error).message}\n`);
      if (!res.headersSent) sendText(res, 500, TEXT, "internal error: see the dashboard's stderr\n");
      else res.end();
    }
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const bracketed = this.host.includes(':') ? `[${this.host}]` : this.host;
    const hosts = [`127.0.0.1:${this.port}`, `localhost:${this.port}`, `[::1]:${this.port}`, `${bracketed}:${this.port}`];
    // A page on another site that resolves its name to 127.0.0.1 (DNS rebinding) sends its own Host. With a
    // token that page has nothing to send, and a jump host or a port forward sends names of its own.
    if (!this.token && !hosts.includes(req.headers.host ?? '')) return sendText(res, 421, TEXT, 'wrong Host header\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, TEXT, 'read-only: GET only\n', { Allow: 'GET, HEAD' });
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (this.token && !this.admitted(req, res, url)) return;
    this.route(url, req, res);
  }

  /** The token checked; a first visit with `?token=` gets it as a cookie and is sent to the same page without it. */
  private admitted(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    // Cookies are shared by every port of a host: each dashboard has its own, so two never lock each other out.
    const cookie = `${COOKIE}_${this.port}`;
    const given = presented(req, url, cookie).find((t) => timingSafeEqual(digest(t), this.token as Buffer));
    if (given === undefined) {
      sendText(res, 401, TEXT, 'this dashboard needs its token: open the URL recoverctl dashboard printed\n');
      return false;
    }
    if (!url.searchParams.has('token')) return true;
    // Trade the token in the URL for a cookie, so it leaves the address bar and the history; the redirect
    // stays on this dashboard (a path like //elsewhere would leave it).
    url.searchParams.delete('token');
    res.setHeader('Set-Cookie', `${cookie}=${encodeURIComponent(given)}; HttpOnly; SameSite=Strict; Path=/`);
    sendText(res, 303, TEXT, 'see other\n', { Location: `/${url.pathname.replace(/^\/+/, '')}${url.search}` });
    return false;
  }

  private route(url: URL, req: IncomingMessage, res: ServerResponse): void {
    const { stateDir } = this.o;
    const path = url.pathname;
    if (path === '/assets/report.css') return sendText(res, 200, 'text/css; charset=utf-8', REPORT_CSS);
    if (path === '/assets/dashboard.js') return sendText(res, 200, 'text/javascript; charset=utf-8', DASHBOARD_JS);
    const runs = (): Section => runsSection(this.list.items(Date.now()), stateDir);
    if (path === '/')
      return sendText(res, 200, HTML, page({ title: `recoverctl: runs in ${stateDir}`, events: '/events', nav: '<h1>Recovery runs</h1>', sections: [runs()] }));
    if (path === '/events')
      return this.stream(req, res, this.list.clients, (c) => sendEvent(c.res, 'view', { sections: { runs: runs().html }, records: 0, live: true }));
    if (path === '/api/runs') return sendText(res, 200, 'application/json', `${JSON.stringify(this.list.items(Date.now()))}\n`);
    const m = /^\/(api\/)?runs\/([^/]+)(\/events)?$/.exec(path);
    const id = m ? (decoded(m[2] as string) ?? '') : '';
    if (!m || !isRunId(id)) return sendText(res, 404, TEXT, 'not found\n');
    const w = this.watches.get(id) ?? new RunWatch(join(runsDir(stateDir), id, JOURNAL_FILE));
    w.follower.poll();
    if (w.follower.current.events.length === 0 && !this.watches.has(id)) return sendText(res, 404, TEXT, `no run ${id} in ${stateDir}\n`);
    if (m[1]) return sendText(res, 200, 'application/json', `${JSON.stringify(viewOf(w.follower.current.events, w.follower, Date.now()).report, null, 2)}\n`);
    if (m[3]) {
      this.watches.set(id, w);
      return this.stream(req, res, w.clients, (c) => {
        w.render(Date.now());
        w.push(c);
      });
    }
    const r = w.render(Date.now());
    sendText(
      res,
      200,
      HTML,
      page({ title: r.title, events: `/runs/${encodeURIComponent(id)}/events`, nav: '<a href="/">← all runs</a>', sections: r.sections }),
    );
  }

  /** An event stream: registered with its watch until the browser goes; the first event is the whole view. */
  private stream(req: IncomingMessage, res: ServerResponse, clients: Set<Client>, first: (c: Client) => void): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    const c: Client = { res, sent: new Map() };
    clients.add(c);
    this.sockets.add(res);
    first(c);
    req.on('close', () => {
      clients.delete(c);
      this.sockets.delete(res);
    });
  }

  /** Every watched journal read again; watches nobody looks at any more are dropped. */
  tick(): void {
    const now = Date.now();
    for (const [id, w] of this.watches) {
      if (w.clients.size === 0) this.watches.delete(id);
      else w.tick(now);
    }
    if (this.list.clients.size) this.list.tick(now);
  }
}

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const host = o.host ?? '127.0.0.1';
  const d = new DashboardServer(o, host);
  const server: Server = createServer((req, res) => d.handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  d.port = (server.address() as AddressInfo).port;
  const poller = setInterval(() => d.tick(), o.pollMs ?? 250);
  const heartbeat = setInterval(() => {
    for (const res of d.sockets) res.write(': keep-alive\n\n');
  }, HEARTBEAT_MS);
  // A wildcard bind is reached by the machine's name, not by 0.0.0.0.
  const named = host === '0.0.0.0' || host === '::' ? hostname() : host;
  const shown = named.includes(':') ? `[${named}]` : named;
  return {
    url: `http://${shown}:${d.port}/${o.token ? `?token=${encodeURIComponent(o.token)}` : ''}`,
    port: d.port,
    async close() {
      clearInterval(poller);
      clearInterval(heartbeat);
      for (const res of d.sockets) res.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
