// Coupon campaigns with a live countdown and what is left today, the claim button, and the
// wallet. The claim handles every answer of the issuer; one Idempotency-Key per claim, reused by
// every automatic retry, so a retry after a lost answer returns the coupon already taken.

import { useEffect, useRef, useState } from "./vendor/preact-htm.js";
import { api, follow, noteFrameTime, serverNow } from "./api.js";
import { Note, Problem, clock, countdown, describe, html, randomKey, useLoad, useNow, when } from "./ui.js";

const PHASE_TEXT = {
  scheduled: "Not started",
  waiting: "Opens today",
  open: "Open",
  closed: "Closed for today",
  ended: "Ended",
};

/** The latest live counts by campaign name, pushed by the server once a second. */
export function useLiveCounts() {
  const [counts, setCounts] = useState({});
  const [state, setState] = useState("connecting");
  useEffect(
    () =>
      follow(
        "/api/live/campaigns",
        (name, frame) => {
          if (name !== "counts") return;
          noteFrameTime(frame.at);
          setCounts(Object.fromEntries(frame.campaigns.map((c) => [c.name, c])));
        },
        setState,
      ),
    [],
  );
  return [counts, state];
}

const MAX_RETRIES = 8;

function ClaimButton({ campaign, opensAt, onIssued }) {
  const [state, setState] = useState({ kind: "idle" });
  const key = useRef(null);
  const retries = useRef(0);
  const mounted = useRef(true);
  const status = useRef(null);
  const now = useNow(250);
  const timer = useRef(null);
  useEffect(() => () => { mounted.current = false; clearTimeout(timer.current); }, []);
  const show = (next) => {
    if (!mounted.current) return;
    setState(next);
    // The button may be gone now: keep keyboard and screen-reader users on the answer.
    if (!["sending", "retrying"].includes(next.kind)) requestAnimationFrame(() => status.current?.focus());
  };

  const claim = async () => {
    key.current ||= randomKey();
    show({ kind: "sending" });
    try {
      const coupon = await api(`/api/campaigns/${encodeURIComponent(campaign.name)}/issue`, {
        method: "POST",
        headers: { "idempotency-key": key.current },
      });
      key.current = null;
      retries.current = 0;
      show({ kind: "issued", coupon });
      onIssued();
    } catch (e) {
      const definitive = () => { key.current = null; retries.current = 0; };
      if (e.status === 409 && e.problem.coupon) {
        definitive();
        show({ kind: "already", coupon: e.problem.coupon });
      } else if (e.status === 410) {
        definitive();
        show({ kind: "gone", next: e.problem.nextOpening, error: e });
      } else if (e.status === 403) {
        definitive();
        show({ kind: "mission", error: e });
      } else if (e.status === 425) {
        // Not open yet (this device ran ahead of the server): the button waits for the opening
        // the server gave, keeping the same key.
        show({ kind: "early", opensAt: e.problem.opensAt || opensAt });
      } else if ((e.status === 429 || e.status === 503 || e.name === "TypeError") && retries.current < MAX_RETRIES) {
        // Busy, or the answer was lost: try again with the same key, so at most one coupon.
        retries.current += 1;
        const wait = (e.retryAfter ?? 1) * 1000 + Math.random() * 500;
        show({ kind: "retrying", until: serverNow() + wait, error: e });
        if (mounted.current) timer.current = setTimeout(claim, wait);
      } else {
        // Out of retries or another answer: the next press starts over (same key if the
        // coupon may already be reserved, so a later retry still returns it).
        retries.current = 0;
        show({ kind: "error", error: e });
      }
    }
  };

  const opening = state.kind === "early" ? Date.parse(state.opensAt) : opensAt ? Date.parse(opensAt) : null;
  const notYet = opening != null && now < opening && (state.kind === "early" || campaign.phase !== "open");
  const busy = state.kind === "sending" || state.kind === "retrying";
  const finished = ["issued", "already", "gone", "mission"].includes(state.kind);
  const statusId = `claim-${campaign.name}-status`;
  return html`<div class="claim">
    ${!finished && html`<button type="button" class="primary" disabled=${busy || notYet}
      aria-describedby=${statusId} onClick=${claim}>
      ${state.kind === "sending" ? "Claiming…" : notYet ? `Opens ${countdown(opening - now)}` : "Claim coupon"}
    </button>`}
    <div id=${statusId} ref=${status} tabindex="-1" role="status">
      ${state.kind === "issued" && html`<p class="success">It's yours: <strong class="code">${state.coupon.code}</strong>. It is in your <a href="#/wallet">wallet</a>.</p>`}
      ${state.kind === "already" && html`<p class="success">You already have this coupon: <strong class="code">${state.coupon.code}</strong> (<a href="#/wallet">wallet</a>).</p>`}
      ${state.kind === "gone" && html`<p class="warn">${describe(state.error)}${state.next ? ` Next opening: ${when(state.next)}.` : ""}</p>`}
      ${state.kind === "mission" && html`<p class="warn">${describe(state.error)} <a href="#/today">Do today's mission first</a>, then come back.</p>`}
      ${state.kind === "early" && html`<p class="muted">Not open yet: opens at ${clock(state.opensAt)}.</p>`}
      ${state.kind === "retrying" && html`<p class="muted">Busy (${describe(state.error)}); trying again shortly, keeping your place.</p>`}
      ${state.kind === "error" && html`<${Problem} error=${state.error} />`}
    </div>
    ${state.kind === "retrying" && html`<p class="muted" aria-hidden="true">Next try ${countdown(state.until - now)}.</p>`}
  </div>`;
}

function CampaignCard({ campaign, live, onIssued }) {
  const now = useNow(250);
  const opens = campaign.opensAt ? Date.parse(campaign.opensAt) : null;
  const closes = campaign.closesAt ? Date.parse(campaign.closesAt) : null;
  let phase = campaign.phase;
  if (phase === "waiting" && opens && now >= opens) phase = "open";
  if (phase === "open" && closes && now >= closes) phase = "closed";
  const remaining = live?.remainingToday ?? campaign.remainingToday;
  const claimable = phase === "open" || phase === "waiting";
  return html`<li class="card campaign" aria-labelledby=${`c-${campaign.name}`}>
    <div class="mission-head">
      <h2 id=${`c-${campaign.name}`}>${campaign.displayName}</h2>
      <span class=${`badge ${phase}`}>${PHASE_TEXT[phase] || phase}</span>
    </div>
    <p><strong>${campaign.couponTitle}</strong> — ${campaign.couponBenefit}</p>
    <dl class="facts">
      ${phase === "waiting" && opens && html`<div><dt>Opens</dt><dd><span class="countdown" data-testid="countdown">${countdown(opens - now)}</span> (${clock(campaign.opensAt)})</dd></div>`}
      ${phase === "open" && closes && html`<div><dt>Closes</dt><dd>${clock(campaign.closesAt)}</dd></div>`}
      ${(phase === "scheduled" || phase === "closed") && opens && html`<div><dt>Next opening</dt><dd>${when(campaign.opensAt)}</dd></div>`}
      ${remaining != null && html`<div><dt>Left today</dt><dd><span class="remaining" data-testid="remaining">${remaining}</span> of ${campaign.dailyQuantity}</dd></div>`}
      ${campaign.requiresMission && html`<div><dt>Who</dt><dd>People who did today's mission</dd></div>`}
    </dl>
    ${claimable && html`<${ClaimButton} campaign=${{ ...campaign, phase }} opensAt=${campaign.opensAt} onIssued=${onIssued} />`}
  </li>`;
}

export function Coupons() {
  const [campaigns, error, reload] = useLoad(() => api("/api/coupons/campaigns"));
  const [live, liveState] = useLiveCounts();
  // Phases and openings move with time: read the catalog again every minute.
  useEffect(() => {
    const t = setInterval(reload, 60_000);
    return () => clearInterval(t);
  }, []);
  if (error && !campaigns) return html`<${Problem} error=${error} />`;
  if (!campaigns) return html`<p class="muted" aria-busy="true">Loading campaigns…</p>`;
  const shown = campaigns.filter((c) => c.phase !== "ended");
  return html`<div class="stack">
    <p class="muted">${liveState === "live" ? "Counts update live." : "Connecting to live counts…"}</p>
    ${shown.length === 0 && html`<p>No coupon events right now.</p>`}
    <ul class="cards">
      ${shown.map((c) => html`<${CampaignCard} key=${c.name} campaign=${c} live=${live[c.name]} onIssued=${() => {}} />`)}
    </ul>
  </div>`;
}

export function Wallet() {
  const [coupons, error, reload] = useLoad(() => api("/api/coupons/me"));
  const [note, setNote] = useState(null);
  const [failure, setFailure] = useState(null);
  const status = useRef(null);
  const redeem = async (coupon) => {
    setFailure(null);
    try {
      await api(`/api/coupons/${coupon.couponId}/redeem`, { method: "POST" });
      setNote(`Redeemed ${coupon.title}.`);
      reload();
    } catch (e) {
      setFailure(e);
    }
    // The Redeem button is gone: keep focus on what happened.
    requestAnimationFrame(() => status.current?.focus());
  };
  if (error && !coupons) return html`<${Problem} error=${error} />`;
  if (!coupons) return html`<p class="muted" aria-busy="true">Loading your coupons…</p>`;
  return html`<div class="stack">
    <div ref=${status} tabindex="-1">
      ${note && html`<${Note}>${note}</${Note}>`}
      <${Problem} error=${failure} />
    </div>
    ${coupons.length === 0 && html`<p>No coupons yet. <a href="#/coupons">See the coupon events</a>.</p>`}
    <ul class="cards">
      ${coupons.map((c) => html`<li key=${c.couponId} class=${`card coupon ${c.status}`}>
        <div class="mission-head"><h2>${c.title}</h2><span class=${`badge ${c.status}`}>${c.status}</span></div>
        <p>${c.benefit}</p>
        <p>Code <strong class="code">${c.code}</strong> · valid until ${when(c.expiresAt)}</p>
        ${c.status === "active" && html`<button type="button" class="secondary" onClick=${() => redeem(c)}>Redeem ${c.title}</button>`}
      </li>`)}
    </ul>
  </div>`;
}
