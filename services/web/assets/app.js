// The app: sign up or log in, then today's weather and missions, coupons, the wallet, the board
// and chat. One page; the part shown follows the address's #fragment.

import { render, useEffect, useRef, useState } from "./vendor/preact-htm.js";
import { api, login, logout, onSession, refresh, session, signup } from "./api.js";
import { Field, Note, Problem, SkipLink, describe, focusMain, html, useLoad } from "./ui.js";
import { Coupons, Wallet } from "./claim.js";
import { Board } from "./board.js";
import { Chat } from "./chat.js";

const SECTIONS = [
  ["today", "Today"],
  ["coupons", "Coupons"],
  ["wallet", "Wallet"],
  ["board", "Board"],
  ["chat", "Chat"],
];

function useRoute() {
  const read = () => (location.hash.replace(/^#\/?/, "").split("/")[0] || "today");
  const [route, setRoute] = useState(read());
  useEffect(() => {
    const f = () => setRoute(read());
    addEventListener("hashchange", f);
    return () => removeEventListener("hashchange", f);
  }, []);
  return route;
}

function SignIn() {
  const [mode, setMode] = useState("login");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    setBusy(true);
    setError(null);
    try {
      if (mode === "signup") await signup(form.get("email"), form.get("password"), form.get("nickname"));
      else await login(form.get("email"), form.get("password"));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const signingUp = mode === "signup";
  return html`<main class="page narrow" id="main">
    <h1>WeatherWise</h1>
    <p>Today's weather, a mission to go with it, and coupons for those who do it.</p>
    <form class="card" onSubmit=${submit} aria-labelledby="signin-title">
      <h2 id="signin-title">${signingUp ? "Create your account" : "Log in"}</h2>
      <${Field} label="Email" id="email" name="email" type="email" autocomplete="email" required maxlength="254" />
      <${Field}
        label="Password"
        id="password"
        name="password"
        type="password"
        required
        minlength=${signingUp ? 10 : 1}
        maxlength="128"
        autocomplete=${signingUp ? "new-password" : "current-password"}
        hint=${signingUp ? "At least 10 characters, not a common password." : undefined}
      />
      ${signingUp && html`<${Field} label="Nickname" id="nickname" name="nickname" required maxlength="32" autocomplete="nickname" />`}
      <${Problem} error=${error} />
      <button type="submit" disabled=${busy}>${signingUp ? "Sign up" : "Log in"}</button>
    </form>
    <p>
      ${signingUp ? "Have an account? " : "New here? "}
      <button type="button" class="link" onClick=${() => { setError(null); setMode(signingUp ? "login" : "signup"); }}>
        ${signingUp ? "Log in" : "Create an account"}
      </button>
    </p>
  </main>`;
}

function HomeForm({ me, onSaved }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [coords, setCoords] = useState({ lat: me?.homeLocation?.lat ?? "", lon: me?.homeLocation?.lon ?? "" });
  const save = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      await api("/api/users/me", {
        method: "PATCH",
        body: { homeLocation: { lat: Number(coords.lat), lon: Number(coords.lon) }, timeZone },
      });
      onSaved();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const locate = () =>
    navigator.geolocation?.getCurrentPosition(
      (p) => setCoords({ lat: p.coords.latitude.toFixed(4), lon: p.coords.longitude.toFixed(4) }),
      (e) => setError(new Error(`Your location is not available: ${e.message}`)),
    );
  return html`<form class="card" onSubmit=${save} aria-labelledby="home-title">
    <h2 id="home-title">Where is home?</h2>
    <p class="muted">Weather and missions follow your home location.</p>
    <div class="row">
      <${Field} label="Latitude" id="lat" type="number" step="any" min="-90" max="90" required value=${coords.lat}
        onInput=${(e) => setCoords({ ...coords, lat: e.target.value })} />
      <${Field} label="Longitude" id="lon" type="number" step="any" min="-180" max="180" required value=${coords.lon}
        onInput=${(e) => setCoords({ ...coords, lon: e.target.value })} />
    </div>
    <${Problem} error=${error} />
    <div class="row">
      <button type="submit" disabled=${busy}>Save home</button>
      ${navigator.geolocation && html`<button type="button" class="secondary" onClick=${locate}>Use my location</button>`}
    </div>
  </form>`;
}

// Symbols every system font has (emoji fonts are not everywhere).
const CONDITION_ICON = {
  clear: "☀", "partly-cloudy": "☁", cloudy: "☁", fog: "≋", drizzle: "☂", rain: "☂",
  "freezing-rain": "☂", snow: "❄", thunderstorm: "⚡",
};

function WeatherCard({ home }) {
  const [weather, error] = useLoad(() => api(`/api/weather?lat=${home.lat}&lon=${home.lon}`), [home.lat, home.lon]);
  if (error) return html`<section class="card"><h2>Weather</h2><${Problem} error=${error} /></section>`;
  if (!weather) return html`<section class="card" aria-busy="true"><h2>Weather</h2><p class="muted">Loading…</p></section>`;
  const c = weather.current;
  return html`<section class="card weather" aria-labelledby="weather-title">
    <h2 id="weather-title">Weather</h2>
    <p class="big"><span aria-hidden="true">${CONDITION_ICON[c.condition] || "·"}</span> ${Math.round(c.temperatureC)}°C
      <span class="muted">${c.condition.replace(/-/g, " ")}</span></p>
    <p class="muted">Feels like ${Math.round(c.feelsLikeC)}°C · wind ${Math.round(c.windSpeedKmh)} km/h · humidity ${Math.round(c.humidityPct)}%
      ${weather.airQuality ? ` · air ${weather.airQuality.level}` : ""}${weather.stale ? " · not fresh" : ""}</p>
    <ol class="hours" aria-label="Next hours" tabindex="0">
      ${weather.hourly.slice(0, 6).map((h) => html`<li key=${h.time}>
        <span>${new Date(h.time).getHours()}:00</span>
        <span aria-hidden="true">${CONDITION_ICON[h.condition] || ""}</span>
        <span>${Math.round(h.temperatureC)}°</span></li>`)}
    </ol>
  </section>`;
}

function Verify({ mission, onDone }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState(null);
  const needsPhoto = mission.proof.includes("photo");
  const needsText = mission.proof.includes("text");
  useEffect(() => () => preview && URL.revokeObjectURL(preview), [preview]);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const form = new FormData(event.target);
      if (!needsPhoto) form.delete("photo");
      if (!needsText) form.delete("text");
      const result = await api(`/api/missions/${encodeURIComponent(mission.id)}/verifications`, { method: "POST", body: form });
      onDone(result);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const id = `proof-${mission.id}`;
  return html`<form class="verify" onSubmit=${submit} aria-label=${`Proof for ${mission.title}`}>
    ${needsPhoto && html`<div class="field">
      <label for=${`${id}-photo`}>Photo</label>
      <input id=${`${id}-photo`} name="photo" type="file" accept="image/jpeg,image/png,image/webp" capture="environment" required
        onChange=${(e) => setPreview(e.target.files[0] ? URL.createObjectURL(e.target.files[0]) : null)} />
      <small>Its location data is removed before it is stored.</small>
    </div>`}
    ${preview && html`<img class="preview" src=${preview} alt="The photo you picked" />`}
    ${needsText && html`<div class="field">
      <label for=${`${id}-text`}>What did you do?</label>
      <textarea id=${`${id}-text`} name="text" required maxlength="2000" rows="2"></textarea>
    </div>`}
    <${Problem} error=${error} />
    <button type="submit" disabled=${busy}>${busy ? "Sending…" : "Send proof"}</button>
  </form>`;
}

const STATUS_TEXT = { open: "To do", pending: "Waiting for review", accepted: "Done", rejected: "Not accepted" };

function Missions({ reloadKey }) {
  const [today, error, reload] = useLoad(() => api("/api/missions/today"), [reloadKey]);
  const [open, setOpen] = useState(null);
  const [done, setDone] = useState(null);
  if (error) return html`<section class="card"><h2>Today's missions</h2><${Problem} error=${error} /></section>`;
  if (!today) return html`<section class="card" aria-busy="true"><h2>Today's missions</h2><p class="muted">Loading…</p></section>`;
  return html`<section class="card" aria-labelledby="missions-title">
    <h2 id="missions-title">Today's missions <small class="muted">${today.date}</small></h2>
    ${today.note && html`<p class="muted">${today.note}</p>`}
    ${done && html`<${Note}>${done.status === "accepted" ? "Mission done! Coupons that need a mission are open to you today." : "Proof sent; a moderator will look at it."}</${Note}>`}
    <ul class="missions">
      ${today.missions.map((m) => html`<li key=${m.id} class=${`mission ${m.status}`}>
        <div class="mission-head">
          <h3>${m.title}</h3>
          <span class=${`badge ${m.status}`}>${STATUS_TEXT[m.status] || m.status}</span>
        </div>
        <p>${m.description}</p>
        ${m.status === "open" || m.status === "rejected"
          ? open === m.id
            ? html`<${Verify} mission=${m} onDone=${(r) => { setDone(r); setOpen(null); reload(); }} />`
            : html`<button type="button" class="secondary" onClick=${() => setOpen(m.id)}>Do it</button>`
          : null}
      </li>`)}
    </ul>
  </section>`;
}

function Today() {
  const [me, error, reload] = useLoad(() => api("/api/users/me"));
  const [editing, setEditing] = useState(false);
  const [retries, setRetries] = useState(0);
  // The profile is built from the signup event: right after signup it says `pending`.
  const pending = me?.status === "pending";
  useEffect(() => {
    if (pending && retries < 40) {
      const t = setTimeout(() => { setRetries((n) => n + 1); reload(); }, 250);
      return () => clearTimeout(t);
    }
  }, [me, retries]);
  if (error) return html`<${Problem} error=${error} />`;
  if (!me || pending) return html`<p class="muted" aria-busy="true">Setting up your profile…</p>`;
  const home = me.homeLocation;
  return html`<div class="stack">
    <p>Hello, <strong>${me.nickname}</strong>.
      ${home && !editing && html` <button type="button" class="link" onClick=${() => setEditing(true)}>Change home</button>`}</p>
    ${(!home || editing) && html`<${HomeForm} me=${me} onSaved=${() => { setEditing(false); reload(); }} />`}
    ${home && html`<${WeatherCard} home=${home} />`}
    ${home && html`<${Missions} reloadKey=${`${home.lat},${home.lon}`} />`}
  </div>`;
}

function Shell({ me, onLogoutError }) {
  const route = useRoute();
  const first = useRef(true);
  // A new section is a new page for keyboard and screen-reader users: focus its heading.
  useEffect(() => {
    if (first.current) first.current = false;
    else focusMain();
  }, [route]);
  const marketing = me.roles.includes("marketing");
  const section = {
    today: html`<${Today} />`,
    coupons: html`<${Coupons} />`,
    wallet: html`<${Wallet} />`,
    board: html`<${Board} me=${me} />`,
    chat: html`<${Chat} me=${me} />`,
  }[route] || html`<p>Nothing here. <a href="#/today">Back to today</a>.</p>`;
  const title = (SECTIONS.find(([k]) => k === route) || [null, "WeatherWise"])[1];
  useEffect(() => { document.title = `${title} · WeatherWise`; }, [title]);
  return html`<div class="shell">
    <${SkipLink} />
    <header class="top">
      <span class="brand" aria-hidden="true">WeatherWise</span>
      <nav aria-label="Sections">
        <ul>
          ${SECTIONS.map(([key, label]) => html`<li key=${key}>
            <a href=${`#/${key}`} aria-current=${route === key ? "page" : undefined}>${label}</a></li>`)}
          ${marketing && html`<li><a href="/dashboard">Dashboard</a></li>`}
        </ul>
      </nav>
      <button type="button" class="link" onClick=${() => logout().catch((e) => onLogoutError(new Error(`Signed out in this browser, but the server did not confirm it (${describe(e)}); the session ends by itself when it expires.`)))}>Log out</button>
    </header>
    <main class="page" id="main" tabindex="-1">
      <h1>${title}</h1>
      ${section}
    </main>
  </div>`;
}

function App() {
  const [me, setMe] = useState(undefined);
  const [error, setError] = useState(null);

  useEffect(() => {
    const off = onSession((s) => setMe(s));
    refresh().then(
      (ok) => setMe(ok ? session() : null),
      (e) => { setError(e); setMe(null); },
    );
    return off;
  }, []);
  if (me === undefined) return html`<main class="page"><p class="muted" aria-busy="true">Loading…</p></main>`;
  if (!me) return html`<div>${error && html`<${Problem} error=${error} />`}<${SignIn} /></div>`;
  return html`<${Shell} me=${me} onLogoutError=${setError} />`;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
