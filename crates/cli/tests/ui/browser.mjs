// The audit-trail page's checks in a real browser (run by crates/cli/tests/ui.rs, which starts
// the stack, seeds the events and computes the oracle from the store).
// Environment: UI_URL, READ_KEY, WEBHOOK_KEY, ORACLE (a JSON file), SHOTS (a folder), CHROMIUM.
// Run from the repository's root (tests/fixtures/export/ is read from there).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const { UI_URL, READ_KEY, WEBHOOK_KEY, ORACLE, SHOTS } = process.env;
const oracle = JSON.parse(readFileSync(ORACLE, 'utf8'));
const step = (text) => console.log('check: ' + text);

// launch() starts the browser with a fresh, temporary profile (user data dir) of its own.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  const page = await context.newPage();
  const dialogs = [];
  const problems = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    // 401 and the like are expected ("Failed to load resource"); anything else is a problem.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  // Every request the page makes goes to the component; the key never appears in a URL.
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
  });

  const ready = () => page.waitForSelector('body[data-state=ready]', { timeout: 60000 });
  const shot = async (name, options) => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, name), ...options });
  };
  const rowIds = () => page.$$eval('#events tbody tr', (rows) => rows.map((r) => r.dataset.id));
  const summaryRequests = () => requests.filter((u) => new URL(u).pathname === '/events/summary').length;
  // Clicks an export button and returns the downloaded file's name and text.
  const download = async (button) => {
    const [file] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), page.click(button)]);
    return [file.suggestedFilename(), readFileSync(await file.path(), 'utf8')];
  };
  // Opens a row's stored document with the keyboard; the document shown.
  const openDocument = async (id) => {
    await page.focus(`#events tr[data-id="${id}"] .time`);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.getElementById('detail').hidden &&
      !document.getElementById('detail-json').textContent.startsWith('loading'));
    const text = await page.textContent('#detail-json');
    assert.ok(text.startsWith('{'), id + ': ' + text);
    return JSON.parse(text);
  };
  const loadAll = async () => {
    for (let i = 0; i < 100 && await page.isVisible('#more'); i++) {
      await page.click('#more');
      await ready();
    }
    assert.ok(!(await page.isVisible('#more')), 'Load more never ended');
  };

  if (process.env.PHASE === 'unavailable') {
    // The store is stopped: the read key is right, the answer is 503.
    await page.goto(UI_URL + '/');
    await ready();
    await page.fill('#key', READ_KEY);
    await page.keyboard.press('Enter');
    await ready();
    assert.equal(await page.textContent('#status'), 'The store is unavailable, try again.');
    assert.ok(await page.isVisible('#forget'), 'the key is kept: it was right');
    step('a stopped store shows "The store is unavailable, try again."');
    await context.close();
    process.exitCode = 0;
  } else {
  // 2. The page, a wrong key, then the read key.
  const response = await page.goto(UI_URL + '/');
  const headers = response.headers();
  assert.equal(response.status(), 200);
  assert.match(headers['content-security-policy'], /default-src 'none'/);
  assert.match(headers['content-security-policy'], /connect-src 'self'/);
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.match(headers['content-security-policy'], /base-uri 'none'/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['referrer-policy'], 'no-referrer');
  assert.equal(headers['content-encoding'], 'gzip');
  assert.ok(headers.etag);
  await ready();
  assert.ok(await page.evaluate(() => document.activeElement.id === 'key'), 'the key field has focus');
  await page.keyboard.type(WEBHOOK_KEY); // keyboard only: type, Enter
  await page.keyboard.press('Enter');
  await ready();
  assert.equal(await page.textContent('#status'), 'Wrong or missing read key.');
  assert.equal((await rowIds()).length, 0);
  step('a wrong key shows "Wrong or missing read key."');
  const summariesBefore = summaryRequests();
  await page.fill('#key', READ_KEY);
  await page.keyboard.press('Enter');
  await ready();
  assert.ok(await page.isHidden('#status'), await page.textContent('#status'));
  assert.equal(summaryRequests() - summariesBefore, 1, 'one summary for the first view');
  const first = await rowIds();
  assert.equal(first.length, 50);
  assert.deepEqual(first, oracle.all.slice(0, 50), 'the first page, newest first');
  await loadAll();
  const all = await rowIds();
  assert.deepEqual(all, oracle.all, 'every seeded event exactly once, newest first');
  assert.equal(new Set(all).size, all.length);
  assert.equal(await page.textContent('#end'), 'All ' + oracle.all.length + ' events shown.');
  await shot('table.png');
  assert.equal(summaryRequests() - summariesBefore, 1, 'paging asks for no summary');
  step(`the read key lists all ${all.length} events once, newest first, over ${Math.ceil(all.length / 50)} pages`);

  // The CSV rules of the page are the CLI's: the same fixture, the same expected file.
  const fixture = JSON.parse(readFileSync('tests/fixtures/export/documents.json', 'utf8'));
  const fixtureCsv = await page.evaluate((docs) => csvLine(COLUMNS) + docs.map(csvRow).join(''), fixture);
  assert.equal(fixtureCsv, readFileSync('tests/fixtures/export/expected.csv', 'utf8'), 'the CSV rules');
  // Exports of every event (more than one page of 100), equal to the store's and the CLI's.
  const [csvName, csv] = await download('#export-csv');
  assert.match(csvName, /^acr-webhook-events-.*\.csv$/);
  assert.equal(csv, oracle.csv, 'the CSV download');
  assert.ok(csv.includes(",'=cmd|' /C calc'!A0,"), 'the formula-looking tag is inert');
  assert.match(await page.textContent('#export-status'), new RegExp('^Downloaded ' + oracle.all.length + ' events as '));
  const [ndjsonName, ndjson] = await download('#export-ndjson');
  assert.match(ndjsonName, /^acr-webhook-events-.*\.ndjson$/);
  assert.equal(ndjson, oracle.ndjson, 'the NDJSON download');
  assert.deepEqual(ndjson.trim().split('\n').map((l) => JSON.parse(l).id), oracle.all);
  step(`exports: CSV and NDJSON of ${oracle.all.length} events equal the store's and the CLI's`);
  // Progress and cancel: the second page is held until the export is cancelled.
  let release;
  const held = new Promise((r) => { release = r; });
  const second = (url) => url.pathname === '/events' && url.searchParams.has('continuation') &&
    url.searchParams.get('limit') === '100';
  await page.route(second, async (route) => { await held; await route.continue().catch(() => {}); });
  const downloads = [];
  page.on('download', (d) => downloads.push(d));
  await page.click('#export-csv');
  await page.waitForFunction(() => document.getElementById('export-status').textContent === 'Exporting… 100 events so far');
  assert.ok(await page.isDisabled('#export-csv'), 'one export at a time');
  await page.click('#export-cancel');
  await page.waitForFunction(() => document.getElementById('export-status').textContent.startsWith('Export cancelled'));
  assert.equal(await page.textContent('#export-status'), 'Export cancelled after 100 events; nothing downloaded.');
  release();
  await page.unroute(second);
  assert.ok(await page.isHidden('#export-cancel'));
  assert.ok(await page.isEnabled('#export-csv'));
  assert.equal(downloads.length, 0, 'a cancelled export downloads nothing');
  assert.ok(await page.isHidden('#status'), 'cancelling is no error');
  step('an export shows its progress (100 events so far) and can be cancelled');

  // 5. Hostile names are text; nothing ran; no element came from them.
  for (const [repository, tag] of oracle.hostile) {
    const cell = await page.$$eval('#events td[data-label=Image]', (cells, want) =>
      cells.map((c) => c.textContent).filter((t) => t === want), repository + ':' + tag);
    assert.equal(cell.length, 1, 'shown as text: ' + repository + ':' + tag);
  }
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'an injected script ran');
  assert.equal(await page.$$eval('#events img, #events script, #events svg', (n) => n.length), 0);
  assert.deepEqual(dialogs, [], 'a dialog opened');
  step('hostile names render as text, no dialog, no script, CSP present');
  const pull = await page.$eval('#events tr[data-id="ui-distribution-062"] .badge', (b) => [b.textContent, b.className]);
  assert.deepEqual(pull, ['pull', 'badge b-other'], 'an action without a colour of its own');
  for (const action of ['constructor', '__proto__']) {
    const badges = await page.$$eval('#events .badge', (b, a) => b.filter((x) => x.textContent === a).map((x) => x.className), action);
    assert.deepEqual(badges, ['badge b-other'], action);
  }

  // 6. A row's stored document, opened with the keyboard; every row opens its own, also the
  // ids a path cannot name (`summary` is the summary route, fetch drops `.` and `..`).
  for (const pathless of oracle.pathless) assert.ok(oracle.all.includes(pathless), pathless);
  for (const other of oracle.all) {
    assert.deepEqual(await openDocument(other), oracle.documents[other], 'the document of ' + other);
  }
  const id = oracle.all[3];
  assert.deepEqual(await openDocument(id), oracle.documents[id]);
  // The address is shown as text, not a link: a tab opened on it would send no key (401).
  assert.equal(await page.textContent('#detail-link'), '/events?id=' + encodeURIComponent(id));
  assert.equal(await page.$$eval('#detail a[href]', (links) => links.length), 0);
  await page.keyboard.press('Escape');
  assert.ok(await page.isHidden('#detail'));
  assert.equal(summaryRequests() - summariesBefore, 1, 'documents and exports ask for no summary');
  step(`every row opens its stored document (${oracle.pathless.join(' ')} too), with its /events?id= address`);

  // 3. Filter by repository, then by action; the URL holds them; reload; back.
  await page.fill('#f-image', oracle.image);
  await page.click('#filters button:not([type])');
  await ready();
  await loadAll();
  assert.deepEqual(await rowIds(), oracle.imageIds, 'filtered by repository');
  assert.equal(new URL(page.url()).searchParams.get('image'), oracle.image);
  await page.selectOption('#f-action', 'delete');
  await page.click('#filters button:not([type])');
  await ready();
  assert.deepEqual(await rowIds(), oracle.imageDeleteIds, 'filtered by repository and action');
  let params = new URL(page.url()).searchParams;
  assert.equal(params.get('image'), oracle.image);
  assert.equal(params.get('action'), 'delete');
  await shot('filtered.png');
  await page.reload();
  await ready();
  assert.deepEqual(await rowIds(), oracle.imageDeleteIds, 'reload keeps the filters');
  assert.equal(await page.inputValue('#f-action'), 'delete');
  assert.equal(await page.inputValue('#f-image'), oracle.image);
  await page.goBack();
  await page.waitForFunction(() => document.getElementById('f-action').value === '');
  await ready();
  await loadAll();
  assert.deepEqual(await rowIds(), oracle.imageIds, 'back restores the repository view');
  assert.equal(await page.inputValue('#f-action'), '');
  step('filters: rows match the oracle, the URL holds them, reload keeps them, back restores');
  // The summary of a query is asked for once per page load: forward, back and the same
  // filters applied again reuse it (the reload above started a new page).
  const summariesNow = summaryRequests();
  await page.goForward();
  await page.waitForFunction(() => document.getElementById('f-action').value === 'delete');
  await ready();
  await page.goBack();
  await page.waitForFunction(() => document.getElementById('f-action').value === '');
  await ready();
  await page.click('#filters button:not([type])');
  await ready();
  assert.equal(summaryRequests(), summariesNow, 'a summary asked for again');
  // The export follows the filters shown.
  const [, imageCsv] = await download('#export-csv');
  assert.equal(imageCsv, oracle.imageCsv, 'the CSV of one repository');
  step('a summary is asked for once per query; the export follows the filters');

  // 4. The chart's buckets equal the oracle's, hourly and daily.
  for (const view of [oracle.hourly, oracle.daily]) {
    await page.goto(UI_URL + '/?' + new URLSearchParams({ since: view.since, until: view.until }));
    await ready();
    const bars = await page.$$eval('#chart rect', (rects) => rects.map((r) =>
      [r.dataset.start, r.dataset.action, Number(r.dataset.count), Number(r.getAttribute('y')), Number(r.getAttribute('height'))]));
    // Compared as [start, action, count] lists: an action may be named `__proto__`, which an
    // object would not keep as a key.
    const got = bars.map(([start, action, count]) => [start, action, count]).sort();
    const want = Object.entries(view.buckets).flatMap(([start, counts]) =>
      Object.entries(counts).map(([action, count]) => [start, action, count])).sort();
    assert.deepEqual(got, want, 'chart buckets ' + view.since + ' to ' + view.until);
    for (const [, action, , y, height] of bars) {
      assert.ok(Number.isFinite(y) && height > 0, 'a bar of ' + action + ' is drawn: y ' + y + ', height ' + height);
    }
    const total = want.reduce((a, [, , n]) => a + n, 0);
    assert.equal(total, oracle.all.length);
    assert.match(await page.textContent('#chart-caption'), new RegExp('^' + total + ' events per '));
    for (const action of ['pull', 'constructor', '__proto__']) {
      assert.ok(bars.some(([, a]) => a === action), action + ' is counted');
      assert.ok((await page.$$eval('#legend li', (li) => li.map((l) => l.textContent))).includes(action + ' 1'), action + ' in the legend');
    }
    step(`chart: ${bars.length} bars in ${new Set(got.map(([start]) => start)).size} buckets equal the oracle`);
  }
  // The hourly view (the README's picture, docs/page.png, is a copy of this one).
  await page.setViewportSize({ width: 1024, height: 960 });
  await page.goto(UI_URL + '/?' + new URLSearchParams({ since: oracle.hourly.since, until: oracle.hourly.until }));
  await ready();
  await shot('page.png');

  // 7. 360 px wide, and dark.
  await page.setViewportSize({ width: 360, height: 800 });
  await ready();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 360, 'no horizontal scrolling at 360 px: ' + overflow);
  await shot('narrow-360.png', { fullPage: true, clip: { x: 0, y: 0, width: 360, height: 1600 } });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.setViewportSize({ width: 1280, height: 900 });
  await shot('dark.png');
  step('screenshots in ' + SHOTS);

  // Any other error: its code and message.
  await page.goto(UI_URL + '/?' + new URLSearchParams({ since: oracle.hourly.until, until: oracle.hourly.since }));
  await ready();
  assert.match(await page.textContent('#status'), /^invalid_query: invalid query: `since` must be earlier than `until`/);
  step('another error shows its code and message: ' + await page.textContent('#status'));

  // Forget the key: the data goes, the prompt comes back.
  await page.click('#forget');
  await ready();
  assert.equal((await rowIds()).length, 0);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.ok(await page.isVisible('#key'));

  for (const url of requests) {
    assert.ok(url.startsWith(UI_URL + '/') || url.startsWith('blob:' + UI_URL + '/'), 'a request elsewhere: ' + url);
    assert.ok(!url.includes(READ_KEY) && !url.includes(WEBHOOK_KEY), 'a key in a URL');
  }
  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'CSP violations');
  assert.deepEqual(problems, [], 'console errors');
  assert.deepEqual(dialogs, []);
  step(`${requests.length} requests, all to the component, no key in any URL, no CSP violation`);
  await context.close();
  }
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
