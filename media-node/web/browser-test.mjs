// Headless Chromium publishes its fake camera through WHIP to a real media node, a second
// page subscribes through WHEP, and getStats() must show video frames decoded.
//
// Env: SANCTUM_MEDIA_NODE_BIN (the built binary), CHROMIUM (default /usr/bin/chromium).
// Everything listens on 127.0.0.1; the node's keys and Chromium's profile live in a
// temporary directory removed at the end.
//
// Addresses: SANCTUM_HOST (default 127.0.0.1) is where the node and the page server
// listen, SANCTUM_SIGNALING_PORT, SANCTUM_PAGE_PORT and SANCTUM_MEDIA_UDP_PORT their ports
// (default: any free one). SANCTUM_MEDIA_TCP_PORT turns on the node's ICE-TCP candidate;
// SANCTUM_TURN_URL and SANCTUM_TURN_SECRET_FILE hand out TURN credentials. With
// SANCTUM_EXPECT_PATH (alternatives separated by `|`, each the local candidate type, the
// protocol and for a relay the protocol to the TURN server: `prflx/tcp`, `relay/udp+tcp`)
// both pages must have media on such a path; with SANCTUM_EXPECT_REMOTE (`address:port`)
// it must lead to that address of the node.
// e2e/firewall/call.sh runs Chromium in a network namespace whose firewall leaves only
// those paths open.
//
// Against a node that already runs (a pod of the local cluster, e2e/tests/real_node_call.rs):
// SANCTUM_SIGNALING_URL (its WHIP/WHEP base, HTTPS with any certificate), SANCTUM_ROOM,
// SANCTUM_PUBLISH_TOKEN and SANCTUM_VIEW_TOKEN (join tokens of that room). No node is
// started then; the pages are the node's own (/call/), and media goes wherever the node's
// answer says.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keygen, launchChromium, mint as mintToken, startNode as start, stopNode } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.SANCTUM_MEDIA_NODE_BIN;
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const tenant = 'browser-test';
const external = process.env.SANCTUM_SIGNALING_URL;
const room = process.env.SANCTUM_ROOM || 'room-browser';
const MIN_FRAMES = 30;
const host = process.env.SANCTUM_HOST || '127.0.0.1';
const port = (name) => process.env[name] || '0';
const expectPath = process.env.SANCTUM_EXPECT_PATH;
const expectRemote = process.env.SANCTUM_EXPECT_REMOTE;

if (!bin && !external) {
  console.error('SANCTUM_MEDIA_NODE_BIN (or SANCTUM_SIGNALING_URL) is not set');
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'sanctum-browser-'));
let node;
let browser;
let pageServer;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exitCode = 1;
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  if (pageServer) pageServer.close();
  await stopNode(node);
  rmSync(work, { recursive: true, force: true });
}

function mint(user, role) {
  return mintToken(bin, work, tenant, room, user, role);
}

// Serves index.html and its scripts on 127.0.0.1 at a free port (another origin than the
// node's: the node's CORS allow-list is what lets the page call it).
async function servePage() {
  const html = readFileSync(join(here, 'index.html'));
  const scripts = { '/call.js': readFileSync(join(here, 'call.js')), '/whip.js': readFileSync(join(here, 'whip.js')) };
  pageServer = createServer((req, res) => {
    const script = scripts[req.url.split('?')[0]];
    if (script) {
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' });
      res.end(script);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((r) => pageServer.listen(Number(port('SANCTUM_PAGE_PORT')), host, r));
  return `http://${host}:${pageServer.address().port}`;
}

// Starts the node and resolves with its addresses once it is ready.
async function startNode(pageOrigin) {
  const extra = [];
  if (process.env.SANCTUM_MEDIA_TCP_PORT) {
    extra.push('--media-tcp-addr', `${host}:${process.env.SANCTUM_MEDIA_TCP_PORT}`);
  }
  if (process.env.SANCTUM_TURN_URL) {
    extra.push('--turn-url', process.env.SANCTUM_TURN_URL,
      '--turn-secret-file', process.env.SANCTUM_TURN_SECRET_FILE);
  }
  const started = await start(bin, work, tenant, [
    '--signaling-addr', `${host}:${port('SANCTUM_SIGNALING_PORT')}`,
    '--media-udp-addr', `${host}:${port('SANCTUM_MEDIA_UDP_PORT')}`,
    '--cors-origins', pageOrigin,
    ...extra,
  ], { logs: Boolean(process.env.SANCTUM_BROWSER_TEST_LOGS) });
  node = started.node;
  return started.addrs;
}

async function main() {
  let origin;
  let signaling;
  let publishToken;
  let viewToken;
  if (external) {
    signaling = external;
    origin = `${external}/call`;
    publishToken = process.env.SANCTUM_PUBLISH_TOKEN;
    viewToken = process.env.SANCTUM_VIEW_TOKEN;
  } else {
    origin = await servePage();
    keygen(bin, work, tenant);
    const addrs = await startNode(origin);
    signaling = `http://${addrs.signaling_addr}`;
    publishToken = mint('u-camera', 'host');
    viewToken = mint('u-viewer', 'observer');
  }

  // Camera and WebRTC need a secure context: loopback is one, another plain-HTTP origin
  // (a namespace's link address) must be named as one.
  const insecure = host === '127.0.0.1' || external ? []
    : [`--unsafely-treat-insecure-origin-as-secure=${origin},${signaling}`];
  browser = await launchChromium(browserPath, insecure);
  // A node in the cluster serves the tenant's certificate, which this machine does not trust.
  const context = await browser.newContext({ ignoreHTTPSErrors: Boolean(external) });
  const open = async (mode, path, token) => {
    const page = await context.newPage();
    page.on('console', (m) => console.log(`[${mode}] ${m.text()}`));
    const endpoint = encodeURIComponent(external ? `/${path}/${room}` : `${signaling}/${path}/${room}`);
    // The token travels in the fragment, which the browser never sends to a server.
    await page.goto(`${origin}/?mode=${mode}&endpoint=${endpoint}#token=${encodeURIComponent(token)}`);
    await page.evaluate(() => window.sanctum.ready);
    return page;
  };
  const publisher = await open('publish', 'whip', publishToken);
  const subscriber = await open('subscribe', 'whep', viewToken);

  let stats;
  for (let i = 0; i < 60; i++) {
    stats = await subscriber.evaluate(() => window.sanctum.stats());
    if (stats.framesDecoded >= MIN_FRAMES) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const sent = await publisher.evaluate(() => window.sanctum.stats());
  console.log(`publisher: ${JSON.stringify(sent)}`);
  console.log(`subscriber: ${JSON.stringify(stats)}`);
  if (!(stats.framesDecoded >= MIN_FRAMES)) {
    fail(`the subscriber decoded ${stats.framesDecoded} video frames (want >= ${MIN_FRAMES})`);
  }
  if (expectRemote) {
    for (const [who, s] of [['publisher', sent], ['subscriber', stats]]) {
      const remote = s.path && s.path.remoteAddress;
      if (remote !== expectRemote) fail(`the ${who}'s media goes to ${remote}, want ${expectRemote}`);
    }
  }
  if (expectPath) {
    const path = (p) => p && `${p.local}/${p.protocol}${p.relayProtocol ? `+${p.relayProtocol}` : ''}`;
    for (const [who, s] of [['publisher', sent], ['subscriber', stats]]) {
      if (!expectPath.split('|').includes(path(s.path))) {
        fail(`the ${who}'s media path is ${path(s.path)}, want ${expectPath}`);
      }
    }
  }
  const left = [await subscriber.evaluate(() => window.sanctum.leave()),
    await publisher.evaluate(() => window.sanctum.leave())];
  if (left.some((s) => s !== 200)) fail(`DELETE of the sessions answered ${left}`);
  if (!process.exitCode) {
    const over = expectPath ? ` over ${(stats.path || {}).protocol} (${JSON.stringify(stats.path)})` : '';
    console.log(`ok: ${stats.framesDecoded} frames decoded through the SFU${over}`);
  }
}

try {
  await main();
} catch (e) {
  fail(e.stack || String(e));
} finally {
  await cleanup();
}
