// Chat: rooms, and a room's live conversation over the gateway's WebSocket (ww.chat.v1).
// Older messages load as you scroll up; after a dropped connection the page reconnects and
// resumes from the last message it saw; your messages show as sent once the server acknowledges
// them, and unacknowledged ones are sent again with the same clientMsgId (never twice).

import { useEffect, useRef, useState } from "./vendor/preact-htm.js";
import { api, token } from "./api.js";
import { Problem, clock, html, randomKey, useLoad } from "./ui.js";

function roomFromHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  return parts[0] === "chat" && parts[1] ? decodeURIComponent(parts[1]) : null;
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
  const socket = useRef(null);
  const seen = useRef({ epoch: null, offset: -1 });
  const pendingRef = useRef([]);
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

  useEffect(() => {
    let closed = false;
    let attempt = 0;
    let retry = null;
    let reauth = null;
    const connect = async () => {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      let ws;
      try {
        ws = new WebSocket(`${scheme}//${location.host}/ws/chat/${encodeURIComponent(room)}`, ["ww.chat.v1", `ww.bearer.${await token()}`]);
      } catch (e) {
        setFailure(e);
        return;
      }
      socket.current = ws;
      ws.onmessage = async (event) => {
        const frame = JSON.parse(event.data);
        switch (frame.type) {
          case "ready": {
            attempt = 0;
            setStatus("live");
            if (seen.current.epoch === frame.epoch && seen.current.offset >= 0) {
              ws.send(JSON.stringify({ type: "resume", epoch: frame.epoch, sinceOffset: seen.current.offset }));
            } else {
              seen.current = { epoch: frame.epoch, offset: -1 };
              const latest = await loadOlder(null).catch((e) => { setFailure(e); return []; });
              const last = latest.reduce((max, m) => Math.max(max, m.offset), -1);
              seen.current.offset = Math.max(seen.current.offset, last);
              ws.send(JSON.stringify({ type: "resume", epoch: frame.epoch, sinceOffset: seen.current.offset }));
            }
            // Whatever was not acknowledged before the connection dropped goes again, same id.
            for (const p of pendingRef.current) ws.send(JSON.stringify({ type: "send", clientMsgId: p.clientMsgId, text: p.text }));
            break;
          }
          case "message":
            seen.current.offset = Math.max(seen.current.offset, frame.offset);
            merge([frame]);
            break;
          case "ack":
            setPending((p) => p.filter((m) => m.clientMsgId !== frame.clientMsgId));
            break;
          case "presence":
            setOnline(frame.online);
            break;
          case "deleted":
            setMessages((m) => m.filter((x) => x.id !== frame.id));
            break;
          case "error":
            setFailure(new Error(frame.message));
            break;
          default:
        }
      };
      ws.onclose = (event) => {
        if (closed) return;
        setStatus("reconnecting");
        if (event.code === 4001 || event.code === 4003 || event.code === 4004) token().catch(() => {});
        attempt += 1;
        retry = setTimeout(connect, Math.min(10_000, 300 * 2 ** Math.min(attempt, 5)));
      };
    };
    connect();
    // Keep the socket's token current (access tokens live minutes, rooms stay open for hours).
    reauth = setInterval(async () => {
      const ws = socket.current;
      if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "reauth", token: await token() }));
    }, 240_000);
    return () => {
      closed = true;
      clearTimeout(retry);
      clearInterval(reauth);
      socket.current?.close(1000);
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
      await loadOlder(cursor).catch(setFailure);
      el.scrollTop = el.scrollHeight - height;
    }
  };

  const send = (event) => {
    event.preventDefault();
    const input = event.target.elements.text;
    const text = input.value.trim();
    if (!text) return;
    const message = { clientMsgId: randomKey(), text };
    setPending((p) => [...p, message]);
    input.value = "";
    const ws = socket.current;
    if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "send", ...message }));
  };

  return html`<section class="chat" aria-labelledby="room-title">
    <div class="mission-head">
      <h2 id="room-title">#${room}</h2>
      <span class="muted" role="status">${status === "live" ? `connected${online != null ? ` · ${online} here` : ""}` : status}</span>
    </div>
    <ol class="messages" ref=${list} onScroll=${onScroll} tabindex="0" aria-label=${`Messages in ${room}`} aria-live="polite">
      ${older && html`<li class="muted">Scroll up for older messages</li>`}
      ${messages.map((m) => html`<li key=${m.id} class=${m.userId === me.userId ? "mine" : ""}>
        <span class="who">${m.nickname}</span> <span class="muted">${clock(m.sentAt)}</span>
        <p class="user-text">${m.text}</p></li>`)}
      ${pending.map((m) => html`<li key=${m.clientMsgId} class="mine pending">
        <span class="who">you</span> <span class="muted">sending…</span><p class="user-text">${m.text}</p></li>`)}
    </ol>
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
