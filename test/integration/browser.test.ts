import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, BrowserError, pdfTitle, printToPdf } from '../../src/report/browser.js';
import { tempDir } from '../support/cli.js';

const CHROMIUM = '/usr/bin/chromium';

/** A page in a fresh temp dir, as a file:// URL (and its path). */
function htmlPage(html: string, name = 'page.html'): { file: string; url: string } {
  const file = join(tempDir('recoverctl-browser-'), name);
  writeFileSync(file, html);
  return { file, url: pathToFileURL(file).href };
}

const PROBE = `<!doctype html><html><head><meta charset="utf-8"><title>Probe page</title></head>
<body><h1>Hello</h1>
<script>console.error('boom');</script>
<script>throw new Error('kaput');</script>
<script>setTimeout(() => { window.ready = true; }, 200);</script>
</body></html>`;

const TALL = `<!doctype html><html><head><style>body { margin: 0 } div { height: 3000px; background: linear-gradient(#fff, #06c) }</style></head>
<body><div></div></body></html>`;

/** Height in the IHDR chunk of a PNG: bytes 20–23, big-endian. */
const pngHeight = (png: Buffer): number => png.readUInt32BE(20);

const profileDirs = (): string[] => readdirSync(tmpdir()).filter((d) => d.startsWith('recoverctl-chromium-'));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// .ci/run installs Debian's chromium when it is missing; on a machine without it this is skipped, said so.
const SKIP = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)`;
if (SKIP) console.warn(`skipped: the headless Chromium driver: ${SKIP}`);
describe.skipIf(SKIP !== undefined)(`the headless Chromium driver${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await Browser.launch({ executable: CHROMIUM });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('loads a page, evaluates in it, collects its console errors and waits for a condition', async () => {
    const page = await browser.newPage();
    await page.goto(htmlPage(PROBE).url);
    expect(await page.evaluate<string>('document.title')).toBe('Probe page');
    expect(await page.evaluate<string>('document.querySelector("h1").textContent')).toBe('Hello');
    expect(page.consoleErrors).toContain('boom');
    expect(page.consoleErrors.some((e) => e.includes('Error: kaput'))).toBe(true);
    await page.waitFor('window.ready === true', 5000);
    const never = page.waitFor('window.never === true', 300);
    await expect(never).rejects.toBeInstanceOf(BrowserError);
    await expect(never).rejects.toThrow(/timed out after 300ms waiting for: window.never === true/);
    await expect(page.evaluate('undefinedThing.x')).rejects.toThrow(/^ReferenceError: undefinedThing is not defined$/);
    await expect(page.goto(pathToFileURL('/nonexistent/page.html').href)).rejects.toThrow(/could not open .*: net::ERR_FILE_NOT_FOUND$/);
    await page.close();
  });

  it('takes PNG screenshots of the viewport and of the whole page', async () => {
    const page = await browser.newPage({ width: 800, height: 600 });
    await page.goto(htmlPage(TALL).url);
    const viewport = await page.screenshot();
    expect([...viewport.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect(pngHeight(viewport)).toBe(600);
    const full = await page.screenshot({ fullPage: true });
    expect([...full.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect(pngHeight(full)).toBeGreaterThanOrEqual(3000);
    await page.close();
  });

  it('prints an HTML file to PDF with its title (UTF-16BE hex when not ASCII, a literal string when ASCII)', async () => {
    const unicode = htmlPage('<!doctype html><meta charset="utf-8"><title>Incident RUN-7 — résumé ✓</title><h1>Report</h1>');
    const pdf = join(tempDir(), 'unicode.pdf');
    await printToPdf(unicode.file, pdf, { executable: CHROMIUM });
    const bytes = readFileSync(pdf);
    expect(bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(bytes.toString('latin1')).toMatch(/\/Title <FEFF[0-9A-F]+>/);
    expect(pdfTitle(bytes)).toBe('Incident RUN-7 — résumé ✓');

    const ascii = htmlPage('<!doctype html><title>Plain (nested) title \\ here</title><h1>Report</h1>');
    const asciiPdf = join(tempDir(), 'ascii.pdf');
    await printToPdf(ascii.file, asciiPdf, { executable: CHROMIUM });
    const asciiBytes = readFileSync(asciiPdf);
    expect(asciiBytes.toString('latin1')).toContain('/Title (Plain \\(nested\\) title \\\\ here)');
    expect(pdfTitle(asciiBytes)).toBe('Plain (nested) title \\ here');
  });

  it('kills the process and removes its profile on close, and close is idempotent', async () => {
    const own = await Browser.launch({ executable: CHROMIUM });
    const cmdline = readFileSync(`/proc/${own.pid}/cmdline`, 'utf8').split('\0');
    const profile = cmdline.find((a) => a.startsWith('--user-data-dir='))?.slice('--user-data-dir='.length) as string;
    expect(existsSync(profile)).toBe(true);
    await own.close();
    await own.close();
    expect(isAlive(own.pid)).toBe(false);
    expect(existsSync(profile)).toBe(false);
    await expect(own.send('Browser.getVersion')).rejects.toBeInstanceOf(BrowserError);
  });

  it('fails to launch a missing executable with an error naming it, leaving no profile behind', async () => {
    const before = new Set(profileDirs());
    const launching = Browser.launch({ executable: '/nonexistent/chromium' });
    await expect(launching).rejects.toBeInstanceOf(BrowserError);
    await expect(launching).rejects.toThrow(/^chromium \(\/nonexistent\/chromium\) could not be started \(spawn \/nonexistent\/chromium ENOENT\)/);
    expect(profileDirs().filter((d) => !before.has(d))).toEqual([]);
  });
});
