// The community board: posts newest first, search, writing, likes and comments.

import { useEffect, useState } from "./vendor/preact-htm.js";
import { api } from "./api.js";
import { Problem, html, useLoad, when } from "./ui.js";

function author(a) {
  return a.nickname || "someone";
}

function Comments({ post, onCount }) {
  const [page, error, reload] = useLoad(() => api(`/api/board/posts/${post.id}/comments?limit=50`), [post.id]);
  const [failure, setFailure] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const form = event.target;
    setBusy(true);
    setFailure(null);
    try {
      await api(`/api/board/posts/${post.id}/comments`, { method: "POST", body: { body: form.elements.body.value } });
      form.reset();
      onCount(1);
      reload();
    } catch (e) {
      setFailure(e);
    } finally {
      setBusy(false);
    }
  };
  const id = `comment-${post.id}`;
  return html`<div class="comments">
    <${Problem} error=${error} />
    <ul>
      ${(page?.comments || []).map((c) => html`<li key=${c.id}>
        <strong>${author(c.author)}</strong> <span class="muted">${when(c.createdAt)}</span>
        <p class="user-text">${c.body}</p></li>`)}
    </ul>
    <form onSubmit=${submit} class="inline">
      <label for=${id} class="visually-hidden">Your comment</label>
      <input id=${id} name="body" required maxlength="1000" placeholder="Write a comment" />
      <button type="submit" disabled=${busy}>Comment</button>
    </form>
    <${Problem} error=${failure} />
  </div>`;
}

function Post({ post: initial }) {
  const [post, setPost] = useState(initial);
  // A reloaded list brings fresh counts.
  useEffect(() => setPost(initial), [initial]);
  const [open, setOpen] = useState(false);
  const [failure, setFailure] = useState(null);
  const like = async () => {
    setFailure(null);
    try {
      const r = await api(`/api/board/posts/${post.id}/like`, { method: post.likedByMe ? "DELETE" : "PUT" });
      setPost({ ...post, likedByMe: r.liked, likes: r.likes });
    } catch (e) {
      setFailure(e);
    }
  };
  return html`<li class="card post">
    <h2>${post.title}</h2>
    <p class="muted">${author(post.author)} · ${when(post.createdAt)}${post.editedAt ? " · edited" : ""}</p>
    <p class="user-text">${post.body}</p>
    <div class="row">
      <button type="button" class="secondary" aria-pressed=${post.likedByMe ? "true" : "false"} onClick=${like}>
        ${post.likedByMe ? "♥ Liked" : "♡ Like"} <span class="visually-hidden">${post.title}</span> (${post.likes})
      </button>
      <button type="button" class="secondary" aria-expanded=${open ? "true" : "false"} onClick=${() => setOpen(!open)}>
        Comments (${post.comments})
      </button>
    </div>
    <${Problem} error=${failure} />
    ${open && html`<${Comments} post=${post} onCount=${(n) => setPost((p) => ({ ...p, comments: p.comments + n }))} />`}
  </li>`;
}

export function Board() {
  const [query, setQuery] = useState("");
  const [page, error, reload] = useLoad(
    () => api(`/api/board/posts?limit=20${query ? `&q=${encodeURIComponent(query)}` : ""}`),
    [query],
  );
  const [failure, setFailure] = useState(null);
  const [busy, setBusy] = useState(false);
  const write = async (event) => {
    event.preventDefault();
    const form = event.target;
    setBusy(true);
    setFailure(null);
    try {
      await api("/api/board/posts", {
        method: "POST",
        body: { title: form.elements.title.value, body: form.elements.body.value },
      });
      form.reset();
      setQuery("");
      reload();
    } catch (e) {
      setFailure(e);
    } finally {
      setBusy(false);
    }
  };
  const search = (event) => {
    event.preventDefault();
    setQuery(event.target.elements.q.value.trim());
  };
  return html`<div class="stack">
    <form class="card" onSubmit=${write} aria-labelledby="write-title">
      <h2 id="write-title">Write a post</h2>
      <div class="field"><label for="post-title">Title</label><input id="post-title" name="title" required maxlength="100" /></div>
      <div class="field"><label for="post-body">Text</label><textarea id="post-body" name="body" required maxlength="5000" rows="3"></textarea></div>
      <${Problem} error=${failure} />
      <button type="submit" disabled=${busy}>Post</button>
    </form>
    <form role="search" onSubmit=${search} class="inline">
      <label for="q" class="visually-hidden">Search posts</label>
      <input id="q" name="q" type="search" maxlength="100" placeholder="Search posts (e.g. 우산)" />
      <button type="submit" class="secondary">Search</button>
    </form>
    ${query && html`<p>Posts with “${query}” · <button type="button" class="link" onClick=${() => setQuery("")}>show all</button></p>`}
    <${Problem} error=${error} />
    <ul class="cards">
      ${(page?.posts || []).map((p) => html`<${Post} key=${p.id} post=${p} />`)}
    </ul>
    ${page && page.posts.length === 0 && html`<p>No posts yet.</p>`}
  </div>`;
}
