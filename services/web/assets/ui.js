// Small pieces both pages use. Everything is rendered through htm/Preact, which sets text as
// text: user content (posts, chat, AI-written missions) is never parsed as markup.

import { html, useEffect, useState } from "./vendor/preact-htm.js";
import { ApiError, serverNow } from "./api.js";

export { html };

/** A problem from the API (or any error) as a sentence for people. */
export function describe(error) {
  if (error instanceof ApiError) {
    const p = error.problem;
    return p.detail || p.title || `The server answered ${error.status}.`;
  }
  if (error?.name === "TypeError") return "The server cannot be reached right now. Check your connection and try again.";
  return error?.message || String(error);
}

/** An error line that screen readers announce. */
export function Problem({ error }) {
  if (!error) return null;
  return html`<p class="problem" role="alert">${describe(error)}</p>`;
}

/** A status line announced politely. */
export function Note({ children }) {
  return html`<p class="note" role="status" aria-live="polite">${children}</p>`;
}

/** Re-renders every `ms` (server-clock now). */
export function useNow(ms = 250) {
  const [now, setNow] = useState(serverNow());
  useEffect(() => {
    const t = setInterval(() => setNow(serverNow()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** Runs `load` on mount and when `deps` change; gives [data, error, reload]. */
export function useLoad(load, deps = []) {
  const [state, setState] = useState({ data: undefined, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (data) => live && setState({ data, error: null }),
      (error) => live && setState((s) => ({ data: s.data, error })),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return [state.data, state.error, () => setTick((t) => t + 1)];
}

/** "in 2 h 05 min", "in 42 s", "now". */
export function countdown(ms) {
  if (ms <= 0) return "now";
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `in ${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `in ${m} min ${String(s % 60).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `in ${h} h ${String(m % 60).padStart(2, "0")} min`;
  return `in ${Math.floor(h / 24)} days`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function clock(iso) {
  return iso ? timeFormat.format(new Date(iso)) : "";
}

export function when(iso) {
  return iso ? dateTimeFormat.format(new Date(iso)) : "";
}

/** A labelled input; extra props go to the input. */
export function Field({ label, id, hint, ...props }) {
  const hintId = hint ? `${id}-hint` : undefined;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input id=${id} aria-describedby=${hintId} ...${props} />
    ${hint && html`<small id=${hintId}>${hint}</small>`}
  </div>`;
}

/** A random key for Idempotency-Key and chat clientMsgId. */
export function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Moves focus to the page's main region (route changes, the skip link). */
export function focusMain() {
  document.getElementById("main")?.focus();
}

/** A skip link that leaves the address alone (its #fragment is the app's route). */
export function SkipLink() {
  return html`<a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); focusMain(); }}>Skip to content</a>`;
}
