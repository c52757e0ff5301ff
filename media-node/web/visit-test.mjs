// The visit page (/visit/) as a clinician and a patient use it: headless Chromium opens the
// page the node serves, twice, with a host's and a participant's link; both join, and each
// must decode the other's video. A recording the clinic asks for with `awaitHost` (through
// the control API, signed and over mutual TLS as the operator calls it) shows the host a
// consent prompt before anything records, and the patient a notice; the host's "no" fails
// it, the host's "yes" starts it and both pages show that the visit is recorded. An
// observer's link joins without camera or microphone. The patient leaves (and is told
// so); the host, alone, sees the visit end for idleness, with the reason in words. The
// token must be gone from the address bar.
//
// Recordings go to an S3 endpoint on loopback that never answers: a granted recording
// starts and stays recording, and nothing leaves the machine.
//
// Env: SANCTUM_MEDIA_NODE_BIN (the built binary), CHROMIUM (default /usr/bin/chromium).
// Everything listens on 127.0.0.1; keys and Chromium's profile live in a temporary
// directory removed at the end.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { control, controlPki, eventually, keygen, launchChromium, mint, startNode, stopNode } from './harness.mjs';

const bin = process.env.SANCTUM_MEDIA_NODE_BIN;
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const tenant = 'visit-test';
const room = 'room-visit';
const MIN_FRAMES = 30;
// Short enough for the test to see a lone participant's visit end.
const IDLE_SECONDS = 10;
const NODE_NAME = 'media-visit-0';

if (!bin) {
  console.error('SANCTUM_MEDIA_NODE_BIN is not set');
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'sanctum-visit-'));
let node;
let browser;
let silent;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exitCode = 1;
}

async function main() {
  keygen(bin, work, tenant);
  const pki = controlPki(join(work, 'control'), tenant);
  // S3 for the node: takes connections and never answers, so a granted recording stays
  // recording (and nothing leaves the machine).
  silent = createServer(() => {});
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const s3 = `http://127.0.0.1:${silent.address().port}`;
  const started = await startNode(bin, work, tenant, [
    '--signaling-addr', '127.0.0.1:0',
    '--media-udp-addr', '127.0.0.1:0',
    '--idle-timeout-seconds', String(IDLE_SECONDS),
    '--node-name', NODE_NAME,
    '--control-public-key', join(pki.dir, 'control.pem'),
    '--control-addr', '127.0.0.1:0',
    '--control-tls-dir', pki.dir,
    '--aws-endpoint', s3,
    '--aws-account-id', 'none',
  ], {
    logs: Boolean(process.env.SANCTUM_BROWSER_TEST_LOGS),
    // Static credentials: the SDK never looks for an instance's.
    env: { AWS_ACCESS_KEY_ID: 'visit-test', AWS_SECRET_ACCESS_KEY: 'visit-test', AWS_EC2_METADATA_DISABLED: 'true' },
  });
  node = started.node;
  const base = `http://${started.addrs.signaling_addr}`;
  const controlAddr = /Some\((.*)\)/.exec(started.addrs.control_addr)[1];
  const recordings = (id) => `/control/v1/recordings/${id}`;
  const ask = (id) => control(pki, controlAddr, NODE_NAME, 'PUT', recordings(id), JSON.stringify({
    room, bucket: 'visit-test-recordings', key: `recordings/${id}.sealed`, awaitHost: true,
  }));
  const report = async (id) => (await control(pki, controlAddr, NODE_NAME, 'GET', recordings(id))).body || {};
  browser = await launchChromium(browserPath);
  const context = await browser.newContext();

  const open = async (who, token) => {
    const page = await context.newPage();
    page.on('console', (m) => console.log(`[${who}] ${m.text()}`));
    page.on('pageerror', (e) => fail(`[${who}] ${e.message}`));
    page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) console.log(`[${who}] ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`); });
    await page.goto(`${base}/visit/#token=${encodeURIComponent(token)}`);
    if (page.url().includes('token')) fail(`[${who}] the token stays in the address bar: ${page.url()}`);
    await page.click('#join-button');
    const joined = await page.waitForSelector('#call:not([hidden])', { timeout: 15000 }).catch(() => null);
    if (!joined) throw new Error(`the ${who} did not join: "${await page.textContent('#status')}"`);
    return page;
  };
  const state = (page) => page.evaluate(() => window.sanctum.state());
  const sees = (page) => async () => {
    const s = await state(page);
    return s.tiles.some((frames) => frames >= MIN_FRAMES) && s;
  };

  const host = await open('host', mint(bin, work, tenant, room, 'u-clinician', 'host'));
  const patient = await open('patient', mint(bin, work, tenant, room, 'u-patient', 'participant'));
  const hostSaw = await eventually(20000, sees(host));
  const patientSaw = await eventually(20000, sees(patient));
  console.log(`host: ${JSON.stringify(hostSaw)}; patient: ${JSON.stringify(patientSaw)}`);
  if (!hostSaw) fail('the host never decoded the patient\'s video');
  if (!patientSaw) fail('the patient never decoded the host\'s video');
  for (const [who, s] of [['host', hostSaw], ['patient', patientSaw]]) {
    if (s && s.tiles.length !== 1) fail(`the ${who} shows ${s.tiles.length} tiles, want 1 (not its own media)`);
    if (s && (s.recording !== 'off' || s.consentShown)) fail(`the ${who} sees recording ${s.recording}`);
  }
  if (await host.isVisible('#recording')) fail('the recording banner shows while nothing records');

  // The clinic asks to record: the host is asked first, the patient told, nothing records.
  for (const [id, button] of [['rec-declined', '#consent-no'], ['rec-granted', '#consent-yes']]) {
    const asked = await ask(id);
    if (asked.status !== 202 || asked.body.phase !== 'awaitingHost') {
      fail(`the start of ${id} answered ${asked.status} ${JSON.stringify(asked.body)}`);
    }
    const prompted = await eventually(10000, async () => (await state(host)).consentShown);
    if (!prompted) fail(`the host page never showed the consent prompt for ${id}`);
    if (!(await eventually(10000, () => patient.isVisible('#awaiting')))) fail('the patient is not told a recording was asked for');
    if (await patient.isVisible('#consent')) fail('the patient is shown the host\'s consent prompt');
    if (await host.isVisible('#recording') || await patient.isVisible('#recording')) fail('the recording banner shows before the host answered');
    if ((await report(id)).phase !== 'awaitingHost') fail(`${id} is not waiting before the host answers`);
    await host.click(button);
    const after = await eventually(5000, async () => {
      const r = await report(id);
      return r.phase !== 'awaitingHost' && r;
    });
    console.log(`${id} after the host's answer: ${JSON.stringify(after)}`);
    if (id === 'rec-declined' && !(after && after.phase === 'failed' && after.reason === 'host-declined')) {
      fail(`declining left ${id} as ${JSON.stringify(after)}`);
    }
    if (id === 'rec-granted') {
      if (!(after && after.phase === 'recording')) fail(`granting did not start ${id}: ${JSON.stringify(after)}`);
      // Everyone in the visit sees it is recorded.
      for (const [who, page] of [['host', host], ['patient', patient]]) {
        if (!(await eventually(10000, () => page.isVisible('#recording')))) fail(`the ${who} is not shown that the visit is recorded`);
      }
    }
    if ((await state(host)).consentShown) fail('the consent prompt stays after the host answered');
  }

  // An observer's link: no camera, no microphone, and the others' video.
  const observer = await open('observer', mint(bin, work, tenant, room, 'u-student', 'observer'));
  if (await observer.isVisible('#mic') || await observer.isVisible('#camera')) {
    fail('an observer is offered microphone and camera controls');
  }
  const observerSaw = await eventually(20000, async () => {
    const s = await state(observer);
    return s.tiles.filter((frames) => frames >= MIN_FRAMES).length >= 2 && s;
  });
  if (!observerSaw) fail(`the observer does not see both participants: ${JSON.stringify(await state(observer))}`);
  await observer.click('#leave');

  // The patient leaves: told so; the host's tile of the patient goes away.
  await patient.click('#leave');
  const ended = (page, ms) => page.waitForSelector('#ended:not([hidden])', { timeout: ms }).catch(() => null);
  await ended(patient, 5000);
  const left = (await state(patient)).ended;
  const leftText = await patient.textContent('#ended-reason');
  if (left !== 'client-left' || !/You left/.test(leftText)) fail(`the patient's page after leaving: ${left}, "${leftText}"`);
  const alone = await eventually(10000, async () => (await state(host)).tiles.length === 0);
  if (!alone) fail(`the host still shows tiles after the patient left: ${JSON.stringify(await state(host))}`);
  if (!(await host.isVisible('#waiting'))) fail('the host is not told it waits for others');

  // Alone, nothing comes to the host's receiving leg: the visit ends for idleness, both
  // legs, and the host is told why.
  await ended(host, (IDLE_SECONDS + 10) * 1000);
  const idled = (await state(host)).ended;
  const idledText = await host.textContent('#ended-reason');
  if (idled !== 'idle-timeout' || !/nobody was active/.test(idledText)) {
    fail(`the lone host's visit: ${idled}, "${idledText}"`);
  }
  if (!process.exitCode) {
    console.log(`ok: host and patient decoded each other (${hostSaw.tiles[0]} and ${patientSaw.tiles[0]} frames), the observer both; leaving and idleness told in words`);
  }
}

try {
  await main();
} catch (e) {
  fail(e.stack || String(e));
} finally {
  if (browser) await browser.close().catch(() => {});
  // Killed: a clean stop would wait for the recording to seal into an S3 that never answers.
  await stopNode(node, 'SIGKILL');
  if (silent) silent.close();
  rmSync(work, { recursive: true, force: true });
}
