import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { compareKey, RECORD_TYPES, SNAPSHOT_FORMAT, SnapshotError, type SnapshotHeader, type SnapshotRecord } from './format.js';

export interface ReadOptions {
  /** Check the trailer's sha256 over the bytes (default true). */
  verifyChecksum?: boolean;
}

/**
 * Stream a snapshot's records, verifying as it goes: header, (type, id) order, duplicate ids, and at the
 * end the trailer's record count and sha256. Problems throw SnapshotError naming the line.
 */
export async function* readSnapshot(file: string, onHeader: (h: SnapshotHeader) => void, opts: ReadOptions = {}): AsyncGenerator<SnapshotRecord> {
  const verify = opts.verifyChecksum ?? true;
  const hash = createHash('sha256');
  let lineNo = 0;
  let header: SnapshotHeader | undefined;
  let trailerSeen = false;
  let count = 0;
  let lastType = '';
  let lastId = '';
  let rest = '';
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  const decoder = new StringDecoder('utf8');
  const fail = (problem: string, line = lineNo): never => {
    throw new SnapshotError(file, line, problem);
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const text = rest + decoder.write(chunk);
      let start = 0;
      for (;;) {
        const nl = text.indexOf('\n', start);
        if (nl < 0) break;
        const line = text.slice(start, nl);
        start = nl + 1;
        lineNo++;
        if (trailerSeen) fail('content after the trailer');
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          fail('not a JSON record (corrupt line)');
        }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) fail('not a JSON object');
        const rec = parsed as Record<string, unknown>;
        if (lineNo === 1) {
          if (rec.type !== 'header' || rec.format !== SNAPSHOT_FORMAT) fail(`not a ${SNAPSHOT_FORMAT} header`);
          if (typeof rec.seq !== 'number') fail('header has no seq');
          header = rec as SnapshotHeader;
          onHeader(header);
          if (verify) hash.update(`${line}\n`);
          continue;
        }
        if (rec.type === 'trailer') {
          trailerSeen = true;
          if (rec.records !== count) fail(`trailer says ${String(rec.records)} records, found ${count}`);
          if (verify && rec.sha256 !== hash.digest('hex')) fail('sha256 does not match the file (checksum mismatch)');
          continue;
        }
        if (verify) hash.update(`${line}\n`);
        if (typeof rec.type !== 'string' || !(RECORD_TYPES as readonly string[]).includes(rec.type)) fail(`unknown record type ${JSON.stringify(rec.type)}`);
        if (typeof rec.id !== 'string') fail('record has no string id');
        const type = rec.type as string;
        const id = rec.id as string;
        if (count > 0) {
          const cmp = compareKey(lastType, lastId, type, id);
          if (cmp === 0) fail(`duplicate ${type} id ${id}`);
          if (cmp > 0) fail(`out of order: ${type} ${id} after ${lastType} ${lastId}`);
        }
        lastType = type;
        lastId = id;
        count++;
        yield rec as SnapshotRecord;
      }
      rest = text.slice(start);
    }
  } catch (e) {
    if (e instanceof SnapshotError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new SnapshotError(file, lineNo, `cannot read (${code ?? (e as Error).message})`);
  }
  if (rest.length > 0) fail('truncated: the last line has no newline', lineNo + 1);
  if (!header) fail('empty file: no header', 1);
  if (!trailerSeen) fail('truncated: no trailer', lineNo + 1);
}
