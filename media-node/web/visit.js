// The visit page: a clinician and a patient (or a few more) in one room. Each participant
// publishes camera and microphone over WHIP and receives everyone else over one WHEP
// session with a few slots. The join token comes in the URL fragment and never leaves the
// page except as a bearer header to this origin. A host is asked to confirm the patient's
// consent before a recording the clinic requested starts; everyone sees when the visit
// is recorded, and why it ended.
import { negotiate, leave, sessionState, confirmRecording } from './whip.js';

// Video and audio slots of the receiving session: the other participants a page shows.
const SLOTS = 6;
// How often the page asks the node about its sessions (never counted as activity).
const POLL_MS = 2000;

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get('token');
history.replaceState(null, '', location.pathname + location.search);

// What the page needs from the token: the room and the role. The node verifies the
// token; the page only reads it to know where to go and what to offer.
function claimsOf(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return null;
  }
}
const claims = token && claimsOf(token);

// Why a session ended, in words for the person in the visit (EndReason on the node).
const ENDED = {
  'client-left': 'You left the visit.',
  'ended-by-host': 'The host removed you from the visit.',
  'idle-timeout': 'The visit ended because nobody was active in it for too long.',
  'max-session-length': 'The visit reached its maximum length and was ended.',
  'disconnected': 'The connection to the visit was lost.',
  'shutdown': 'The video service restarted; please join again.',
  'failed': 'The visit ended because of an error.',
};

const visit = {
  publish: null, // { pc, resource }
  receive: null, // { pc, resource }
  stream: null,
  ended: null,
  recording: 'off',
  tiles: [], // per video slot: { transceiver, figure, frames, seenAt }
  timer: null,
};

function show(section) {
  for (const id of ['join', 'call', 'ended']) $(id).hidden = id !== section;
}

function status(text) {
  $('status').textContent = text;
}

async function publish() {
  visit.stream = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 480, frameRate: 30 },
    audio: true,
  });
  $('self').srcObject = visit.stream;
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of visit.stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
  const resource = await negotiate(pc, `/whip/${encodeURIComponent(claims.room)}`, token);
  return { pc, resource };
}

async function receive() {
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (let i = 0; i < SLOTS; i++) {
    const video = pc.addTransceiver('video', { direction: 'recvonly' });
    const audio = pc.addTransceiver('audio', { direction: 'recvonly' });
    const figure = document.createElement('figure');
    figure.className = 'tile';
    figure.hidden = true;
    const element = document.createElement('video');
    element.autoplay = true;
    element.playsInline = true;
    element.muted = true; // sound plays through the slot's audio element
    element.srcObject = new MediaStream([video.receiver.track]);
    const caption = document.createElement('figcaption');
    caption.textContent = 'Participant';
    const sound = document.createElement('audio');
    sound.autoplay = true;
    sound.srcObject = new MediaStream([audio.receiver.track]);
    figure.append(element, caption, sound);
    $('tiles').append(figure);
    visit.tiles.push({ transceiver: video, figure, frames: 0, seenAt: 0 });
  }
  const resource = await negotiate(pc, `/whep/${encodeURIComponent(claims.room)}`, token);
  return { pc, resource };
}

// A slot shows a tile while its frames keep coming: the node fills a slot with another
// participant's track when one joins and empties it when they leave.
async function refreshTiles() {
  if (!visit.receive) return;
  const report = await visit.receive.pc.getStats();
  const now = Date.now();
  const byMid = new Map();
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') byMid.set(s.mid, s.framesDecoded || 0);
  });
  let visible = 0;
  for (const tile of visit.tiles) {
    const frames = byMid.get(tile.transceiver.mid) || 0;
    if (frames > tile.frames) tile.seenAt = now;
    tile.frames = frames;
    tile.figure.hidden = now - tile.seenAt > 3000;
    if (!tile.figure.hidden) visible++;
  }
  $('waiting').hidden = visible > 0;
}

function showRecording(state) {
  visit.recording = state;
  $('recording').hidden = state !== 'on';
  $('consent').hidden = !(state === 'awaiting-host' && claims.role === 'host');
  $('awaiting').hidden = !(state === 'awaiting-host' && claims.role !== 'host');
}

async function poll() {
  const legs = [visit.publish, visit.receive].filter(Boolean);
  for (const leg of legs) {
    const state = await sessionState(leg.resource, token);
    if (state.state === 'ended') return end(state.reason);
    if (state.state === 'live' && leg === legs[0]) showRecording(state.recording || 'off');
  }
  await refreshTiles();
}

async function end(reason) {
  if (visit.ended) return;
  visit.ended = reason;
  clearInterval(visit.timer);
  for (const leg of [visit.publish, visit.receive]) {
    if (!leg) continue;
    // The other leg is left too, so nobody stays half in a visit.
    await leave(leg.resource, token).catch(() => {});
    leg.pc.close();
  }
  if (visit.stream) visit.stream.getTracks().forEach((t) => t.stop());
  $('ended-reason').textContent = ENDED[reason] || 'The visit has ended.';
  $('ended').dataset.reason = reason;
  show('ended');
  status('');
}

async function join() {
  $('join-button').disabled = true;
  status('Connecting…');
  try {
    if (claims.role !== 'observer') visit.publish = await publish();
    visit.receive = await receive();
  } catch (e) {
    status(`Could not join the visit (${e.status || e.message}).`);
    $('join-button').disabled = false;
    return;
  }
  show('call');
  $('mic').hidden = $('camera').hidden = !visit.publish;
  status('');
  visit.timer = setInterval(() => poll().catch(() => {}), POLL_MS);
  poll().catch(() => {});
}

function toggle(kind, button, on, off) {
  const track = visit.stream && visit.stream.getTracks().find((t) => t.kind === kind);
  if (!track) return;
  track.enabled = !track.enabled;
  button.setAttribute('aria-pressed', String(!track.enabled));
  button.textContent = track.enabled ? on : off;
}

async function consent(decision) {
  $('consent').hidden = true;
  const result = await confirmRecording(visit.publish.resource, token, decision);
  if (result.recording) showRecording(result.recording);
}

if (!claims || !claims.room) {
  status('This link has no valid visit token. Ask the clinic for a new link.');
  $('join-button').disabled = true;
} else {
  $('intro').textContent = claims.role === 'host'
    ? 'You are the host of this visit. Your camera and microphone are used only while you are in it.'
    : 'Your camera and microphone are used only while you are in the visit.';
}
$('join-button').addEventListener('click', join);
$('leave').addEventListener('click', () => end('client-left'));
$('mic').addEventListener('click', (e) => toggle('audio', e.target, 'Mute microphone', 'Unmute microphone'));
$('camera').addEventListener('click', (e) => toggle('video', e.target, 'Turn camera off', 'Turn camera on'));
$('consent-yes').addEventListener('click', () => consent('granted').catch(() => {}));
$('consent-no').addEventListener('click', () => consent('declined').catch(() => {}));

// For the browser tests: the page's state, and each shown slot's decoded frames.
window.sanctum = {
  state: () => ({
    ended: visit.ended,
    recording: visit.recording,
    consentShown: !$('consent').hidden,
    tiles: visit.tiles.filter((t) => !t.figure.hidden).map((t) => t.frames),
  }),
};
