// Chat: rooms, and a room's live conversation over the gateway's WebSocket (ww.chat.v1).
// Older messages load as you scroll up; after a dropped connection the page reconnects and
// resumes from the last message it saw; your messages show as sent once the server acknowledges
// them, and unacknowledged ones are sent again with the same clientMsgId (never twice).

import { useEffect, useRef, useState } from "./vendor/preact-htm.js";
import { api, refresh, token } from "./api.js";
import { Problem, clock, html, randomKey, useLoad } from "./ui.js";

function roomFromHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] !== "chat" || !parts[1]) return null;
  try {
    return decodeURIComponent(parts[1]);
  } catch {
    return null; // a mangled address: the room list
  }
}

function Rooms({ onPick }) {
  const [rooms, error, reload] = useLoad(() => api("/api/chat/rooms"));
  const [failure, setFailure] = useState(null);
  const create = async (event) => {
    event.preventDefault();
    const name = event.target.elements.room.value.trim().toLowerCase();
    setFailure(null);
    try {
      await api("/api/chat/rooms", { method: "POST", body: { name } });
      reload();
      onPick(name);
    } catch (e) {
      if (e.status === 409) onPick(name);
      else setFailure(e);
    }
  };
  return html`<div class="stack">
    <${Problem} error=${error} />
    <ul class="rooms">
      ${(rooms || []).map((r) => html`<li key=${r.name}>
        <a href=${`#/chat/${encodeURIComponent(r.name)}`}>#${r.name}</a> <span class="muted">${r.description}</span></li>`)}
    </ul>
    ${rooms && rooms.length === 0 && html`<p>No rooms yet: start one.</p>`}
    <form class="inline" onSubmit=${create}>
      <label for="room">Room name</label>
      <input id="room" name="room" required pattern="[a-z0-9][a-z0-9_\\-]{0,63}" maxlength="64"
        title="Lowercase letters, digits, - or _" />
      <button type="submit">Open room</button>
    </form>
    <${Problem} error=${failure} />
  </div>`;
}

function Room({ room, me }) {
  const [messages, setMessages] = useState([]); // sorted by offset
  const [pending, setPending] = useState([]); // [{clientMsgId, text}]
  const [status, setStatus] = useState("connecting");
  const [online, setOnline] = useState(null);
  const [older, setOlder] = useState(undefined); // cursor of older history; null when none
  const [failure, setFailure] = useState(null);
  const [heard, setHeard] = useState(""); // the latest message from someone else, announced
  const socket = useRef(null);
  const seen = useRef({ epoch: null, offset: -1 });
  const pendingRef = useRef([]);
  const inFlight = useRef(new Set()); // clientMsgIds sent on the current socket, not yet acked
  const resend = useRef(null);
  const list = useRef(null);
  pendingRef.current = pending;

  const merge = (incoming) =>
    setMessages((current) => {
      const byId = new Map(current.map((m) => [m.id, m]));
      for (const m of incoming) byId.set(m.id, m);
      return [...byId.values()].sort((a, b) => a.offset - b.offset);
    });

  const loadOlder = async (cursor) => {
    const page = await api(`/api/chat/rooms/${encodeURIComponent(room)}/messages?limit=50${cursor ? `&before=${cursor}` : ""}`);
    merge(page.messages);
    setOlder(page.next);
    return page.messages;
  };

  // Sends what is pending and not yet on this socket, one after another; the server limits the
  // rate of sends, and answers `rate-limited` with when to try again.
  const flush = () => {
    const ws = socket.current;
    if (ws?.readyState !== WebSocket.OPEN) return;
    for (const p of pendingRef.current) {
      if (inFlight.current.has(p.clientMsgId)) continue;
      inFlight.current.add(p.clientMsgId);
      ws.send(JSON.stringify({ type: "send", clientMsgId: p.clientMsgId, text: p.text }));
      break; // the next one goes when this one is acknowledged
    }
  };

  useEffect(() => {
    let closed = false;
    let attempt = 0;
    let retry = null;
    const again = () => {
      if (closed) return;
      setStatus("reconnecting");
      attempt += 1;
      retry = setTimeout(connect, Math.min(10_000, 300 * 2 ** Math.min(attempt, 5)));
    };
    async function connect() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      let bearer;
      try {
        bearer = await token();
      } catch {
        again();
        return;
      }
      if (closed) return; // left the room while waiting for the token
      const ws = new WebSocket(`${scheme}//${location.host}/ws/chat/${encodeURIComponent(room)}`, ["ww.chat.v1", `ww.bearer.${bearer}`]);
      socket.current = ws;
      inFlight.current = new Set();
      ws.onmessage = async (event) => {
        const frame = JSON.parse(event.data);
        switch (frame.type) {
          case "ready": {
            attempt = 0;
            setStatus("live");
            setFailure(null);
            if (seen.current.epoch === frame.epoch && seen.current.offset >= 0) {
              ws.send(JSON.stringify({ type: "resume", epoch: frame.epoch, sinceOffset: seen.current.offset }));
            } else {
              // A new epoch numbers offsets afresh: what was shown belongs to the old one.
              if (seen.current.epoch !== null) setMessages([]);
              seen.current = { epoch: frame.epoch, offset: -1 };
              try {
                const latest = await loadOlder(null);
                seen.current.offset = latest.reduce((max, m) => Math.max(max, m.offset), seen.current.offset);
              } catch (e) {
                setFailure(e);
              }
              ws.send(JSON.stringify({ type: "resume", epoch: frame.epoch, sinceOffset: seen.current.offset }));
            }
            // Whatever was not acknowledged before the connection dropped goes again, same id.
            flush();
            break;
          }
          case "message":
            seen.current.offset = Math.max(seen.current.offset, frame.offset);
            merge([frame]);
            if (frame.userId !== me.userId) setHeard(`${frame.nickname}: ${frame.text}`);
            break;
          case "ack":
            inFlight.current.delete(frame.clientMsgId);
            pendingRef.current = pendingRef.current.filter((m) => m.clientMsgId !== frame.clientMsgId);
            setPending(pendingRef.current);
            flush();
            break;
          case "presence":
            setOnline(frame.online);
            break;
          case "deleted":
            setMessages((m) => m.filter((x) => x.id !== frame.id));
            break;
          case "error":
            if (frame.code === "rate-limited" || frame.code === "not-sent") {
              // Not sent: send again after the pause the server asked for (same ids).
              inFlight.current = new Set();
              clearTimeout(resend.current);
              resend.current = setTimeout(flush, frame.retryAfterMs ?? 1000);
            } else {
              setFailure(new Error(frame.message));
            }
            break;
          default:
        }
      };
      ws.onclose = async (event) => {
        if (closed || socket.current !== ws) return;
        // The token expired or the session ended: a fresh token, or sign in again.
        if ([4001, 4003, 4004].includes(event.code) && !(await refresh().catch(() => true))) return;
        again();
      };
    }
    connect();
    // Keep the socket's token current (access tokens live minutes, rooms stay open for hours).
    const reauth = setInterval(async () => {
      const ws = socket.current;
      try {
        if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "reauth", token: await token() }));
      } catch {
        /* the next reconnect asks again */
      }
    }, 240_000);
    return () => {
      closed = true;
      clearTimeout(retry);
      clearTimeout(resend.current);
      clearInterval(reauth);
      socket.current?.close(1000);
      socket.current = null;
    };
  }, [room]);

  // Stay at the bottom when new messages arrive, unless reading older ones.
  const stick = useRef(true);
  useEffect(() => {
    const el = list.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [messages, pending]);

  const onScroll = async () => {
    const el = list.current;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 20 && older) {
      const height = el.scrollHeight;
      const cursor = older;
      setOlder(undefined);
      try {
        await loadOlder(cursor);
        el.scrollTop = el.scrollHeight - height;
      } catch (e) {
        setOlder(cursor); // try again on the next scroll
        setFailure(e);
      }
    }
  };

  const send = (event) => {
    event.preventDefault();
    const input = event.target.elements.text;
    const text = input.value.trim();
    if (!text) return;
    pendingRef.current = [...pendingRef.current, { clientMsgId: randomKey(), text }];
    setPending(pendingRef.current);
    input.value = "";
    flush();
  };

  return html`<section class="chat" aria-labelledby="room-title">
    <div class="mission-head">
      <h2 id="room-title">#${room}</h2>
      <span class="muted">${status === "live" ? `connected${online != null ? ` · ${online} here` : ""}` : status}</span>
    </div>
    <ol class="messages" ref=${list} onScroll=${onScroll} tabindex="0" aria-label=${`Messages in ${room}`}>
      ${older && html`<li class="muted">Scroll up for older messages</li>`}
      ${messages.map((m) => html`<li key=${m.id} class=${m.userId === me.userId ? "mine" : ""}>
        <span class="who">${m.nickname}</span> <span class="muted">${clock(m.sentAt)}</span>
        <p class="user-text">${m.text}</p></li>`)}
      ${pending.map((m) => html`<li key=${m.clientMsgId} class="mine pending">
        <span class="who">you</span> <span class="muted">sending…</span><p class="user-text">${m.text}</p></li>`)}
    </ol>
    <p class="visually-hidden" aria-live="polite">${heard}</p>
    <form class="inline" onSubmit=${send}>
      <label for="chat-text" class="visually-hidden">Message</label>
      <input id="chat-text" name="text" maxlength="2000" autocomplete="off" placeholder="Say something" required />
      <button type="submit">Send</button>
    </form>
    <${Problem} error=${failure} />
  </section>`;
}

export function Chat({ me }) {
  const [room, setRoom] = useState(roomFromHash());
  useEffect(() => {
    const f = () => setRoom(roomFromHash());
    addEventListener("hashchange", f);
    return () => removeEventListener("hashchange", f);
  }, []);
  const pick = (name) => { location.hash = `#/chat/${encodeURIComponent(name)}`; };
  return room
    ? html`<div class="stack"><a href="#/chat">← All rooms</a><${Room} key=${room} room=${room} me=${me} /></div>`
    : html`<${Rooms} onPick=${pick} />`;
}
