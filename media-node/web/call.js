// The test page's WebRTC client: publish (WHIP) or subscribe (WHEP) with a join token
// taken from the URL fragment. Served by the media node at /call/call.js (and by the
// browser test's own page server).
import { negotiate, leave } from './whip.js';

const params = new URLSearchParams(location.search);
const mode = params.get('mode');
// Relative endpoints (/whip/<room>) are the node serving this page.
const endpoint = new URL(params.get('endpoint'), location.href).href;
const token = new URLSearchParams(location.hash.slice(1)).get('token');
history.replaceState(null, '', location.pathname + location.search);
const status = document.getElementById('status');
const video = document.getElementById('video');

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
  const resource = await negotiate(pc, endpoint, token);
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
    const status = await leave(resource, token);
    pc.close();
    return status;
  },
};
session.catch((e) => { status.textContent = `error: ${e.message}`; });
