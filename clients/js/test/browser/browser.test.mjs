// The SDK in a real browser (Debian's chromium, driven by playwright-core)
// against a real development gateway built from this repository.
//
// Artifacts: test-results/demo-page.png (a screenshot of the demo page with
// live events), relative to clients/js.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:http';
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { startGateway, waitFor, docEvent, freePort } from '../support/gateway.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PKG = resolve(here, '../..');
const RESULTS = join(PKG, 'test-results');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const CONTENT_TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
const typeOf = (f) => CONTENT_TYPES[f.slice(f.lastIndexOf('.'))] ?? 'application/octet-stream';

let gw;
let token;
let publishKey;
let context;
let userDataDir;
let pagesDir;
let pagesServer;
let pagesBase;

async function publish(events) {
  return gw.publish(events, publishKey);
}

/** Bundles the test pages (SDK from dist, React in its development build). */
async function buildPages() {
  const out = mkdtempSync(join(tmpdir(), 'syncgate-pages-'));
  await build({
    entryPoints: [join(here, 'pages/cache-page.js'), join(here, 'pages/react-page.js')],
    outdir: out,
    bundle: true,
    format: 'esm',
    target: 'es2022',
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'warning',
  });
  const html = (script, body) => `<!doctype html><meta charset="utf-8"><title>${script}</title><link rel="icon" href="data:,"><body>${body}<script type="module" src="${script}"></script>`;
  writeFileSync(join(out, 'cache.html'), html('cache-page.js', '<ul id="docs"></ul>'));
  writeFileSync(join(out, 'react.html'), html('react-page.js', '<div id="root"></div>'));
  return out;
}

/** Serves the test pages from a real loopback origin, as an app's own server would. */
async function servePages(dir, port) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = join(dir, path.replace(/^\/+/, ''));
    if (!file.startsWith(dir) || !existsSync(file) || path === '/') {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': typeOf(file), 'Cache-Control': 'no-store' }).end(readFileSync(file));
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return server;
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium`);
  // The test pages come from their own origin, which the gateway allows.
  const pagesPort = await freePort();
  pagesBase = `http://127.0.0.1:${pagesPort}`;
  pagesDir = await buildPages();
  pagesServer = await servePages(pagesDir, pagesPort);
  // A development node, exactly as `go run ./cmd/gateway` starts it: the
  // token and the publish key come from what it prints.
  gw = await startGateway({ dev: true, env: { SYNCGATE_ALLOWED_ORIGINS: `127.0.0.1:${pagesPort}` } });
  const printed = await waitFor(() => /#token=([\w.-]+)/.exec(gw.output) && /Bearer (dev-[\w-]+)/.exec(gw.output) && gw.output, {
    message: 'printed token and publish key',
  });
  token = /#token=([\w.-]+)/.exec(printed)[1];
  publishKey = /Bearer (dev-[\w-]+)/.exec(printed)[1];
  mkdirSync(RESULTS, { recursive: true });

  // The development node serves the demo page (internal/demo) at /.
  const res = await fetch(`${gw.base}/`);
  assert.ok(res.ok && (await res.text()).includes('src="app.js"'), `GET / on a development gateway: ${res.status}, not the demo page`);
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  userDataDir = mkdtempSync(join(tmpdir(), 'syncgate-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args,
  });
});

after(async () => {
  await context?.close();
  pagesServer?.close();
  await gw?.stop('SIGKILL');
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  if (pagesDir) rmSync(pagesDir, { recursive: true, force: true });
});

/** A new page, closed after the test whatever its outcome. */
async function newPage(t) {
  const page = await context.newPage();
  t.after(() => page.close().catch(() => {}));
  return page;
}

function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  return errors;
}

describe('demo page', () => {
  it('connects with the printed token, subscribes to demo/* and shows events live', async (t) => {
    const page = await newPage(t);
    const errors = watchErrors(page);
    await page.goto(`${gw.base}/#token=${token}`);
    await page.waitForSelector('#status[data-state="open"]', { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('sub-info').textContent.includes('live on demo / *'));

    await publish([
      docEvent('demo', 'todos', 't1', { title: 'Write the SDK', done: true }, 'document:created'),
      docEvent('demo', 'todos', 't2', { title: 'Test it in a browser', done: false }, 'document:created'),
    ]);
    await publish(docEvent('demo', 'todos', 't2', { title: 'Test it in a browser', done: true }, 'document:updated'));
    await publish(docEvent('demo', 'notes', 'n1', { text: 'Events arrive within milliseconds' }, 'document:created'));
    await publish(docEvent('other', 'todos', 'x', { marker: 'other-project-marker' }, 'document:created'));

    await page.waitForFunction(() => document.getElementById('event-count').textContent === '4', null, { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('doc-count').textContent === '3');
    const types = await page.$$eval('#events li', (lis) => lis.map((li) => li.dataset.type));
    assert.deepEqual(types, ['document:created', 'document:updated', 'document:created', 'document:created']);
    const rows = await page.$$eval('#documents tr[data-id]', (trs) => trs.map((tr) => tr.textContent));
    assert.equal(rows.length, 3);
    assert.ok(rows.some((r) => r.includes('t2') && r.includes('"done":true')), 'the update replaced t2');
    assert.ok(!(await page.content()).includes('other-project-marker'), 'another project is not shown');

    await page.screenshot({ path: join(RESULTS, 'demo-page.png'), fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('shows what was published before it opened, then continues live with no gap and nothing twice', async (t) => {
    // The first test published 4 demo events; these 2 come before this page exists.
    await publish([
      docEvent('demo', 'history', 'h1', { n: 1 }, 'document:created'),
      { ...docEvent('demo', 'history', 'secret', { n: 0 }, 'document:created'), audience: { users: ['someone-else'] } },
      docEvent('demo', 'history', 'h2', { n: 2 }, 'document:created'),
    ]);
    const page = await newPage(t);
    const errors = watchErrors(page);
    await page.goto(`${gw.base}/#token=${token}`);
    await page.waitForFunction(() => document.getElementById('sub-info').textContent.includes('live on demo / *'), null, { timeout: 10_000 });
    const rows = () => page.$$eval('#events li[data-type]', (lis) => lis.map((li) => `${li.dataset.history ? 'history' : 'live'} ${li.querySelector('.where').textContent}`).reverse());
    const before = await rows();
    assert.deepEqual(before.slice(-2), ['history history / h1', 'history history / h2'], 'the recent history, oldest first');
    assert.equal(before.length, 6, `the 4 earlier demo events and these 2, not the other user's: ${before}`);
    assert.ok(before.every((r) => r.startsWith('history')));
    assert.match(await page.textContent('#history-count'), /6 from before this page opened/);
    await page.waitForSelector('#documents tr[data-id="h2"]');

    await publish(docEvent('demo', 'history', 'h3', { n: 3 }, 'document:created'));
    await page.waitForFunction(() => document.getElementById('event-count').textContent === '7', null, { timeout: 10_000 });
    const after = await rows();
    assert.deepEqual(after, [...before, 'live history / h3'], 'live after the history, nothing twice');
    assert.deepEqual(errors, []);
  });

  it('asks for a token when the fragment has none', async (t) => {
    const page = await newPage(t);
    await page.goto(`${gw.base}/`);
    await page.waitForSelector('#no-token:not([hidden])');
    assert.equal(await page.getAttribute('#status', 'data-state'), 'closed');
    await page.close();
  });
});

describe('IndexedDB cache', () => {
  const db = `test-${Date.now()}`;
  const url = () => `${pagesBase}/cache.html#gateway=${gw.base}&token=${token}&project=shop&collection=orders&db=${db}`;
  const docsOf = (page) => page.evaluate(() => window.__docs().then((ds) => Object.fromEntries(ds.map((d) => [d.id, d.document]))));
  let lastOffset;

  it('applies each batch in one transaction and keeps documents', async (t) => {
    const page = await newPage(t);
    const errors = watchErrors(page);
    await page.goto(url());
    await page.waitForFunction(() => window.__state?.subscribed.length === 1, null, { timeout: 10_000 });
    await publish([
      docEvent('shop', 'orders', 'o1', { total: 10 }, 'document:created'),
      docEvent('shop', 'orders', 'o2', { total: 20 }, 'document:created'),
      docEvent('shop', 'orders', 'o3', { total: 30 }, 'document:created'),
      { type: 'insert', project: 'shop', collection: 'orders', documentId: 'o4', document: { total: 40 } },
    ]);
    await publish([docEvent('shop', 'orders', 'o2', { total: 25 }, 'document:updated'), docEvent('shop', 'orders', 'o3', null, 'document:deleted')]);
    await page.waitForFunction(() => window.__state.events.length === 6, null, { timeout: 10_000 });
    const state = await page.evaluate(() => window.__state);
    const tx = await page.evaluate(() => window.__tx);
    const batchTx = tx.filter((s) => s === 'documents+offsets').length;
    assert.equal(batchTx, state.batches.length, `one transaction per batch (${JSON.stringify(state.batches)}; ${JSON.stringify(tx)})`);
    assert.ok(state.batches.length < 6, `6 events came in ${state.batches.length} callbacks: batched`);
    assert.deepEqual(await docsOf(page), { o1: { total: 10 }, o2: { total: 25 }, o4: { total: 40 } });
    await page.waitForSelector('#docs li[data-id="o4"]');
    lastOffset = state.events.at(-1).offset;
    assert.deepEqual(errors, []);
    await page.close(); // the "tab" goes away
  });

  it('after a reload, shows the cached documents and resumes from the stored offset', async (t) => {
    // Published while no page is open.
    await publish(docEvent('shop', 'orders', 'o5', { total: 50 }, 'document:created'));
    await publish(docEvent('shop', 'orders', 'o1', { total: 11 }, 'document:updated'));

    const page = await newPage(t);
    const errors = watchErrors(page);
    await page.goto(url());
    await page.waitForFunction(() => window.__state?.events.length === 2, null, { timeout: 10_000 });
    const sub = await page.evaluate(() => window.__sent.find((m) => m.op === 'subscribe'));
    assert.equal(sub.since, lastOffset, 'resumed from the offset stored in IndexedDB');
    const state = await page.evaluate(() => window.__state);
    assert.deepEqual(state.events.map((e) => e.id), ['o5', 'o1'], 'only the missed events, not everything');
    assert.equal(state.resets.length, 0);
    assert.deepEqual(await docsOf(page), { o1: { total: 11 }, o2: { total: 25 }, o4: { total: 40 }, o5: { total: 50 } });

    // A plain reload: the documents are there from the cache before any event.
    await page.reload();
    await page.waitForSelector('#docs li[data-id="o5"]', { timeout: 10_000 });
    await page.waitForFunction(() => window.__state?.subscribed.length === 1);
    assert.equal((await page.evaluate(() => window.__state)).events.length, 0);
    assert.equal((await page.evaluate(() => window.__sent.find((m) => m.op === 'subscribe'))).since, state.events.at(-1).offset);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('goes offline and back online, then resumes', async (t) => {
    const page = await newPage(t);
    await page.goto(url());
    await page.waitForFunction(() => window.__state?.subscribed.length === 1, null, { timeout: 10_000 });
    await context.setOffline(true);
    await page.waitForFunction(() => window.__client.status.state === 'offline', null, { timeout: 5000 });
    await publish(docEvent('shop', 'orders', 'o6', { total: 60 }, 'document:created'));
    await context.setOffline(false);
    await page.waitForFunction(() => window.__state.events.some((e) => e.id === 'o6'), null, { timeout: 10_000 });
    const states = await page.evaluate(() => window.__states);
    const dedup = states.filter((s, i) => i === 0 || states[i - 1] !== s);
    assert.deepEqual(dedup.slice(-3), ['offline', 'reconnecting', 'open']);
    assert.equal((await page.evaluate(() => window.__state)).resets.length, 0);
    await page.close();
  });
});

/**
 * Installs the package as a user does today: `npm pack`, then a fresh app
 * with React that installs the tarball, bundled by the app's own resolution
 * (esbuild from the app's directory). Returns the esbuild metafile.
 */
async function installPackedApp() {
  const app = mkdtempSync(join(tmpdir(), 'syncgate-app-'));
  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', app], { cwd: PKG, encoding: 'utf8' }).trim().split('\n').at(-1);
  const lock = JSON.parse(readFileSync(join(PKG, 'package-lock.json'), 'utf8'));
  const version = (name) => lock.packages[`node_modules/${name}`].version;
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'fresh-app',
      private: true,
      type: 'module',
      dependencies: { '@syncgate/client': `file:./${packed}`, react: version('react'), 'react-dom': version('react-dom') },
    }),
  );
  // The React versions of this package's lockfile are in npm's cache already.
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: app, stdio: 'pipe' });
  writeFileSync(
    join(app, 'main.js'),
    `import { createElement as h } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient } from '@syncgate/client';
import { SyncProvider, useConnection, useEvents } from '@syncgate/client/react';
const p = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
const client = createClient({ url: p.gateway, token: p.token });
window.__count = 0;
function App() {
  const c = useConnection();
  useEvents('installed', 'items', {
    onSubscribed: () => { window.__live = true; },
    onEvents: (events) => { window.__count += events.length; document.getElementById('count').textContent = String(window.__count); },
  });
  return h('p', { id: 'status', 'data-state': c.state, 'data-connection': c.connectionId ?? '' }, c.state);
}
createRoot(document.getElementById('root')).render(h(SyncProvider, { client }, h(App)));
`,
  );
  const result = await build({
    absWorkingDir: app,
    entryPoints: ['main.js'],
    outfile: join(pagesDir, 'installed-app.js'),
    bundle: true,
    format: 'esm',
    target: 'es2022',
    metafile: true,
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'warning',
  });
  writeFileSync(
    join(pagesDir, 'installed.html'),
    '<!doctype html><meta charset="utf-8"><title>installed</title><link rel="icon" href="data:,"><body><div id="root"></div><p id="count">0</p><script type="module" src="installed-app.js"></script>',
  );
  return { app, packed, metafile: result.metafile };
}

describe('installing the packed tarball', () => {
  it('a fresh React app installs `npm pack`\'s tarball and renders a hook in Chromium', async (t) => {
    const { app, packed, metafile } = await installPackedApp();
    t.after(() => rmSync(app, { recursive: true, force: true }));
    assert.match(packed, /^syncgate-client-.*\.tgz$/);
    const installed = join(app, 'node_modules/@syncgate/client');
    assert.ok(existsSync(join(installed, 'dist/react.js')), 'dist/ is in the tarball');
    assert.ok(!existsSync(join(installed, 'node_modules')), 'the package brings no dependencies of its own');
    // One React: every React module in the bundle is the app's.
    const reacts = Object.keys(metafile.inputs).filter((f) => /node_modules\/react(-dom)?\//.test(f));
    assert.ok(reacts.length > 0, 'React is bundled');
    assert.deepEqual(reacts.filter((f) => !/^node_modules\/react(-dom)?\//.test(f)), [], 'no second copy of React');
    assert.ok(Object.keys(metafile.inputs).some((f) => f.startsWith('node_modules/@syncgate/client/dist/')), 'the SDK came from the installed tarball');

    const page = await newPage(t);
    const errors = watchErrors(page);
    await page.goto(`${pagesBase}/installed.html#gateway=${gw.base}&token=${token}`);
    await page.waitForSelector('#status[data-state="open"]', { timeout: 10_000 });
    assert.ok((await page.getAttribute('#status', 'data-connection')).length > 0, 'useConnection shows the connection id');
    await page.waitForFunction(() => window.__live === true, null, { timeout: 10_000 });
    await publish(docEvent('installed', 'items', 'i1', {}, 'document:created'));
    await page.waitForSelector('#count:text("1")', { timeout: 10_000 });
    assert.deepEqual(errors, [], 'no "Invalid hook call" or any other error');
  });
});

describe('React hooks', () => {
  it('subscribe once, survive re-renders, switch collections cleanly and clean up on unmount', async (t) => {
    const page = await newPage(t);
    const errors = watchErrors(page);
    await page.goto(`${pagesBase}/react.html#gateway=${gw.base}&token=${token}&project=app`);
    await page.waitForSelector('#status[data-state="open"]', { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('loading')?.textContent === 'false');
    const ops = () => page.evaluate(() => window.__sent.filter((m) => m.op === 'subscribe' || m.op === 'unsubscribe').map((m) => `${m.op} ${m.collection}`));
    await page.waitForFunction(() => window.__sent.some((m) => m.op === 'subscribe'));
    // Live before publishing: events published before `subscribed` are not the subscription's.
    await page.waitForFunction(() => window.__received.some((f) => f.op === 'subscribed' && f.collection === 'todos'));
    // useEvents, useAutoRefresh and useCollection in StrictMode: one gateway subscription.
    assert.deepEqual(await ops(), ['subscribe todos']);

    // 50 re-renders with a new inline handler each time: no traffic, and no
    // subscribe call either.
    const callsAfterMount = await page.evaluate(() => window.__counters.subscribeCalls);
    assert.ok(callsAfterMount >= 3 && callsAfterMount <= 6, `3 hooks, StrictMode: ${callsAfterMount} subscribe calls`);
    for (let i = 0; i < 50; i++) await page.evaluate(() => window.__rerender());
    await page.waitForFunction(() => window.__tick === 50);
    assert.deepEqual(await ops(), ['subscribe todos'], 'no re-subscription storm on the wire');
    assert.equal(await page.evaluate(() => window.__counters.subscribeCalls), callsAfterMount, 'no re-subscription in the client');

    await publish([1, 2, 3, 4, 5].map((n) => docEvent('app', 'todos', `t${n}`, { n }, 'document:created')));
    for (const n of [6, 7, 8]) await publish(docEvent('app', 'todos', `t${n}`, { n }, 'document:created'));
    await page.waitForFunction(() => document.querySelectorAll('#docs li').length === 8, null, { timeout: 10_000 });
    let c = await page.evaluate(() => ({ events: window.__counters.events, lastTick: window.__counters.lastTick }));
    assert.equal(c.events, 8, 'every event reached the handler once');
    assert.equal(c.lastTick, 50, 'the latest handler was called');
    await page.waitForFunction(() => window.__counters.refetches >= 1, null, { timeout: 5000 });
    const refetches = await page.evaluate(() => window.__counters.refetches);
    assert.ok(refetches <= 2, `useAutoRefresh debounced 4 frames into ${refetches} refetches`);

    // Switching collection: one unsubscribe, one subscribe.
    await page.evaluate(() => window.__setCollection('archive'));
    await page.waitForFunction(() => window.__sent.filter((m) => m.op === 'subscribe').length === 2);
    await page.waitForFunction(() => document.querySelectorAll('#docs li').length === 0);
    await page.waitForFunction(() => window.__sent.some((m) => m.op === 'unsubscribe'));
    assert.deepEqual((await ops()).sort(), ['subscribe archive', 'subscribe todos', 'unsubscribe todos']);

    // Unmount: the subscription goes and no handler runs any more.
    await page.evaluate(() => window.__setMounted(false));
    await page.waitForSelector('#unmounted');
    await page.waitForFunction(() => window.__sent.filter((m) => m.op === 'unsubscribe').length === 2);
    const before = await page.evaluate(() => window.__counters.events);
    assert.deepEqual((await ops()).sort(), ['subscribe archive', 'subscribe todos', 'unsubscribe archive', 'unsubscribe todos']);
    // No fixed wait for "nothing happened": a sentinel subscription on the
    // same connection receives an event published after the one to the
    // unmounted collection, so that one has had every chance to arrive.
    await page.evaluate(() => (window.__seen = window.__sentinel('sentinel')));
    await page.waitForFunction(() => window.__received.some((f) => f.op === 'subscribed' && f.collection === 'sentinel'));
    await publish(docEvent('app', 'archive', 'a1', {}, 'document:created'));
    await publish(docEvent('app', 'sentinel', 's1', {}, 'document:created'));
    await page.waitForFunction(() => window.__seen.includes('s1'), null, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.__counters.events), before, 'no handler of the unmounted hooks ran');
    c = await page.evaluate(() => window.__counters.handlerIdentities.size);
    assert.ok(c > 50, 'handlers really were new functions on each render');
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('take the seed\'s arguments: null waits for a project id; useProjectEvents; useConnection disconnects and reconnects', async (t) => {
    const page = await newPage(t);
    const errors = watchErrors(page);
    await page.goto(`${pagesBase}/react.html#gateway=${gw.base}&token=${token}&project=seed&projectFeed=1`);
    await page.waitForSelector('#status[data-state="open"]', { timeout: 10_000 });
    await page.waitForFunction(() => window.__sent.some((m) => m.op === 'subscribe' && m.collection === 'todos'));
    const subscribes = () => page.evaluate(() => window.__sent.filter((m) => m.op === 'subscribe').map((m) => `${m.project}/${m.collection}`));
    assert.deepEqual(await subscribes(), ['seed/todos'], 'hooks with a null project or collection subscribe to nothing');
    assert.equal(await page.getAttribute('#project-feed', 'data-loading'), 'false', 'a disabled useCollection is not loading');

    // The project id arrives: useProjectEvents subscribes to seed/*.
    await page.evaluate(() => window.__setProjectId('seed'));
    await page.waitForFunction(() => window.__received.some((f) => f.op === 'subscribed' && f.collection === '*'));
    await publish([docEvent('seed', 'orders', 'o1', {}, 'insert'), docEvent('seed', 'notes', 'n1', {}, 'document:created')]);
    await page.waitForFunction(() => window.__counters.projectEvents.length >= 2, null, { timeout: 10_000 });
    assert.deepEqual(await page.evaluate(() => window.__counters.projectEvents), ['orders/o1', 'notes/n1']);

    // useConnection: the connection id, then disconnect() and reconnect().
    const firstId = await page.textContent('#conn-id');
    assert.equal(firstId, await page.evaluate(() => window.__client.status.connection));
    assert.ok(firstId.length > 0, 'the connection id is shown');
    assert.equal(await page.textContent('#attempt'), '0');
    await page.evaluate(() => window.__disconnect());
    await page.waitForSelector('#status[data-state="disconnected"]');
    assert.equal(await page.textContent('#conn-id'), '');
    assert.equal(await page.getAttribute('#status', 'data-offline'), 'false');
    await publish(docEvent('seed', 'orders', 'o2', {}, 'insert')); // while disconnected
    await page.evaluate(() => window.__reconnect());
    await page.waitForSelector('#status[data-state="open"]', { timeout: 10_000 });
    await page.waitForFunction(() => window.__counters.projectEvents.length >= 3, null, { timeout: 10_000 });
    assert.deepEqual(await page.evaluate(() => window.__counters.projectEvents), ['orders/o1', 'notes/n1', 'orders/o2'], 'resumed: the missed event, once');
    const secondId = await page.textContent('#conn-id');
    assert.ok(secondId.length > 0 && secondId !== firstId, `a new connection (${firstId} → ${secondId})`);
    assert.deepEqual(errors, []);
  });
});
