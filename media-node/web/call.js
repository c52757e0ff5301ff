// The test page's WebRTC client: publish (WHIP) or subscribe (WHEP) with a join token
// taken from the URL fragment. Served by the media node at /call/call.js (and by the
// browser test's own page server).
const params = new URLSearchParams(location.search);
const mode = params.get('mode');
// Relative endpoints (/whip/<room>) are the node serving this page.
const endpoint = new URL(params.get('endpoint'), location.href).href;
const token = new URLSearchParams(location.hash.slice(1)).get('token');
history.replaceState(null, '', location.pathname + location.search);
const status = document.getElementById('status');
const video = document.getElementById('video');

// ICE servers of `Link: <url>; rel="ice-server"; username=...; credential=...` headers
// (RFC 9725 §4.6); fetch() joins several into one comma-separated value.
export function iceServers(link) {
  const servers = [];
  for (const m of (link || '').matchAll(/<([^>]*)>([^,]*)/g)) {
    const params = {};
    for (const p of m[2].matchAll(/;\s*([\w-]+)="([^"]*)"/g)) params[p[1]] = p[2];
    if (params.rel !== 'ice-server') continue;
    const server = { urls: m[1] };
    if (params.username) server.username = params.username;
    if (params.credential) server.credential = params.credential;
    servers.push(server);
  }
  return servers;
}

// RFC 9725: POST the offer as application/sdp with the bearer token; 201 carries the
// answer, the session resource in Location and the ICE servers to use in Link headers.
// The offer goes out before it is applied, so the TURN servers of the answer are known
// when gathering starts (the node is ICE-lite: it needs none of the client's candidates).
async function negotiate(pc) {
  const offer = await pc.createOffer();
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', 'Authorization': `Bearer ${token}` },
    body: offer.sdp,
  });
  if (res.status !== 201) throw new Error(`${res.status}: ${await res.text()}`);
  const resource = new URL(res.headers.get('Location'), endpoint).href;
  const answer = await res.text();
  const servers = iceServers(res.headers.get('Link'));
  if (servers.length) pc.setConfiguration({ ...pc.getConfiguration(), iceServers: servers });
  await pc.setLocalDescription(offer);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  return resource;
}

async function start() {
  const pc = new RTCPeerConnection({ iceServers: [] });
  if (mode === 'publish') {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 480, frameRate: 30 },
      audio: true,
    });
    video.srcObject = stream;
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
  } else {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.ontrack = (e) => {
      if (e.track.kind === 'video') video.srcObject = new MediaStream([e.track]);
    };
  }
  const resource = await negotiate(pc);
  status.textContent = `${mode}: ${pc.connectionState}`;
  pc.onconnectionstatechange = () => { status.textContent = `${mode}: ${pc.connectionState}`; };
  return { pc, resource };
}

async function videoStats(pc) {
  const out = { connectionState: pc.connectionState, framesDecoded: 0, framesEncoded: 0, bytesReceived: 0, bytesSent: 0 };
  const report = await pc.getStats();
  // The path media took: the selected pair's local candidate (host, srflx, relay), its
  // protocol, and for a relay the protocol to the TURN server.
  report.forEach((s) => {
    if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
    const pair = report.get(s.selectedCandidatePairId);
    const local = pair && report.get(pair.localCandidateId);
    const remote = pair && report.get(pair.remoteCandidateId);
    if (!local || !remote) return;
    out.path = {
      local: local.candidateType,
      protocol: local.protocol,
      relayProtocol: local.relayProtocol || null,
      remote: remote.candidateType,
      remoteProtocol: remote.protocol,
      remoteAddress: `${remote.address}:${remote.port}`,
    };
  });
  report.forEach((s) => {
    if (s.kind !== 'video') return;
    if (s.type === 'inbound-rtp') {
      out.framesDecoded += s.framesDecoded || 0;
      out.bytesReceived += s.bytesReceived || 0;
    }
    if (s.type === 'outbound-rtp') {
      out.framesEncoded += s.framesEncoded || 0;
      out.bytesSent += s.bytesSent || 0;
    }
  });
  return out;
}

const session = start();
window.sanctum = {
  ready: session.then(() => true),
  stats: async () => videoStats((await session).pc),
  leave: async () => {
    const { pc, resource } = await session;
    const res = await fetch(resource, { method: 'DELETE', headers: { 'Authorization': `Bearer ${token}` } });
    pc.close();
    return res.status;
  },
};
session.catch((e) => { status.textContent = `error: ${e.message}`; });
