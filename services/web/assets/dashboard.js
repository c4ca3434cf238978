// The marketing dashboard: every campaign with its phase, next transition and today's counts,
// a live issuance-rate chart (pushed once a second, one stream per page), and a campaign editor
// that checks and previews YAML with the same code as `ww campaign check|preview`.

import { render, useEffect, useRef, useState } from "./vendor/preact-htm.js";
import { api, login, onSession, refresh, session } from "./api.js";
import { Field, Problem, SkipLink, clock, countdown, html, useLoad, useNow, when } from "./ui.js";
import { useLiveCounts } from "./claim.js";

const HISTORY_SECONDS = 120;

/** The rate history of every campaign, kept from the live frames. */
function useHistory(live) {
  const history = useRef({});
  const [, setVersion] = useState(0);
  useEffect(() => {
    const now = Date.now() / 1000;
    for (const [name, c] of Object.entries(live)) {
      const h = (history.current[name] ||= { t: [], rate: [], remaining: [] });
      h.t.push(now);
      h.rate.push(c.ratePerSecond);
      h.remaining.push(c.remainingToday);
      while (h.t.length && h.t[0] < now - HISTORY_SECONDS) {
        h.t.shift();
        h.rate.shift();
        h.remaining.shift();
      }
    }
    setVersion((v) => v + 1);
  }, [live]);
  return history.current;
}

function RateChart({ name, series }) {
  const box = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    if (!window.uPlot || !box.current) return undefined;
    const width = Math.max(280, box.current.clientWidth - 8);
    chart.current = new window.uPlot(
      {
        width,
        height: 220,
        title: `${name}: coupons per second`,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(5, max * 1.2)] } },
        series: [{}, { label: "issued / s", stroke: "#1d5fa8", width: 2, fill: "rgba(29,95,168,0.12)" }],
        axes: [{}, { label: "per second" }],
      },
      [series.t.slice(), series.rate.slice()],
      box.current,
    );
    return () => chart.current?.destroy();
  }, [name]);
  useEffect(() => {
    chart.current?.setData([series.t.slice(), series.rate.slice()]);
  });
  const latest = series.rate[series.rate.length - 1] ?? 0;
  return html`<figure class="card chart">
    <div ref=${box} aria-hidden="true"></div>
    <figcaption>Issuance rate of ${name}, last ${HISTORY_SECONDS} s; now <strong data-testid="rate">${latest}</strong> per second.</figcaption>
  </figure>`;
}

function Campaigns({ live, liveState, history }) {
  const [campaigns, error, reload] = useLoad(() => api("/api/coupons/campaigns"));
  const now = useNow(1000);
  const [selected, setSelected] = useState(null);
  useEffect(() => {
    const t = setInterval(reload, 15_000);
    return () => clearInterval(t);
  }, []);
  if (error && !campaigns) return html`<${Problem} error=${error} />`;
  if (!campaigns) return html`<p class="muted" aria-busy="true">Loading campaigns…</p>`;
  const chartName = selected || campaigns.find((c) => live[c.name]?.ratePerSecond > 0)?.name || campaigns.find((c) => c.phase === "open")?.name;
  return html`<section aria-labelledby="campaigns-title" class="stack">
    <h2 id="campaigns-title">Campaigns</h2>
    <p class="muted" role="status">${liveState === "live" ? "Live: counts arrive every second." : "Connecting to live counts…"}</p>
    <div class="table-wrap">
    <table>
      <caption class="visually-hidden">Campaigns with their phase and today's counts</caption>
      <thead><tr><th scope="col">Campaign</th><th scope="col">Phase</th><th scope="col">Next transition</th>
        <th scope="col">Issued today</th><th scope="col">Left today</th><th scope="col">Rate</th><th scope="col"><span class="visually-hidden">Chart</span></th></tr></thead>
      <tbody>
        ${campaigns.map((c) => {
          const l = live[c.name];
          const next = c.phase === "open" ? c.closesAt : c.opensAt;
          const nextMs = next ? Date.parse(next) - now : null;
          return html`<tr key=${c.name} data-campaign=${c.name}>
            <th scope="row">${c.displayName}<br /><small class="muted">${c.name}</small></th>
            <td><span class=${`badge ${c.phase}`}>${c.phase}</span></td>
            <td>${next ? html`${c.phase === "open" ? "closes" : "opens"} ${clock(next)} <small class="muted">(${countdown(nextMs)})</small>` : "—"}</td>
            <td class="num" data-testid="issued">${l ? l.issuedToday : "—"}</td>
            <td class="num" data-testid="left">${l?.remainingToday ?? c.remainingToday ?? "—"}</td>
            <td class="num">${l ? `${l.ratePerSecond}/s` : "—"}</td>
            <td><button type="button" class="secondary" aria-pressed=${chartName === c.name ? "true" : "false"}
              onClick=${() => setSelected(c.name)}>Chart <span class="visually-hidden">${c.name}</span></button></td>
          </tr>`;
        })}
      </tbody>
    </table>
    </div>
    ${chartName && history[chartName] && html`<${RateChart} key=${chartName} name=${chartName} series=${history[chartName]} />`}
    ${chartName && !history[chartName] && html`<p class="muted">No counts from ${chartName}'s issuers yet: they report while a window is open.</p>`}
  </section>`;
}

function Editor() {
  const [yaml, setYaml] = useState("");
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const check = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await api("/api/dashboard/campaigns/check", { method: "POST", body: { yaml, days: 7 } }));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const upload = async (event) => {
    const file = event.target.files[0];
    if (file) setYaml(await file.text());
  };
  return html`<section class="stack" aria-labelledby="editor-title">
    <h2 id="editor-title">Check a campaign before applying it</h2>
    <form class="card" onSubmit=${check}>
      <div class="field">
        <label for="yaml">CouponCampaign YAML</label>
        <textarea id="yaml" rows="14" spellcheck="false" class="mono" required maxlength="60000" value=${yaml}
          onInput=${(e) => setYaml(e.target.value)}></textarea>
      </div>
      <div class="field"><label for="yaml-file">…or upload a file</label>
        <input id="yaml-file" type="file" accept=".yaml,.yml,text/yaml" onChange=${upload} /></div>
      <button type="submit" disabled=${busy || !yaml.trim()}>Check and preview</button>
    </form>
    <${Problem} error=${error} />
    ${result && result.campaigns.map((c) => html`<article class="card" key=${c.document} aria-label=${`Result for ${c.name || `document ${c.document}`}`}>
      <h3>${c.name || "(no name)"} <small class="muted">document ${c.document}</small></h3>
      ${c.problems.length
        ? html`<p class="warn" data-testid="check-result">${c.problems.length} problem(s): kubectl apply would be refused or the operator would not run it.</p>
          <ul class="problems">${c.problems.map((p) => html`<li><code>${p.path || "(object)"}</code>: ${p.message} <small class="muted">(${p.layer})</small></li>`)}</ul>`
        : html`<p class="success" data-testid="check-result">No problems. ${c.preview.displayName}: ${c.preview.dailyQuantity} a day in ${c.preview.timeZone}, now ${c.preview.phaseNow}${c.preview.nextChange ? `, next change ${when(c.preview.nextChange)}` : ""}.</p>
          <div class="table-wrap"><table>
            <caption>The coming days (times in ${c.preview.timeZone})</caption>
            <thead><tr><th scope="col">Day</th><th scope="col">Pre-warm</th><th scope="col">Opens</th><th scope="col">Closes</th><th scope="col">Idle</th><th scope="col">Quantity</th></tr></thead>
            <tbody>${c.preview.days.map((d) => html`<tr key=${d.day}><th scope="row">${d.day}</th>${d.local.map((t) => html`<td>${t}</td>`)}<td class="num">${d.quantity}</td></tr>
              ${d.notes.map((n) => html`<tr><td></td><td colspan="5" class="muted">${n}</td></tr>`)}`)}</tbody>
          </table></div>`}
    </article>`)}
  </section>`;
}

function SignIn({ onDone }) {
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      await login(form.get("email"), form.get("password"));
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return html`<form class="card narrow" onSubmit=${submit} aria-labelledby="signin-title">
    <h2 id="signin-title">Log in</h2>
    <${Field} label="Email" id="email" name="email" type="email" required autocomplete="email" />
    <${Field} label="Password" id="password" name="password" type="password" required autocomplete="current-password" />
    <${Problem} error=${error} />
    <button type="submit">Log in</button>
  </form>`;
}

function Dashboard() {
  const [live, liveState] = useLiveCounts();
  const history = useHistory(live);
  return html`<div class="stack">
    <${Campaigns} live=${live} liveState=${liveState} history=${history} />
    <${Editor} />
  </div>`;
}

function App() {
  const [me, setMe] = useState(undefined);
  useEffect(() => {
    const off = onSession((s) => setMe(s));
    refresh().then((ok) => setMe(ok ? session() : null), () => setMe(null));
    return off;
  }, []);
  let body;
  if (me === undefined) body = html`<p class="muted" aria-busy="true">Loading…</p>`;
  else if (!me) body = html`<${SignIn} onDone=${() => setMe(session())} />`;
  else if (!me.roles.includes("marketing"))
    body = html`<p class="warn">The dashboard is for the marketing team: this account lacks the <code>marketing</code> role
      (an operator grants it with <code>ww admin grant-role</code>). <a href="/">Back to the app</a>.</p>`;
  else body = html`<${Dashboard} />`;
  return html`<div class="shell">
    <${SkipLink} />
    <header class="top"><span class="brand" aria-hidden="true">WeatherWise</span>
      <nav aria-label="Sections"><ul><li><a href="/">App</a></li><li><a href="/dashboard" aria-current="page">Dashboard</a></li></ul></nav></header>
    <main class="page wide" id="main" tabindex="-1"><h1>Campaign dashboard</h1>${body}</main>
  </div>`;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
