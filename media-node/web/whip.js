// What the node's pages share: RFC 9725 negotiation (WHIP publish, WHEP subscribe) with a
// join token, and the ICE servers (TURN) the node hands out with each answer.

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

// POSTs the offer as application/sdp with the bearer token; 201 carries the answer, the
// session resource in Location and the ICE servers to use in Link headers. The offer goes
// out before it is applied, so the TURN servers of the answer are known when gathering
// starts (the node is ICE-lite: it needs none of the client's candidates). Resolves with
// the session resource's URL. A relative endpoint (/whip/<room>) is this page's origin.
export async function negotiate(pc, endpoint, token) {
  const url = new URL(endpoint, location.href).href;
  const offer = await pc.createOffer();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', 'Authorization': `Bearer ${token}` },
    body: offer.sdp,
  });
  if (res.status !== 201) {
    const error = new Error(`${res.status}: ${await res.text()}`);
    error.status = res.status;
    throw error;
  }
  const resource = new URL(res.headers.get('Location'), url).href;
  const answer = await res.text();
  const servers = iceServers(res.headers.get('Link'));
  if (servers.length) pc.setConfiguration({ ...pc.getConfiguration(), iceServers: servers });
  await pc.setLocalDescription(offer);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  return resource;
}

// The session resource's state: {state: 'live', recording: 'off' | 'awaiting-host' | 'on'}
// or {state: 'ended', reason}.
export async function sessionState(resource, token) {
  const res = await fetch(resource, { headers: { 'Authorization': `Bearer ${token}` } });
  if (res.status !== 200) return { state: 'unknown', status: res.status };
  return res.json();
}

// Leaves a session (DELETE of its resource); resolves with the status.
export async function leave(resource, token) {
  const res = await fetch(resource, { method: 'DELETE', headers: { 'Authorization': `Bearer ${token}` } });
  return res.status;
}

// The host's answer to a recording request of the room, sent on the host's own publish
// session: 'granted' starts the recording, 'declined' refuses it. Resolves with the
// room's recording state ({recording: 'on' | 'off' | 'awaiting-host'}).
export async function confirmRecording(resource, token, decision) {
  const res = await fetch(`${resource}/consent`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Authorization': `Bearer ${token}` },
    body: JSON.stringify({ decision }),
  });
  if (res.status !== 200) return { status: res.status };
  return res.json();
}
