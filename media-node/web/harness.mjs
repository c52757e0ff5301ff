// What the browser tests share: a media node started from its binary with fresh keys in a
// temporary directory, join tokens minted by that binary, and headless Chromium with a
// fake camera and microphone. Everything listens on loopback unless told otherwise.

import { spawn, execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

// Generates the tenant's keys into `work`.
export function keygen(bin, work, tenant) {
  execFileSync(bin, ['keygen', '--dir', work, '--tenant', tenant]);
}

// A join token of `room` for `user` as `role`, signed with the key in `work`.
export function mint(bin, work, tenant, room, user, role, ttlSeconds = 300) {
  return execFileSync(bin, ['mint-token', '--key', join(work, 'private.pem'), '--tenant', tenant,
    '--room', room, '--user', user, '--role', role, '--ttl-seconds', String(ttlSeconds)]).toString().trim();
}

// Starts `bin serve` with the local key provider and the keys in `work`, plus `args`;
// resolves with { node, addrs } once it logs "media node started" and is ready.
export async function startNode(bin, work, tenant, args, { logs = false, env = {} } = {}) {
  const node = spawn(bin, ['serve',
    '--tenant', tenant,
    '--metrics-addr', '127.0.0.1:0',
    '--insecure-http',
    '--key-provider', 'local',
    '--tenant-key-file', join(work, 'tenant-key'),
    '--local-master-key-file', join(work, 'master.key'),
    '--join-token-public-key', join(work, 'public.pem'),
    ...args,
  ], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const addrs = await new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error('the media node did not start')), 15000);
    node.stdout.on('data', (chunk) => {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (logs) console.log(line);
        try {
          const ev = JSON.parse(line);
          if (ev.message === 'media node started') {
            clearTimeout(timer);
            resolve(ev);
          }
        } catch { /* not JSON */ }
      }
    });
    node.once('exit', (code) => reject(new Error(`the media node exited with ${code}`)));
  });
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`http://${addrs.metrics_addr}/readyz`).catch(() => null);
    if (res && res.status === 200) return { node, addrs };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the media node never became ready');
}

// Stops a node started by startNode (SIGTERM: it drains and seals its recordings).
export async function stopNode(node, signal = 'SIGTERM') {
  if (node && node.exitCode === null) {
    node.kill(signal);
    await new Promise((r) => node.once('exit', r));
  }
}

// Headless Chromium whose camera and microphone are fake and granted, with `args` added.
export function launchChromium(executablePath, args = []) {
  return chromium.launch({
    executablePath,
    args: [...args,
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ],
  });
}

// Polls `f` every 250 ms until it returns a truthy value or `ms` pass; its last value.
export async function eventually(ms, f) {
  const deadline = Date.now() + ms;
  let value;
  while (Date.now() < deadline) {
    value = await f();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  return value;
}

// The tenant's control PKI as the operator makes it, in `dir`: a CA, the node's server
// certificate for control.<tenant>.sanctum.internal (`ca.crt`, `tls.crt`, `tls.key`, what
// --control-tls-dir reads), a client certificate of that CA for the caller, and the
// Ed25519 control key (`control.pem`, what --control-public-key reads). Made by openssl.
export function controlPki(dir, tenant) {
  mkdirSync(dir, { recursive: true });
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=control-ca', '-days', '1',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  const issue = (name, ext) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  };
  const serverName = `control.${tenant}.sanctum.internal`;
  issue('tls', `subjectAltName=DNS:${serverName}\nextendedKeyUsage=serverAuth\n`);
  issue('client', 'subjectAltName=DNS:operator\nextendedKeyUsage=clientAuth\n');
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'control.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  return { dir, tenant, serverName, privateKey };
}

const b64url = (data) => Buffer.from(data).toString('base64url');

// A control API request to the node at `addr` (host:port) named `node`, signed for
// exactly itself as the operator signs it (operator/control); resolves with
// { status, body }.
export function control(pki, addr, node, method, path, body = '') {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: 'sanctum-operator', aud: `sanctum-control:${pki.tenant}`, sub: node, iat: now, exp: now + 10,
    jti: randomBytes(16).toString('hex'), htm: method, htu: path,
    bsh: createHash('sha256').update(body).digest('hex'),
  };
  const input = `${b64url(JSON.stringify({ alg: 'EdDSA', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  const token = `${input}.${b64url(cryptoSign(null, Buffer.from(input), pki.privateKey))}`;
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host, port, method, path, servername: pki.serverName,
      ca: readFileSync(join(pki.dir, 'ca.crt')),
      cert: readFileSync(join(pki.dir, 'client.crt')),
      key: readFileSync(join(pki.dir, 'client.key')),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let parsed = null;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
