// dashboard.mjs: drives the dashboard and the chat page in headless Chromium
// (playwright-core with Debian's chromium). Run by tests/test_web.py.
// usage: node dashboard.mjs SPEC.json
//   SPEC: {"base": URL, "chromium": PATH, "stages": {node_id: region}, "layers": N,
//          "prompt": TEXT, "max_tokens": N, "expected_reply": TEXT, "step_file": PATH,
//          "screenshot": PATH or null}
// Prints "ok ..." lines, and "FAIL: ..." lines; exits 1 if any check failed.
// Between phases it writes a step name to step_file and waits for the Python
// harness to answer "go" (it kills a stage, then the page must show the gap).
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.SWISD_WEB_MODULES + '/');
const { chromium } = require('playwright-core');
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
let failed = 0;
const check = (cond, what) => {
  if (cond) console.log('ok ' + what);
  else { failed++; console.log('FAIL: ' + what); }
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function handshake(step) {
  fs.writeFileSync(spec.step_file, step);
  for (let i = 0; i < 600; i++) {
    if (fs.readFileSync(spec.step_file, 'utf8') === 'go') return;
    await sleep(100);
  }
  throw new Error('the harness did not answer ' + step);
}

const browser = await chromium.launch({
  executablePath: spec.chromium,
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
         '--disable-background-networking', '--no-first-run'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  // 1. the dashboard lists every live stage, by region, with its layers
  await page.goto(spec.base + '/', { waitUntil: 'load' });
  const want = Object.keys(spec.stages).sort();
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=stage-row]').length === n,
                             want.length, { timeout: 20000 }).catch(() => {});
  const rows = await page.$$eval('[data-testid=stage-row]', (els) => els.map((e) => e.getAttribute('data-node-id')));
  check(JSON.stringify([...rows].sort()) === JSON.stringify(want), `stage rows ${rows.length}: ${rows} vs ${want}`);
  const shown = await page.$$eval('[data-testid=stage-row]', (els) => Object.fromEntries(els.map((e) =>
    [e.getAttribute('data-node-id'), e.querySelector('[data-testid=stage-node]').textContent])));
  check(Object.entries(spec.names).every(([id, name]) => (shown[id] || '').includes(name) &&
                                         shown[id].includes(id.slice(0, 8))),
        'each stage shows its display name beside its fingerprint: ' + JSON.stringify(shown));
  const byRegion = await page.$$eval('[data-testid=region]', (els) => els.map((e) => ({
    region: e.getAttribute('data-region'),
    ids: [...e.querySelectorAll('[data-testid=stage-row]')].map((r) => r.getAttribute('data-node-id')),
  })));
  let regionsOk = byRegion.length === new Set(Object.values(spec.stages)).size;
  for (const r of byRegion) for (const id of r.ids) regionsOk = regionsOk && spec.stages[id] === r.region;
  check(regionsOk, 'stages grouped by their region: ' + JSON.stringify(byRegion));
  const unv = await page.textContent('[data-testid=unverified-text]').catch(() => '');
  check(unv.includes('unverified layers 0-4'), 'layers held by a single host are shown as unverified: ' + unv);
  const covText = await page.textContent('[data-testid=coverage-text]');
  check(covText.includes(`all ${spec.layers} layers covered`), 'coverage: ' + covText);
  const layerCells = await page.$$eval('[data-testid=layer]', (els) => els.map((e) => Number(e.getAttribute('data-covered'))));
  check(layerCells.length === spec.layers && layerCells.every((c) => c >= 1), 'layer cells: ' + layerCells);
  check(await page.isVisible('[data-testid=plot-throughput]') && await page.isVisible('[data-testid=plot-ttft]'),
        'throughput and time-to-first-token plots are shown');

  // 1b. the Contributors card: every stage key with the credit its work earned (the generations above),
  //     its display name beside its fingerprint, audited at rate 100% and new (no audit verdicts yet)
  await page.waitForFunction((n) => [...document.querySelectorAll('[data-testid=contributor-row]')]
    .filter((r) => Number(r.getAttribute('data-granted')) + Number(r.getAttribute('data-pending')) > 0).length === n,
  want.length, { timeout: 20000 }).catch(() => {});
  const contributors = await page.$$eval('[data-testid=contributor-row]', (els) => els.map((e) => ({
    id: e.getAttribute('data-node-id'),
    credit: Number(e.getAttribute('data-granted')) + Number(e.getAttribute('data-pending')),
    node: e.querySelector('[data-testid=contributor-node]').textContent,
    status: e.querySelector('[data-testid=contributor-status]').textContent,
    rate: e.children[6].textContent,
  })));
  check(JSON.stringify(contributors.map((c) => c.id).sort()) === JSON.stringify(want) &&
        contributors.every((c) => c.credit > 0),
        'the Contributors card lists each stage key with credit: ' + JSON.stringify(contributors));
  check(contributors.every((c) => c.node.includes(spec.names[c.id]) && c.node.includes(c.id.slice(0, 8)) &&
                               c.status === 'new' && c.rate === '100%'),
        'each contributor shows its display name, fingerprint, audit rate 100% and the "new" badge');
  const layersOf = spec.stage_layers;
  const perLayer = contributors.map((c) => c.credit / layersOf[c.id]);
  check(perLayer.every((x) => Math.abs(x - perLayer[0]) <= 1e-6 * perLayer[0]),
        'credit is proportional to each stage\'s layers (the same rows went through all): ' + perLayer);

  // 2. chat: the reply streams into the page, and equals the API's own answer
  await page.click('[data-testid=nav-chat]');
  await page.waitForSelector('[data-testid=chat-input]');
  await page.fill('[data-testid=chat-max-tokens]', String(spec.max_tokens));
  await page.fill('[data-testid=chat-temperature]', '0');
  await page.waitForFunction(() => !document.body.textContent.includes('model ?'), null, { timeout: 10000 });
  // record every text the assistant message shows while it streams
  await page.evaluate(() => {
    window.__seen = [];
    new MutationObserver(() => {
      const m = [...document.querySelectorAll('[data-testid=assistant-message]')].pop();
      if (m && m.getAttribute('data-streaming') === 'true') window.__seen.push(m.querySelector('.bubble').textContent);
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.fill('[data-testid=chat-input]', spec.prompt);
  await page.click('[data-testid=chat-send]');
  await page.waitForSelector('[data-testid=assistant-message][data-streaming=false]', { timeout: 60000 });
  const reply = await page.textContent('[data-testid=assistant-message] .bubble');
  check(reply === spec.expected_reply, `chat reply ${JSON.stringify(reply)} vs the API's ${JSON.stringify(spec.expected_reply)}`);
  const seen = await page.evaluate(() => [...new Set(window.__seen.filter((t) => t && t !== '\u2026'))]);
  check(seen.length >= 3 && seen.every((t) => spec.expected_reply.startsWith(t)),
        `the reply grew in ${seen.length} steps, each a prefix of the answer`);
  check((await page.$$('[data-testid=chat-error]')).length === 0, 'no chat error shown');
  check(await page.textContent('[data-testid=user-message]') === spec.prompt, 'the user message is shown');

  // 3. back on the dashboard: the generation shows in the counters; a stage that leaves leaves a gap
  await page.click('[data-testid=nav-dashboard]');
  await page.waitForSelector('[data-testid=tokens-total]');
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=tokens-total]').textContent) > 0,
                             null, { timeout: 10000 }).catch(() => {});
  check(Number(await page.textContent('[data-testid=tokens-total]')) > 0, 'tokens generated counted');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=plot-ttft] canvas').length > 0, null,
                             { timeout: 10000 }).catch(() => {});
  check((await page.$$('[data-testid=plot-ttft] canvas')).length > 0, 'the time-to-first-token plot has data');
  if (spec.screenshot) {
    await sleep(2500); // two polls: the swarm throughput series has points
    await page.screenshot({ path: spec.screenshot, fullPage: true });
    console.log('ok screenshot ' + spec.screenshot);
  }
  await handshake('kill-stage');
  await page.waitForFunction(() => (document.querySelector('[data-testid=coverage-text]')?.textContent ?? '').includes('missing'),
                             null, { timeout: 30000 }).catch(() => {});
  const gapText = await page.textContent('[data-testid=coverage-text]');
  check(gapText.includes(`missing layers ${spec.gap}`), 'gap shown: ' + gapText);
  const cells = await page.$$eval('[data-testid=layer]', (els) => els.map((e) => Number(e.getAttribute('data-covered'))));
  check(cells.filter((c) => c === 0).length === spec.gap_layers, 'uncovered layer cells: ' + cells);
  check(await page.textContent('[data-testid=servable]') === 'no', 'not servable while layers are missing');

  // 4. the gateway goes away: the page says so and keeps polling
  await handshake('kill-gateway');
  await page.waitForSelector('[data-testid=offline]', { timeout: 15000 }).catch(() => {});
  check(await page.isVisible('[data-testid=offline]'), 'unreachable gateway shown');
  check(consoleErrors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED|Failed to fetch/.test(e)).length === 0,
        'no script errors: ' + consoleErrors.join(' | '));
} catch (e) {
  failed++;
  console.log('FAIL: ' + (e && e.stack ? e.stack : e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
