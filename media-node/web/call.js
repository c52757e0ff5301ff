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

function waitForIceGathering(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });
}

// RFC 9725: POST the offer as application/sdp with the bearer token; 201 carries the
// answer and the session resource in Location.
async function negotiate(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc, 2000);
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', 'Authorization': `Bearer ${token}` },
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201) throw new Error(`${res.status}: ${await res.text()}`);
  const resource = new URL(res.headers.get('Location'), endpoint).href;
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
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
  (await pc.getStats()).forEach((s) => {
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
