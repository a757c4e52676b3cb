// The docs page in a real browser: Debian's chromium, headless, driven over the Chrome DevTools
// protocol (--remote-debugging-pipe, Node built-ins only), with every host name but the loopback
// unresolvable (no CDN can help). It loads GET /docs from a running berth server, finds the API's
// operations rendered, and clicks "Try it out" and "Execute" on GET /v1/version, which answers
// from the server. BERTH_UPDATE_SCREENSHOT=1 keeps the screenshot at docs/docs-page.png (README).
// On a server with an API token the page opens, asks for the token, refuses a wrong one, and with
// the right one renders the API authorized: "Try it out" sends the token.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { parse } from 'yaml';
import { projectRoot } from './fixtures/unpack.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

type Json = Record<string, any>;

/** One browser over --remote-debugging-pipe: JSON messages separated by NUL on fds 3 (in) and 4 (out). */
class Browser {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void; method: string }>();
  private readonly listeners = new Set<(msg: Json) => void>();
  stderr = '';

  private constructor(private readonly proc: ChildProcess) {
    const out = proc.stdio[4] as Readable;
    let buffered = '';
    out.setEncoding('utf8');
    out.on('data', (chunk: string) => {
      buffered += chunk;
      for (let i = buffered.indexOf('\0'); i >= 0; i = buffered.indexOf('\0')) {
        const msg = JSON.parse(buffered.slice(0, i)) as Json;
        buffered = buffered.slice(i + 1);
        const waiting = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
        if (waiting) {
          this.pending.delete(msg.id);
          if (msg.error) waiting.reject(new Error(`${waiting.method}: ${msg.error.message}`));
          else waiting.resolve(msg.result as Json);
        } else {
          for (const l of this.listeners) l(msg);
        }
      }
    });
    proc.stderr!.on('data', (d) => (this.stderr += d));
    proc.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`chromium exited (${code}) during ${p.method}: ${this.stderr.slice(-2000)}`));
      this.pending.clear();
    });
  }

  static launch(profile: string): Browser {
    const proc = spawn(
      chromiumPath!,
      [
        '--headless',
        '--no-sandbox', // tests run as root
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--no-first-run',
        '--no-default-browser-check',
        '--remote-debugging-pipe',
        `--user-data-dir=${profile}`,
        // No internet: only the loopback resolves, so an asset from a CDN would fail to load.
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
    );
    return new Browser(proc);
  }

  send(method: string, params: Json = {}, sessionId?: string): Promise<Json> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      (this.proc.stdio[3] as Writable).write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    });
  }

  /** The next event `method` (of `sessionId`). */
  event(method: string, sessionId?: string): Promise<Json> {
    return new Promise((resolve) => {
      const l = (msg: Json) => {
        if (msg.method === method && (sessionId === undefined || msg.sessionId === sessionId)) {
          this.listeners.delete(l);
          resolve(msg.params as Json);
        }
      };
      this.listeners.add(l);
    });
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = once(this.proc, 'exit');
    await this.send('Browser.close').catch(() => this.proc.kill('SIGKILL'));
    await exited;
  }
}

/** A page (one target) of the browser. */
class Page {
  constructor(private readonly browser: Browser, private readonly sessionId: string) {}

  send(method: string, params: Json = {}): Promise<Json> {
    return this.browser.send(method, params, this.sessionId);
  }

  event(method: string): Promise<Json> {
    return this.browser.event(method, this.sessionId);
  }

  /** Evaluates an expression in the page (awaiting a promise it gives) and returns its value. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** Waits (on the page's animation frames, up to 30 s) until `condition` (a JS expression) is truthy; returns its value. */
  waitFor<T>(condition: string, what: string): Promise<T> {
    return this.evaluate<T>(`new Promise((resolve, reject) => {
      const start = Date.now();
      const tick = () => {
        let v;
        try { v = (${condition}); } catch {}
        if (v) return resolve(v);
        if (Date.now() - start > 30000) return reject(new Error('timed out waiting for ' + ${JSON.stringify(what)}));
        requestAnimationFrame(tick);
      };
      tick();
    })`);
  }

  /** A real mouse click in the middle of the element `selector` (once it is there), scrolled into view. */
  async click(selector: string): Promise<void> {
    await this.waitFor(`!!document.querySelector(${JSON.stringify(selector)})`, selector);
    const { x, y } = await this.evaluate<{ x: number; y: number }>(`(() => {
      const el = document.querySelector(${JSON.stringify(selector)});
      el.scrollIntoView({ block: 'center', behavior: 'instant' });
      const r = el.getBoundingClientRect();
      return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
    })()`);
    await this.send('Input.dispatchMouseEvent', { type: 'mouseMoved', x, y });
    await this.send('Input.dispatchMouseEvent', { type: 'mousePressed', x, y, button: 'left', clickCount: 1 });
    await this.send('Input.dispatchMouseEvent', { type: 'mouseReleased', x, y, button: 'left', clickCount: 1 });
  }
}

/** A new page (tab) of the browser, 1280×1500. */
async function newPage(browser: Browser): Promise<Page> {
  const { targetId } = await browser.send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await browser.send('Target.attachToTarget', { targetId, flatten: true });
  const page = new Page(browser, sessionId as string);
  await page.send('Page.enable');
  await page.send('Emulation.setDeviceMetricsOverride', { width: 1280, height: 1500, deviceScaleFactor: 1, mobile: false });
  return page;
}

/** Navigates to `url` and waits for the load event. */
async function navigate(page: Page, url: string): Promise<void> {
  const loaded = page.event('Page.loadEventFired');
  const nav = await page.send('Page.navigate', { url });
  assert.equal(nav.errorText, undefined, `navigating to ${url}: ${nav.errorText}`);
  await loaded;
}

/** "Try it out" and "Execute" on the operation `op` (its element's selector): the live response's status. */
async function tryItOut(page: Page, op: string): Promise<string> {
  await page.click(`${op} .opblock-summary-control`);
  await page.click(`${op} .try-out__btn`);
  await page.click(`${op} button.execute`);
  return page.waitFor<string>(
    `document.querySelector('${op} .live-responses-table .response .response-col_status')?.textContent.trim()`,
    'the live response',
  );
}

const doc = parse(readFileSync(join(projectRoot, 'openapi.yaml'), 'utf8')) as Json;
const documented = Object.entries(doc.paths as Json).flatMap(([path, item]) =>
  ['get', 'head', 'put', 'post', 'patch', 'delete'].filter((m) => item[m]).map((m) => ({ method: m.toUpperCase(), path, operationId: item[m].operationId as string })),
);

describe('GET /docs in headless chromium', { timeout: 180_000 }, () => {
  let server: TestServer;
  let profile: string;
  let browser: Browser;
  let page: Page;

  before(async () => {
    assert.ok(chromiumPath, 'chromium is not installed (Debian package chromium: bash test/install-deps.sh as root)');
    server = await startTestServer();
    profile = await mkdtemp(join(tmpdir(), 'berth-chromium-'));
    browser = Browser.launch(profile);
    page = await newPage(browser);
    await navigate(page, `${server.url}/docs`);
  });
  after(async () => {
    await browser?.close();
    await server?.destroy();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  test('renders every operation of openapi.yaml, from assets berth serves itself', async () => {
    const count = await page.waitFor<number>(`document.querySelectorAll('.opblock').length >= ${documented.length} && document.querySelectorAll('.opblock').length`, 'the operations');
    assert.equal(count, documented.length);
    const ops = await page.evaluate<Array<{ id: string; method: string; path: string; operationId: string }>>(`[...document.querySelectorAll('.opblock')].map((el) => ({
      id: el.id,
      method: el.querySelector('.opblock-summary-method')?.textContent,
      path: el.querySelector('.opblock-summary-path')?.getAttribute('data-path'),
      operationId: el.querySelector('.opblock-summary-operation-id')?.textContent,
    }))`);
    const shown = ops.map((o) => `${o.method} ${o.path} ${o.operationId}`).sort();
    assert.deepEqual(shown, documented.map((o) => `${o.method} ${o.path} ${o.operationId}`).sort());
    assert.ok(ops.some((o) => o.operationId === 'listIngests' && o.method === 'GET' && o.path === '/v1/ingests'), 'listIngests not rendered');
    assert.ok(ops.some((o) => o.method === 'POST' && o.path === '/v1/pulls'), 'POST /v1/pulls not rendered');
    // "Try it out" goes to this server: the document's one server is the URL the page came from.
    const servers = await page.evaluate<string[]>(`[...document.querySelectorAll('.servers select option')].map((o) => o.value)`);
    assert.deepEqual(servers, [server.url]);
    // Everything the page loaded came from berth (no CDN; and none could resolve).
    const foreign = await page.evaluate<string[]>(`performance.getEntriesByType('resource').map((e) => e.name).filter((n) => !n.startsWith(${JSON.stringify(server.url + '/')}))`);
    assert.deepEqual(foreign, []);
    const scripts = await page.evaluate<string[]>(`[...document.scripts].map((s) => s.src).filter(Boolean)`);
    assert.ok(scripts.some((s) => s.startsWith(`${server.url}/docs/static/swagger-ui-bundle.js`)), `scripts: ${scripts.join(', ')}`);
  });

  test('"Try it out" then "Execute" on GET /v1/version shows the server\'s answer', async () => {
    const op = '#operations-default-getVersion';
    assert.equal(await tryItOut(page, op), '200');
    const body = await page.evaluate<string>(`document.querySelector('${op} .live-responses-table .response-col_description pre')?.textContent`);
    const expected = (await (await fetch(`${server.url}/v1/version`)).json()) as Json;
    assert.deepEqual(JSON.parse(body), expected);
    assert.match(expected.commit, /^([0-9a-f]{40}|unknown)$/);
    const requestUrl = await page.evaluate<string>(`document.querySelector('${op} .request-url pre')?.textContent`);
    assert.equal(requestUrl, `${server.url}/v1/version`);

    // The screenshot: the page as a user sees it, the answer on screen.
    await page.evaluate(`window.scrollTo(0, 0)`);
    const { data } = await page.send('Page.captureScreenshot', { format: 'png' });
    const png = Buffer.from(data as string, 'base64');
    assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')]);
    assert.equal(png.readUInt32BE(16), 1280, 'screenshot width');
    if (process.env.BERTH_UPDATE_SCREENSHOT === '1') await writeFile(join(projectRoot, 'docs', 'docs-page.png'), png);
  });
});

describe('GET /docs on a server with an API token, in headless chromium', { timeout: 180_000 }, () => {
  const token = 'docs-page-token-5c1e';
  let dir: string;
  let server: TestServer;
  let browser: Browser;
  let page: Page;

  before(async () => {
    assert.ok(chromiumPath, 'chromium is not installed (Debian package chromium: bash test/install-deps.sh as root)');
    dir = await mkdtemp(join(tmpdir(), 'berth-docs-auth-'));
    await writeFile(join(dir, 'api.token'), `${token}\n`, { mode: 0o600 });
    server = await startTestServer({ config: { authTokenFile: join(dir, 'api.token') } });
    browser = Browser.launch(join(dir, 'profile'));
    page = await newPage(browser);
  });
  after(async () => {
    await browser?.close();
    await server?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const open = () => navigate(page, `${server.url}/docs`);
  /** Waits until every operation is rendered; their number. */
  const rendered = () =>
    page.waitFor<number>(`document.querySelectorAll('.opblock').length >= ${documented.length} && document.querySelectorAll('.opblock').length`, 'the operations');
  const submit = async (value: string) => {
    await page.evaluate(`document.querySelector('#berth-token').value = ${JSON.stringify(value)}`);
    await page.click('#berth-token-submit');
  };

  test('the page opens and asks for the token; a wrong one is refused; the right one renders the API', async () => {
    await open();
    const asked = await page.waitFor<string>(`document.querySelector('#berth-token-message')?.textContent`, 'the token form');
    assert.match(asked, /requires its API token/);
    assert.equal(await page.evaluate<number>(`document.querySelectorAll('.opblock').length`), 0);
    await submit('not-the-token');
    await page.waitFor<boolean>(`document.querySelector('#berth-token-message')?.textContent.includes('refused')`, 'the refusal');
    await submit(token);
    assert.equal(await rendered(), documented.length);
    // Swagger UI's Authorize holds the token (the document's bearerAuth scheme).
    await page.waitFor<boolean>(`!!document.querySelector('.auth-wrapper .authorize.locked')`, 'Authorize locked (authorized)');
  });

  test('"Try it out" sends the token: GET /v1/version answers 200', async () => {
    const op = '#operations-default-getVersion';
    assert.equal(await tryItOut(page, op), '200');
    const curl = await page.evaluate<string>(`document.querySelector('${op} .curl-command')?.textContent ?? ''`);
    assert.match(curl, /Authorization: Bearer docs-page-token-5c1e/);
  });

  test('reloaded, the tab keeps the token: no question asked', async () => {
    await open();
    assert.equal(await rendered(), documented.length);
    assert.equal(await page.evaluate<boolean>(`!!document.querySelector('#berth-token-form')`), false);
  });
});
