import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ORDER_BATCH_MAX, type AccountView, type InstrumentsAnswer } from '../contract/control-api.js';
import { avgPriceOf, ratioText, uniMMROf } from './exchange.js';
import { DecimalError, fmtMoney, fmtPrice, fmtQty, MONEY_DECIMALS, parseFixed, parseUnits, PRICE_DECIMALS, QTY_DECIMALS } from './fixed.js';
import { instrumentViews, isAsset, isSymbol, INSTRUMENTS, type Symbol as InstrumentSymbol } from './instruments.js';
import { renderBookQuality } from './metrics.js';
import { EngineRefusal, type EngineRuntime } from './runtime.js';
import { PHASES, type Command, type OrderRequest, type OrderResult, type Phase } from './types.js';
import { fencePrimary, primaryFence } from './follower.js';
import { dataDirLayout } from '../util/data-dir.js';

const MAX_BODY = 1 << 20;
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The request's bytes, by events: an async iterator per request cost order entry a twentieth of its time. */
function readBytes(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BadRequest('request body over 1 MiB', 413));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const bytes = await readBytes(req);
  if (bytes.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new BadRequest('body is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadRequest('body must be a JSON object');
  return parsed as Record<string, unknown>;
}

const ACCOUNT_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

function str(body: Record<string, unknown>, key: string, required = true): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) {
    if (required) throw new BadRequest(`missing ${key}`);
    return undefined;
  }
  if (typeof v !== 'string') throw new BadRequest(`${key} must be a string`);
  return v;
}

function bool(body: Record<string, unknown>, key: string): boolean {
  const v = body[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new BadRequest(`${key} must be true or false`);
  return v;
}

function decimal(text: string, decimals: number, key: string): number {
  try {
    return parseUnits(text, decimals);
  } catch (e) {
    throw new BadRequest(`${key}: ${e instanceof DecimalError ? e.message : 'not a decimal'}`);
  }
}

export function parseOrderRequest(body: Record<string, unknown>): OrderRequest {
  const account = str(body, 'account') as string;
  if (!ACCOUNT_RE.test(account) || account.startsWith('@')) throw new BadRequest('account must be 1-64 of [A-Za-z0-9_.:-], not starting with @');
  const symbol = str(body, 'symbol');
  if (!isSymbol(symbol)) throw new BadRequest(`unknown symbol ${JSON.stringify(symbol)} (${Object.keys(INSTRUMENTS).join(', ')})`);
  const side = str(body, 'side');
  if (side !== 'buy' && side !== 'sell') throw new BadRequest('side must be buy or sell');
  const type = str(body, 'type');
  if (type !== 'limit' && type !== 'market') throw new BadRequest('type must be limit or market');
  const priceText = str(body, 'price', false);
  const price = priceText === undefined ? undefined : decimal(priceText, PRICE_DECIMALS, 'price');
  const qty = decimal(str(body, 'qty') as string, QTY_DECIMALS, 'qty');
  const tifText = str(body, 'tif', false) ?? (type === 'market' ? 'IOC' : 'GTC');
  if (tifText !== 'GTC' && tifText !== 'IOC' && tifText !== 'FOK' && tifText !== 'GTX') throw new BadRequest('tif must be GTC, IOC, FOK or GTX');
  // GTX (good till crossing) is Binance's name for a post-only GTC order.
  const tif = tifText === 'GTX' ? 'GTC' : tifText;
  const stp = str(body, 'stp', false) ?? 'expire-maker';
  if (stp !== 'none' && stp !== 'expire-taker' && stp !== 'expire-maker' && stp !== 'expire-both')
    throw new BadRequest('stp must be none, expire-taker, expire-maker or expire-both');
  const marginMode = str(body, 'marginMode', false) ?? 'cross';
  if (marginMode !== 'cross' && marginMode !== 'isolated') throw new BadRequest('marginMode must be cross or isolated');
  const clientOrderId = str(body, 'clientOrderId', false) ?? null;
  if (clientOrderId !== null && clientOrderId.length > 64) throw new BadRequest('clientOrderId is at most 64 characters');
  const postOnly = tifText === 'GTX' || bool(body, 'postOnly');
  return { account, symbol, side, type, price, qty, tif, postOnly, reduceOnly: bool(body, 'reduceOnly'), marginMode, clientOrderId, stp };
}

function orderAnswer(r: OrderResult): Record<string, unknown> {
  return {
    id: r.id,
    status: r.status,
    filled: fmtQty(r.filled),
    avgPrice: r.avgPrice === null ? null : fmtPrice(r.avgPrice),
    ...(r.reason ? { reason: r.reason } : {}),
    ...(r.message ? { message: r.message } : {}),
  };
}

function tokenMatches(header: string | undefined, token: Buffer): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7));
  // Constant time: compare equal-length buffers, and still spend the comparison on a wrong length.
  if (given.length !== token.length) {
    timingSafeEqual(token, token);
    return false;
  }
  return timingSafeEqual(given, token);
}

export interface ServerOptions {
  runtime: EngineRuntime;
  token: string;
  onCrash: () => void;
}

/** One request as a handler sees it: the path's parameters already decoded and validated. */
interface RouteCall {
  req: IncomingMessage;
  res: ServerResponse;
  rt: EngineRuntime;
  params: string[];
  onCrash: () => void;
}

interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  /** An exact path, or a pattern whose groups are the parameters. */
  path: string | RegExp;
  /** Decodes the groups; runs on a path match whatever the method, so a bad id is 400 before 404. */
  params?: (groups: string[]) => string[];
  handle: (call: RouteCall) => Promise<void> | void;
}

const ORDER_PATH = /^\/orders\/([0-9]{1,20})$/;
const ACCOUNT_PATH = /^\/accounts\/([^/]+)$/;
const DEPOSIT_PATH = /^\/accounts\/([^/]+)\/deposit$/;

function orderIdParam([digits]: string[]): string[] {
  return [(digits as string).padStart(12, '0')];
}

function accountIdParam([encoded]: string[]): string[] {
  let id: string;
  try {
    id = decodeURIComponent(encoded as string);
  } catch {
    throw new BadRequest('bad percent-encoding in the account id');
  }
  // System accounts (@external, @fees, @insurance) can be read, not credited.
  if (!ACCOUNT_RE.test(id.startsWith('@') ? id.slice(1) : id)) throw new BadRequest('bad account id');
  return [id];
}

function sendMetrics({ rt, res }: RouteCall): void {
  const text = rt.metrics.render({
    phase: rt.ex.phase,
    queueDepth: rt.queueDepth,
    admissionWeight: rt.ex.admissionWeight,
    seq: rt.seq,
    openOrders: rt.openOrderCount(),
    retainedOrders: rt.ex.orders.size,
    walSyncs: rt.walSyncs,
  });
  // Book quality per symbol (issue 13) after the engine's own metrics.
  const books = renderBookQuality(rt.ex.books);
  // Volume, funding, mark and index, open interest and the insurance fund: the dashboards' figures.
  const figures = `${rt.figures.render(rt.ex).join('\n')}\n`;
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
  res.end(text + books + figures);
}

async function placeOrder({ req, res, rt }: RouteCall): Promise<void> {
  const order = parseOrderRequest(await readBody(req));
  send(res, 200, orderAnswer(await rt.placeOrder(order)));
}

/**
 * Up to 100 orders, decided in the order given and answered one by one (a malformed one is an `error`
 * entry, not a failed batch). Every accepted order is committed before any is awaited, in one event-loop
 * turn, so the batch goes to the WAL as one group: one write and one fsync. The answer comes once all are durable.
 */
async function placeOrders({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  const list = body.orders;
  if (!Array.isArray(list) || list.length === 0 || list.length > ORDER_BATCH_MAX) throw new BadRequest(`orders: an array of 1 to ${ORDER_BATCH_MAX} orders`);
  const answers = list.map((o: unknown): Promise<Record<string, unknown>> => {
    let order: ReturnType<typeof parseOrderRequest>;
    try {
      if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new BadRequest('an order is a JSON object');
      order = parseOrderRequest(o as Record<string, unknown>);
    } catch (e) {
      if (e instanceof BadRequest) return Promise.resolve({ error: e.message });
      throw e;
    }
    return rt.placeOrder(order).then(orderAnswer);
  });
  send(res, 200, { results: await Promise.all(answers) });
}

function getOrder({ res, rt, params: [id] }: RouteCall): void {
  const ord = rt.ex.orders.get(id as string);
  if (!ord) return send(res, 404, { error: `no order ${id}` });
  const avgPrice = avgPriceOf(ord);
  send(res, 200, {
    id: ord.id,
    account: ord.account,
    symbol: ord.symbol,
    side: ord.side,
    type: ord.type,
    price: ord.type === 'market' ? null : fmtPrice(ord.price),
    qty: fmtQty(ord.qty),
    filled: fmtQty(ord.filled),
    status: ord.status,
    avgPrice: avgPrice === null ? null : fmtPrice(avgPrice),
  });
}

async function deposit({ req, res, rt, params: [id] }: RouteCall): Promise<void> {
  const account = id as string;
  if (account.startsWith('@')) throw new BadRequest('system accounts take no deposits');
  const body = await readBody(req);
  const asset = str(body, 'asset');
  if (!isAsset(asset)) throw new BadRequest('asset must be USDT or USDC');
  const amountText = str(body, 'amount') as string;
  let amount: bigint;
  try {
    amount = parseFixed(amountText, MONEY_DECIMALS);
  } catch (e) {
    throw new BadRequest(`amount: ${(e as Error).message}`);
  }
  if (amount <= 0n || amount > 10n ** 20n) throw new BadRequest('amount must be positive and at most 1e12');
  await rt.deposit(account, asset, amountText);
  send(res, 200, accountView(rt, account));
}

function getAccount({ res, rt, params: [id] }: RouteCall): void {
  if (!rt.ex.accounts.has(id as string)) return send(res, 404, { error: `no account ${id}` });
  send(res, 200, accountView(rt, id as string));
}

async function setPhase({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  const phase = str(body, 'phase') as Phase;
  if (!PHASES.includes(phase)) throw new BadRequest(`phase must be one of ${PHASES.join(', ')}`);
  await rt.setPhase(phase, str(body, 'reason', false) ?? null);
  send(res, 200, { phase: rt.ex.phase, reason: rt.ex.reason });
}

async function setAdmission({ req, res, rt }: RouteCall): Promise<void> {
  const w = (await readBody(req)).weight;
  if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 100) throw new BadRequest('weight must be an integer 0..100');
  await rt.setAdmission(w);
  send(res, 200, { admissionWeight: rt.ex.admissionWeight });
}

async function activateModule({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  send(res, 200, await rt.activate(str(body, 'component') as string, str(body, 'version') as string));
}

async function rollbackModule({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  send(res, 200, await rt.rollback(str(body, 'component') as string));
}

async function streamState({ res, rt }: RouteCall): Promise<void> {
  const lines = await rt.durableStateLines();
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256');
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  for (let i = 0; i < lines.length; i += 1000) {
    const chunk = `${lines.slice(i, i + 1000).join('\n')}\n`;
    hash.update(chunk);
    if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
  }
  res.end(`${JSON.stringify({ type: 'trailer', records: lines.length - 1, sha256: hash.digest('hex') })}\n`);
}

/** `POST /testnet/index {"prices": {"BTCUSDT": "60000"}}`: a testnet's index prices, set by a test or a smoke suite. */
async function setTestnetIndex({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  const raw = body.prices;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new BadRequest('prices must be an object of symbol: decimal string');
  const prices: Partial<Record<InstrumentSymbol, number>> = {};
  for (const [symbol, text] of Object.entries(raw as Record<string, unknown>)) {
    if (!isSymbol(symbol)) throw new BadRequest(`unknown symbol ${JSON.stringify(symbol)}`);
    if (typeof text !== 'string') throw new BadRequest(`prices.${symbol} must be a decimal string`);
    const p = decimal(text, PRICE_DECIMALS, `prices.${symbol}`);
    if (p <= 0) throw new BadRequest(`prices.${symbol} must be positive`);
    prices[symbol] = p;
  }
  await rt.setIndex(prices);
  const h = rt.health();
  send(res, 200, { marks: h.marks, index: h.index });
}

async function recomputeFunding({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  const from = Date.parse(str(body, 'from') as string);
  const to = Date.parse(str(body, 'to') as string);
  if (Number.isNaN(from) || Number.isNaN(to) || to < from) throw new BadRequest('from and to must be ISO times, from <= to');
  send(res, 200, await rt.recomputeFunding(from, to));
}

async function injectFault({ req, res, rt, onCrash }: RouteCall): Promise<void> {
  const body = await readBody(req);
  const kind = str(body, 'kind');
  if (kind === 'margin-burst') {
    const events = body.events === undefined ? rt.opts.queueLimit * 2 : body.events;
    if (typeof events !== 'number' || !Number.isInteger(events) || events < 1 || events > 10_000_000)
      throw new BadRequest('events must be an integer 1..10000000');
    return send(res, 200, rt.marginBurst(events));
  }
  if (kind === 'crash') {
    send(res, 202, { crashing: true });
    setTimeout(onCrash, 20);
    return;
  }
  if (kind === 'control-latency' || kind === 'wal-stall') {
    const ms = body.ms;
    const forMs = body.forMs;
    if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > 60_000) throw new BadRequest('ms must be an integer 0..60000');
    if (typeof forMs !== 'number' || !Number.isInteger(forMs) || forMs < 0 || forMs > 600_000) throw new BadRequest('forMs must be an integer 0..600000');
    if (kind === 'wal-stall') rt.stallWal(ms, forMs);
    else rt.controlLatency = { ms, until: Date.now() + forMs };
    return send(res, 200, { kind, ms, forMs });
  }
  throw new BadRequest('kind must be margin-burst, crash, control-latency or wal-stall');
}

/** The instruments, with this engine's funding intervals: the same table the exchange checks. */
function instrumentsAnswer(rt: EngineRuntime): InstrumentsAnswer {
  return { instruments: instrumentViews((s) => rt.ex.intervalOf(s)) };
}

/**
 * `GET /wal/stream?from=SEQ`: the WAL from SEQ as NDJSON, each record exactly as it is on disk (with its
 * CRC), then every record as it becomes durable, for as long as the client stays; a heartbeat line
 * `{"type":"heartbeat","seq","applied","ts"}` every 250 ms carries the last durable and applied seqs. 410 when SEQ is older than
 * what the WAL still holds (start from `GET /state` instead).
 */
async function streamWal({ req, res, rt }: RouteCall): Promise<void> {
  const params = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams;
  const from = Number(params.get('from') ?? '1');
  if (!Number.isInteger(from) || from < 1) throw new BadRequest('from must be a positive integer seq');
  if (params.has('to')) return walHistory(res, rt, from, Number(params.get('to')));
  let next = from;
  let live = false;
  const early: [number, string][] = [];
  const write = (seq: number, line: string): void => {
    if (seq !== next) return;
    res.write(line);
    next++;
  };
  // Listen first, then read the disk: a record made durable in between arrives twice and is sent once.
  const unsubscribe = rt.onWal((seq, line) => (live ? write(seq, line) : early.push([seq, line])));
  const { scanWal, encodeRecord } = await import('./wal.js');
  const scan = scanWal<Command>(dataDirLayout(rt.dataDir).wal, from - 1, false);
  const first = scan.records.find((r) => r.seq >= from);
  if (from <= rt.durableSeq && (!first || first.seq > from)) {
    unsubscribe();
    throw new BadRequest(`the WAL no longer holds seq ${from} (it starts at ${first?.seq ?? rt.durableSeq + 1}): start from GET /state`, 410);
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  for (const r of scan.records) write(r.seq, encodeRecord(r.seq, r.body));
  live = true;
  for (const [seq, line] of early) write(seq, line);
  // In band, behind the records it counts: `applied` (made, maybe not yet on disk) is what shows a lag.
  const beat = (): string => `${JSON.stringify({ type: 'heartbeat', seq: rt.durableSeq, applied: rt.seq, ts: Date.now() })}\n`;
  const heartbeat = setInterval(() => res.write(beat()), 250);
  res.write(beat());
  await new Promise<void>((resolve) => res.once('close', resolve));
  clearInterval(heartbeat);
  unsubscribe();
}

/**
 * `GET /wal/stream?from=A&to=B`: the records the WAL still holds in [A, B] (B already durable), then the
 * response ends. A new follower copies the history before the state it started from with it, so its WAL
 * explains what happened since a pre-outage snapshot as its primary's does.
 */
async function walHistory(res: ServerResponse, rt: EngineRuntime, from: number, to: number): Promise<void> {
  if (!Number.isInteger(to) || to < from - 1) throw new BadRequest('to must be an integer seq, not before from');
  if (to > rt.durableSeq) throw new BadRequest(`to ${to} is past the last durable seq ${rt.durableSeq}`);
  const { scanWal, encodeRecord } = await import('./wal.js');
  const scan = scanWal<Command>(dataDirLayout(rt.dataDir).wal, from - 1, false);
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  for (const r of scan.records) {
    if (r.seq > to) break;
    if (r.seq >= from && !res.write(encodeRecord(r.seq, r.body))) await new Promise((d) => res.once('drain', d));
  }
  res.end();
}

/** `POST /fence {"epoch"?: N}`: this primary takes no more writes, durably. */
async function fence({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  const epoch = body.epoch;
  if (epoch !== undefined && (typeof epoch !== 'number' || !Number.isInteger(epoch) || epoch < 0)) throw new BadRequest('epoch must be a non-negative integer');
  send(res, 200, await rt.fence(epoch));
}

/**
 * `POST /promote {"force"?: true}`: this follower becomes the primary once its primary is fenced and
 * every record up to the fence is applied. Forced (the primary unreachable or not fenced), it is
 * journaled as forced and keeps trying to fence the old primary with its new epoch. `{"reclaim": true}`
 * on a primary that fenced itself for a handover lifts its fence with a new epoch (see EngineRuntime.reclaim).
 */
async function promote({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  const force = body.force === true;
  if (body.reclaim === true) return send(res, 200, await rt.reclaim());
  const follow = rt.opts.follow;
  if (rt.role !== 'follower' || !follow) throw new EngineRefusal(409, 'this engine is already a primary');
  let primary = await primaryFence(follow.url, follow.tokenFile);
  // Forced over a primary that still answers: fence it first, with the next epoch, so that it is never a
  // second writer (the promotion then waits for its last seq, as an unforced one does).
  if (force && primary && !primary.fenced && (await fencePrimary(follow.url, follow.tokenFile, rt.ex.epoch + 1)))
    primary = await primaryFence(follow.url, follow.tokenFile);
  if (!force && primary === null)
    throw new EngineRefusal(409, `the primary ${follow.url} cannot be reached to check it is fenced: fence it, or promote with force`);
  if (!force && !primary?.fenced) throw new EngineRefusal(409, `the primary ${follow.url} is not fenced: POST /fence on it first, or promote with force`);
  // Under the control client's 15 s: the caller hears 504 "promote again", never a timeout that leaves it guessing.
  const answer = await rt.promote({ force, primarySeq: primary?.fenced ? primary.seq : null, timeoutMs: 10_000 });
  if (answer.forced) fenceUntilDone(rt, follow.url, follow.tokenFile, answer.epoch);
  send(res, 200, answer);
}

/** After a forced promotion: fence the old primary with the new epoch as soon as it answers (it may be down). */
function fenceUntilDone(rt: EngineRuntime, url: string, tokenFile: string, epoch: number): void {
  const timer = setInterval(() => {
    void fencePrimary(url, tokenFile, epoch).then((done) => {
      if (!done) return;
      clearInterval(timer);
      rt.opts.log({ level: 'warn', msg: 'fenced the old primary', url, epoch });
    });
  }, 500);
  timer.unref();
}

/** `POST /testnet/clock {"advanceMs": 60000}`: a manual-clock testnet's time moves forward. */
async function advanceTestnetClock({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  const ms = body.advanceMs;
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > 366 * 86_400_000) {
    throw new BadRequest('advanceMs must be an integer number of milliseconds, 0 to a year');
  }
  send(res, 200, await rt.advanceClock(ms));
}

/** `POST /leverage {"account": "a", "symbol": "BTCUSDT", "leverage": 10}`. */
async function setLeverage({ req, res, rt }: RouteCall): Promise<void> {
  const body = await readBody(req);
  const account = str(body, 'account') as string;
  const symbol = str(body, 'symbol');
  if (!isSymbol(symbol)) throw new BadRequest(`unknown symbol ${JSON.stringify(symbol)}`);
  const leverage = body.leverage;
  if (typeof leverage !== 'number' || !Number.isInteger(leverage)) throw new BadRequest('leverage must be an integer');
  send(res, 200, { account, symbol, ...(await rt.setLeverage(account, symbol, leverage)) });
}

/** The control API's routes (docs/engine.md lists them); a path no route matches is 404. */
const ROUTES: readonly Route[] = [
  { method: 'GET', path: '/health', handle: ({ res, rt }) => send(res, 200, rt.health()) },
  { method: 'GET', path: '/metrics', handle: sendMetrics },
  // Read-only, so answered in every phase (halted included): a client prices its orders before trading opens.
  { method: 'GET', path: '/instruments', handle: ({ res, rt }) => send(res, 200, instrumentsAnswer(rt)) },
  { method: 'POST', path: '/orders', handle: placeOrder },
  { method: 'POST', path: '/orders/batch', handle: placeOrders },
  {
    method: 'DELETE',
    path: ORDER_PATH,
    params: orderIdParam,
    handle: async ({ res, rt, params: [id] }) => send(res, 200, orderAnswer(await rt.cancel(id as string))),
  },
  { method: 'GET', path: ORDER_PATH, params: orderIdParam, handle: getOrder },
  { method: 'POST', path: DEPOSIT_PATH, params: accountIdParam, handle: deposit },
  { method: 'GET', path: ACCOUNT_PATH, params: accountIdParam, handle: getAccount },
  { method: 'POST', path: '/phase', handle: setPhase },
  { method: 'POST', path: '/admission', handle: setAdmission },
  { method: 'POST', path: '/modules/activate', handle: activateModule },
  { method: 'POST', path: '/modules/rollback', handle: rollbackModule },
  { method: 'POST', path: '/snapshot', handle: async ({ res, rt }) => send(res, 200, await rt.snapshot()) },
  { method: 'GET', path: '/state', handle: streamState },
  { method: 'POST', path: '/funding/recompute', handle: recomputeFunding },
  { method: 'POST', path: '/fault', handle: injectFault },
  { method: 'POST', path: '/testnet/index', handle: setTestnetIndex },
  { method: 'GET', path: '/risk/preview', handle: ({ res, rt }) => send(res, 200, rt.riskPreview()) },
  { method: 'POST', path: '/testnet/clock', handle: advanceTestnetClock },
  { method: 'POST', path: '/leverage', handle: setLeverage },
  { method: 'GET', path: '/wal/stream', handle: streamWal },
  { method: 'POST', path: '/fence', handle: fence },
  { method: 'POST', path: '/promote', handle: promote },
  { method: 'GET', path: '/liquidations', handle: ({ res, rt }) => send(res, 200, { liquidations: rt.liquidationsView() }) },
];

/** The groups of a path that matches the route's path, or null. */
function matchPath(pattern: string | RegExp, path: string): string[] | null {
  if (typeof pattern === 'string') return pattern === path ? [] : null;
  const m = pattern.exec(path);
  return m ? m.slice(1).map((g) => g ?? '') : null;
}

/** Find the route for a request and run it; a route's parameter check may refuse (400) before any method match. */
async function dispatch(call: Omit<RouteCall, 'params'>, method: string, path: string): Promise<void> {
  for (const route of ROUTES) {
    const groups = matchPath(route.path, path);
    if (!groups) continue;
    const params = route.params ? route.params(groups) : groups;
    if (route.method === method) return route.handle({ ...call, params });
  }
  send(call.res, 404, { error: `no route ${method} ${path}` });
}

/** The control API (SPEC section 4): JSON over HTTP on loopback, every request with the bearer token. */
export function createControlServer(o: ServerOptions): Server {
  const rt = o.runtime;
  const token = Buffer.from(o.token);
  const server = createServer((req, res) => {
    void handle(req, res).catch((e: unknown) => {
      if (e instanceof BadRequest) send(res, e.status, { error: e.message });
      else if (e instanceof EngineRefusal) send(res, e.status, { error: e.message });
      else {
        rt.opts.log({ level: 'error', msg: 'request failed', url: req.url, reason: (e as Error).message });
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
      }
    });
  });
  server.keepAliveTimeout = 30_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) return send(res, 403, { error: 'loopback only' });
    if (!tokenMatches(req.headers.authorization, token)) return send(res, 401, { error: 'missing or wrong bearer token' });
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    // The control-latency fault holds every answer but the fault route's own (so it can be lifted).
    const slow = rt.controlLatency;
    if (Date.now() < slow.until && url.pathname !== '/fault') await new Promise((r) => setTimeout(r, slow.ms));
    return dispatch({ req, res, rt, onCrash: o.onCrash }, req.method ?? 'GET', url.pathname);
  }
  return server;
}

function accountView(rt: EngineRuntime, id: string): AccountView {
  const a = rt.ex.account(id);
  const positions = [...a.positions]
    .filter(([, p]) => p.qty !== 0)
    .map(([symbol, p]) => ({
      symbol,
      qty: fmtQty(p.qty),
      cost: fmtMoney(p.cost),
      marginMode: p.mode,
      isolatedMargin: fmtMoney(p.isolatedMargin),
    }));
  const equity = rt.ex.crossEquity(a);
  const mm = rt.ex.crossMaintenance(a);
  return {
    id,
    balances: { USDT: fmtMoney(a.balances.USDT), USDC: fmtMoney(a.balances.USDC) },
    positions,
    openOrders: [...a.openOrders].sort(),
    equity: fmtMoney(equity),
    maintenanceMargin: fmtMoney(mm),
    available: fmtMoney(rt.ex.available(a)),
    // Binance's margin ratio is maintenance / margin balance (rounded up: never flattering); uniMMR its inverse.
    marginRatio: mm === 0n ? null : equity <= 0n ? null : ratioText((mm * 10_000n + equity - 1n) / equity),
    uniMMR: mm === 0n ? null : ratioText(uniMMROf(equity, mm) as bigint),
    leverage: Object.fromEntries([...a.leverage].sort()),
  };
}
