//! The board through the whole app on both backends: posts, comments and likes with authors'
//! nicknames from their profiles, edits and soft deletes of one's own content only, counts that
//! stay exact under concurrent likes, unlikes, comments and deletes, search in Korean and
//! English, the per-person write limit, reports that hide what enough people flag until a
//! moderator decides, moderator removal, and blocks.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::Utc;
use common::{Resp, TestApp, unique_email};
use platform::roles::{Role, Roles};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    posts_comments_and_likes_round_trip_with_authors_nicknames,
    only_authors_edit_and_delete_and_deleted_content_is_gone,
    likes_and_comment_counts_stay_exact_under_concurrency,
    search_finds_korean_and_english_words_anywhere,
    lists_page_with_cursors_newest_first,
    the_write_limit_stops_a_flood_and_says_when_to_retry,
    reports_hide_content_until_a_moderator_removes_or_keeps_it,
    blocked_people_are_out_of_sight_and_cannot_comment,
);

fn person(app: &TestApp) -> (Uuid, String) {
    let user = Uuid::new_v4();
    (user, app.keys.sign(user, Uuid::new_v4(), Utc::now(), Duration::from_secs(3600)).unwrap())
}

fn moderator(app: &TestApp) -> String {
    let mut roles = Roles::default();
    roles.insert(Role::Moderator);
    app.keys.sign_with_roles(Uuid::new_v4(), Uuid::new_v4(), roles, Utc::now(), Duration::from_secs(3600)).unwrap()
}

async fn post(app: &TestApp, token: &str, title: &str, body: &str) -> String {
    let r = app.call("POST", "/api/board/posts", Some(token), Some(json!({"title": title, "body": body}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn comment(app: &TestApp, token: &str, post: &str, body: &str) -> Resp {
    app.call("POST", &format!("/api/board/posts/{post}/comments"), Some(token), Some(json!({"body": body}))).await
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let r = app.call("GET", path, Some(token), None).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {:?}", r.body);
    r.body
}

fn titles(page: &Value) -> Vec<String> {
    page["posts"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap().to_owned()).collect()
}

async fn posts_comments_and_likes_round_trip_with_authors_nicknames(app: TestApp) {
    // A real account: its nickname reaches the board through the identity events.
    let (author, token, _) = app.account(&unique_email("board")).await;
    let (_, reader) = person(&app);
    let created = app
        .call(
            "POST",
            "/api/board/posts",
            Some(&token),
            Some(json!({"title": "  비 오는 날  ", "body": "우산 챙기세요\n\tTake an umbrella."})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["title"], "비 오는 날", "trimmed");
    assert_eq!(created.body["body"], "우산 챙기세요\n\tTake an umbrella.");
    assert_eq!(created.body["author"]["id"].as_str(), Some(author.as_str()));
    assert_eq!((created.body["likes"].as_i64(), created.body["comments"].as_i64()), (Some(0), Some(0)));
    assert_eq!(created.body["visibility"], "live");
    let id = created.body["id"].as_str().unwrap().to_owned();

    let started = Instant::now();
    loop {
        let seen = get(&app, &reader, &format!("/api/board/posts/{id}")).await;
        if seen["author"]["nickname"] == "tester" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the author's nickname never arrived: {seen}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let c = comment(&app, &reader, &id, "저도요! Me too.").await;
    assert_eq!(c.status, StatusCode::CREATED, "{:?}", c.body);
    assert_eq!(c.body["postId"].as_str(), Some(id.as_str()));
    let liked = app.call("PUT", &format!("/api/board/posts/{id}/like"), Some(&reader), None).await;
    assert_eq!(
        (liked.status, liked.body["liked"].as_bool(), liked.body["likes"].as_i64()),
        (StatusCode::OK, Some(true), Some(1))
    );
    let again = app.call("PUT", &format!("/api/board/posts/{id}/like"), Some(&reader), None).await;
    assert_eq!(again.body["likes"].as_i64(), Some(1), "liking twice counts once");

    let seen = get(&app, &reader, &format!("/api/board/posts/{id}")).await;
    assert_eq!(
        (seen["likes"].as_i64(), seen["comments"].as_i64(), seen["likedByMe"].as_bool()),
        (Some(1), Some(1), Some(true))
    );
    let by_author = get(&app, &token, &format!("/api/board/posts/{id}")).await;
    assert_eq!(by_author["likedByMe"].as_bool(), Some(false));
    let comments = get(&app, &token, &format!("/api/board/posts/{id}/comments")).await;
    assert_eq!(comments["comments"].as_array().unwrap().len(), 1);
    assert_eq!(comments["comments"][0]["body"], "저도요! Me too.");

    let unliked = app.call("DELETE", &format!("/api/board/posts/{id}/like"), Some(&reader), None).await;
    assert_eq!((unliked.body["liked"].as_bool(), unliked.body["likes"].as_i64()), (Some(false), Some(0)));
    let twice = app.call("DELETE", &format!("/api/board/posts/{id}/like"), Some(&reader), None).await;
    assert_eq!(twice.body["likes"].as_i64(), Some(0), "unliking what is not liked changes nothing");

    let listed = get(&app, &reader, "/api/board/posts").await;
    assert!(listed["posts"].as_array().unwrap().iter().any(|p| p["id"] == id.as_str()));
}

async fn only_authors_edit_and_delete_and_deleted_content_is_gone(app: TestApp) {
    let (_, author) = person(&app);
    let (_, other) = person(&app);
    let id = post(&app, &author, "Sunny walk", "Walked 5 km.").await;
    let path = format!("/api/board/posts/{id}");

    let theirs = app.call("PATCH", &path, Some(&other), Some(json!({"title": "hacked"}))).await;
    assert_eq!((theirs.status, theirs.code()), (StatusCode::FORBIDDEN, "not-author"));
    let nothing = app.call("PATCH", &path, Some(&author), Some(json!({}))).await;
    assert_eq!((nothing.status, nothing.code()), (StatusCode::UNPROCESSABLE_ENTITY, "nothing-to-change"));
    let edited = app.call("PATCH", &path, Some(&author), Some(json!({"body": "Walked 7 km in the sun."}))).await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    assert_eq!(
        (edited.body["title"].as_str(), edited.body["body"].as_str()),
        (Some("Sunny walk"), Some("Walked 7 km in the sun."))
    );
    assert!(edited.body["editedAt"].is_string());
    // The search index follows the edit.
    let found = get(&app, &other, "/api/board/posts?q=7%20km").await;
    assert_eq!(titles(&found), vec!["Sunny walk"]);

    let c = comment(&app, &other, &id, "Nice!").await;
    let cid = c.body["id"].as_str().unwrap().to_owned();
    let not_mine = app.call("DELETE", &format!("/api/board/comments/{cid}"), Some(&author), None).await;
    assert_eq!((not_mine.status, not_mine.code()), (StatusCode::FORBIDDEN, "not-author"));
    let ed = app
        .call("PATCH", &format!("/api/board/comments/{cid}"), Some(&other), Some(json!({"body": "Very nice!"})))
        .await;
    assert_eq!((ed.status, ed.body["body"].as_str()), (StatusCode::OK, Some("Very nice!")));
    let gone = app.call("DELETE", &format!("/api/board/comments/{cid}"), Some(&other), None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let again = app.call("DELETE", &format!("/api/board/comments/{cid}"), Some(&other), None).await;
    assert_eq!((again.status, again.code()), (StatusCode::NOT_FOUND, "unknown-comment"));
    assert_eq!(get(&app, &author, &path).await["comments"].as_i64(), Some(0));

    let deleted = app.call("DELETE", &path, Some(&other), None).await;
    assert_eq!(deleted.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call("DELETE", &path, Some(&author), None).await.status, StatusCode::NO_CONTENT);
    for (method, p) in [("GET", path.clone()), ("PUT", format!("{path}/like")), ("GET", format!("{path}/comments"))] {
        let r = app.call(method, &p, Some(&author), None).await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "unknown-post"), "{method} {p}");
    }
    assert_eq!(comment(&app, &other, &id, "late").await.status, StatusCode::NOT_FOUND);
    let after = get(&app, &other, "/api/board/posts?q=7%20km").await;
    assert!(titles(&after).is_empty(), "a deleted post leaves search");
    // A soft delete: a moderator still sees it, marked as ended.
    let seen = get(&app, &moderator(&app), &path).await;
    assert_eq!(seen["visibility"], "ended");
}

async fn likes_and_comment_counts_stay_exact_under_concurrency(app: TestApp) {
    let (_, author) = person(&app);
    let id = post(&app, &author, "Count me", "Like and unlike at will.").await;
    let people: Vec<(Uuid, String)> = (0..24).map(|_| person(&app)).collect();

    // Each person toggles several times, all at once; the even ones end liking it.
    let mut tasks = Vec::new();
    for (i, (_, token)) in people.iter().enumerate() {
        let (router, token, path) = (app.router.clone(), token.clone(), format!("/api/board/posts/{id}/like"));
        tasks.push(tokio::spawn(async move {
            let toggles = 2 + (i % 3) * 2 + usize::from(i % 2 == 0);
            for t in 0..toggles {
                let method = if t % 2 == 0 { "PUT" } else { "DELETE" };
                let req = axum::http::Request::builder()
                    .method(method)
                    .uri(&path)
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::empty())
                    .unwrap();
                let r = TestApp::send_to(&router, req).await;
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            }
        }));
    }
    // And one person likes it ten times at once: counted once.
    let (_, eager) = person(&app);
    for _ in 0..10 {
        let (router, token, path) = (app.router.clone(), eager.clone(), format!("/api/board/posts/{id}/like"));
        tasks.push(tokio::spawn(async move {
            let req = axum::http::Request::builder()
                .method("PUT")
                .uri(&path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            assert_eq!(TestApp::send_to(&router, req).await.status, StatusCode::OK);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let expected = people.len().div_ceil(2) + 1;
    let seen = get(&app, &author, &format!("/api/board/posts/{id}")).await;
    assert_eq!(seen["likes"].as_u64(), Some(expected as u64), "likes after the storm");
    for (i, (_, token)) in people.iter().enumerate() {
        let mine = get(&app, token, &format!("/api/board/posts/{id}")).await;
        assert_eq!(mine["likedByMe"].as_bool(), Some(i % 2 == 0), "person {i}");
    }

    // Comments written and deleted at once: the count is the comments left.
    let mut writes = Vec::new();
    for (i, (_, token)) in people.iter().enumerate() {
        let (router, token, id) = (app.router.clone(), token.clone(), id.clone());
        writes.push(tokio::spawn(async move {
            let body = json!({"body": format!("comment {i}")}).to_string();
            let req = axum::http::Request::builder()
                .method("POST")
                .uri(format!("/api/board/posts/{id}/comments"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap();
            let made = TestApp::send_to(&router, req).await;
            assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
            if i % 3 == 0 {
                let cid = made.body["id"].as_str().unwrap();
                let req = axum::http::Request::builder()
                    .method("DELETE")
                    .uri(format!("/api/board/comments/{cid}"))
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::empty())
                    .unwrap();
                assert_eq!(TestApp::send_to(&router, req).await.status, StatusCode::NO_CONTENT);
            }
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    let left = people.len() - people.len().div_ceil(3);
    let seen = get(&app, &author, &format!("/api/board/posts/{id}")).await;
    assert_eq!(seen["comments"].as_u64(), Some(left as u64));
    let listed = get(&app, &author, &format!("/api/board/posts/{id}/comments?limit=100")).await;
    assert_eq!(listed["comments"].as_array().unwrap().len(), left);
}

async fn search_finds_korean_and_english_words_anywhere(app: TestApp) {
    let (_, token) = person(&app);
    // Unique words per run so other tests' posts on the shared database do not match.
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    post(&app, &token, &format!("우산 인증 {tag}"), "오늘은 비가 와서 우산챙기기 미션을 했어요.").await;
    post(&app, &token, &format!("Umbrella day {tag}"), "Rain all afternoon; my UMBRELLA held up.").await;
    post(&app, &token, &format!("맑은 날 산책 {tag}"), "Sunny walk by the 한강, 50% off coffee after.").await;
    post(&app, &token, &format!("미세먼지 {tag}"), "오늘 PM10 나쁨 ㅋㅋㅋㅠㅠ iPhone15 사진, OpenAI로봇 don’t go out")
        .await;

    let search = |q: &str| {
        let q = q.to_owned();
        let app = &app;
        let token = token.clone();
        async move {
            let path = format!("/api/board/posts?q={}", urlencode(&format!("{q} {tag}")));
            let mut found = titles(&get(app, &token, &path).await);
            found.iter_mut().for_each(|t| *t = t.trim_end_matches(tag).trim_end().to_owned());
            found.sort();
            found
        }
    };
    assert_eq!(search("우산").await, vec!["우산 인증"]);
    assert_eq!(search("챙기").await, vec!["우산 인증"], "inside a longer Korean word");
    assert_eq!(search("비").await, vec!["우산 인증"], "one syllable");
    assert_eq!(search("umbrella").await, vec!["Umbrella day"]);
    assert_eq!(search("ＵＭＢＲＥＬＬＡ").await, vec!["Umbrella day"], "full-width and case folded");
    assert_eq!(search("brell").await, vec!["Umbrella day"], "inside an English word");
    assert_eq!(search("한강 coffee").await, vec!["맑은 날 산책"], "mixed scripts, every word");
    assert_eq!(search("50%").await, vec!["맑은 날 산책"], "wildcards are literal");
    assert_eq!(search("5_%").await, Vec::<String>::new(), "an underscore is not a wildcard");
    assert_eq!(search("우산 coffee").await, Vec::<String>::new(), "every word must match");
    assert_eq!(search("날").await, vec!["맑은 날 산책"]);
    assert_eq!(search("ㅠㅠ").await, vec!["미세먼지"], "compatibility jamo as typed");
    assert_eq!(search("pm").await, vec!["미세먼지"], "two letters inside a longer run");
    assert_eq!(search("iphone 15").await, vec!["미세먼지"]);
    assert_eq!(search("ai로봇").await, vec!["미세먼지"]);
    assert_eq!(search("don't").await, vec!["미세먼지"], "a typographic apostrophe");

    for (q, code) in [
        ("a", "invalid-search"),
        ("?!", "invalid-search"),
        ("a b c d e f", "invalid-search"),
        ("rain\u{0}", "invalid-search"),
    ] {
        let r = app.call("GET", &format!("/api/board/posts?q={}", urlencode(q)), Some(&token), None).await;
        assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{q:?}");
    }
    let long = "가".repeat(101);
    let r = app.call("GET", &format!("/api/board/posts?q={}", urlencode(&long)), Some(&token), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn lists_page_with_cursors_newest_first(app: TestApp) {
    let (me, token) = person(&app);
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(post(&app, &token, &format!("page {i}"), "x y z").await);
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut path = format!("/api/board/posts?author={me}&limit=2");
    loop {
        let page = get(&app, &token, &path).await;
        seen.extend(page["posts"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/board/posts?author={me}&limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen, made, "every post once, newest first");

    let id = &made[0];
    let mut comments = Vec::new();
    for i in 0..5 {
        let c = comment(&app, &token, id, &format!("c{i}")).await;
        comments.push(c.body["id"].as_str().unwrap().to_owned());
    }
    let first = get(&app, &token, &format!("/api/board/posts/{id}/comments?limit=2")).await;
    let next = first["next"].as_str().unwrap();
    let rest = get(&app, &token, &format!("/api/board/posts/{id}/comments?limit=10&after={next}")).await;
    let order: Vec<String> = first["comments"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["comments"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, comments, "comments oldest first, each once");
    assert!(rest["next"].is_null());

    for bad in ["limit=0", "limit=101", "before=nope", "author=nobody", "extra=1"] {
        let r = app.call("GET", &format!("/api/board/posts?{bad}"), Some(&token), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
        assert_eq!(r.content_type(), "application/problem+json");
    }
}

async fn the_write_limit_stops_a_flood_and_says_when_to_retry(app: TestApp) {
    let (_, token) = person(&app);
    for i in 0..5 {
        post(&app, &token, &format!("flood {i}"), "again").await;
    }
    let sixth = app.call("POST", "/api/board/posts", Some(&token), Some(json!({"title": "six", "body": "b"}))).await;
    assert_eq!((sixth.status, sixth.code()), (StatusCode::TOO_MANY_REQUESTS, "write-limit"));
    let retry: u64 = sixth.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry), "Retry-After {retry}");
    // Someone else still writes.
    let (_, other) = person(&app);
    let theirs = post(&app, &other, "mine", "fine").await;

    // Comments: 20 writes a minute, posts included (5 so far for `token`).
    let mut last = StatusCode::CREATED;
    let mut made = 5;
    while last == StatusCode::CREATED {
        last = comment(&app, &token, &theirs, "spam").await.status;
        made += 1;
        assert!(made <= 30, "no limit reached");
    }
    assert_eq!((last, made), (StatusCode::TOO_MANY_REQUESTS, 21), "the 21st write of the minute is refused");
    let listed = get(&app, &other, &format!("/api/board/posts/{theirs}")).await;
    assert_eq!(listed["comments"].as_i64(), Some(15), "refused comments are not stored");
}

async fn reports_hide_content_until_a_moderator_removes_or_keeps_it(app: TestApp) {
    let (author, token) = person(&app);
    let moderator = moderator(&app);
    let bad = post(&app, &token, "Buy followers", "cheap!!!").await;
    let fine = post(&app, &token, "Weather talk", "It rained.").await;
    let path = |id: &str| format!("/api/board/posts/{id}");

    let own = app.call("POST", &format!("{}/reports", path(&bad)), Some(&token), Some(json!({"reason": "spam"}))).await;
    assert_eq!((own.status, own.code()), (StatusCode::FORBIDDEN, "own-content"));
    let reporters: Vec<String> = (0..5).map(|_| person(&app).1).collect();
    for (i, r) in reporters.iter().enumerate() {
        for id in [&bad, &fine] {
            let body = json!({"reason": if i % 2 == 0 { "spam" } else { "abuse" }, "note": "see title"});
            let got = app.call("POST", &format!("{}/reports", path(id)), Some(r), Some(body)).await;
            assert_eq!(
                (got.status, got.body["repeated"].as_bool()),
                (StatusCode::CREATED, Some(false)),
                "{:?}",
                got.body
            );
            if i == 0 {
                let again =
                    app.call("POST", &format!("{}/reports", path(id)), Some(r), Some(json!({"reason": "other"}))).await;
                assert_eq!(
                    (again.status, again.body["repeated"].as_bool()),
                    (StatusCode::OK, Some(true)),
                    "counted once"
                );
            }
        }
    }
    // Hidden now: a repeated report finds nothing to report.
    let again = app
        .call("POST", &format!("{}/reports", path(&bad)), Some(&reporters[0]), Some(json!({"reason": "other"})))
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // Five reports hide both: gone from lists and from other people, still the author's.
    let (_, stranger) = person(&app);
    for id in [&bad, &fine] {
        assert_eq!(app.call("GET", &path(id), Some(&stranger), None).await.status, StatusCode::NOT_FOUND);
        assert_eq!(get(&app, &token, &path(id)).await["visibility"], "hidden");
    }
    let listed = get(&app, &stranger, &format!("/api/board/posts?author={author}")).await;
    assert!(titles(&listed).is_empty());
    let edit = app.call("PATCH", &path(&bad), Some(&token), Some(json!({"title": "Nothing to see"}))).await;
    assert_eq!((edit.status, edit.code()), (StatusCode::CONFLICT, "under-review"));

    // Moderators only.
    let denied = app.call("GET", "/api/board/reports", Some(&stranger), None).await;
    assert_eq!((denied.status, denied.code()), (StatusCode::FORBIDDEN, "forbidden-role"));
    let removal = json!({"reason": "spam"});
    let denied = app.call("POST", &format!("{}/removal", path(&bad)), Some(&token), Some(removal.clone())).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let queue = get(&app, &moderator, "/api/board/reports?limit=100").await;
    let item = |id: &str| queue["items"].as_array().unwrap().iter().find(|i| i["id"] == id).cloned();
    let flagged = item(&bad).expect("the spam post waits for a moderator");
    assert_eq!((flagged["kind"].as_str(), flagged["reports"].as_i64()), (Some("post"), Some(5)));
    assert_eq!(flagged["reasons"], json!(["abuse", "spam"]));
    assert_eq!(flagged["excerpt"], "Buy followers");
    assert!(item(&fine).is_some());

    let removed = app.call("POST", &format!("{}/removal", path(&bad)), Some(&moderator), Some(removal)).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{:?}", removed.body);
    assert_eq!(app.call("GET", &path(&bad), Some(&token), None).await.status, StatusCode::NOT_FOUND);
    let kept = app.call("POST", &format!("{}/dismissal", path(&fine)), Some(&moderator), None).await;
    assert_eq!(kept.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&app, &stranger, &path(&fine)).await["visibility"], "live");
    let queue = get(&app, &moderator, "/api/board/reports?limit=100").await;
    assert!(queue["items"].as_array().unwrap().iter().all(|i| i["id"] != bad.as_str() && i["id"] != fine.as_str()));

    // Comments are reported and removed the same way, and leave the count.
    let c = comment(&app, &stranger, &fine, "rude words").await;
    let cid = c.body["id"].as_str().unwrap().to_owned();
    for r in &reporters {
        let reported = app
            .call("POST", &format!("/api/board/comments/{cid}/reports"), Some(r), Some(json!({"reason": "abuse"})))
            .await;
        assert_eq!(reported.status, StatusCode::CREATED);
    }
    let listed = |who: String| {
        let app = &app;
        let path = format!("{}/comments", path(&fine));
        async move {
            let page = get(app, &who, &path).await;
            page["comments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["visibility"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(stranger.clone()).await, vec!["hidden"], "its author still sees it, marked");
    assert_eq!(listed(moderator.clone()).await, vec!["hidden"]);
    assert!(listed(token.clone()).await.is_empty(), "hidden from everyone else");
    let edit = app
        .call("PATCH", &format!("/api/board/comments/{cid}"), Some(&stranger), Some(json!({"body": "nice words"})))
        .await;
    assert_eq!((edit.status, edit.code()), (StatusCode::CONFLICT, "under-review"));
    assert_eq!(get(&app, &token, &path(&fine)).await["comments"].as_i64(), Some(1));
    let gone = app
        .call("POST", &format!("/api/board/comments/{cid}/removal"), Some(&moderator), Some(json!({"reason": "abuse"})))
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&app, &token, &path(&fine)).await["comments"].as_i64(), Some(0));
    let twice = app
        .call("POST", &format!("/api/board/comments/{cid}/removal"), Some(&moderator), Some(json!({"reason": "abuse"})))
        .await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);
}

async fn blocked_people_are_out_of_sight_and_cannot_comment(app: TestApp) {
    let (me, token) = person(&app);
    let (troll, troll_token) = person(&app);
    let mine = post(&app, &token, "My walk", "Lovely.").await;
    let theirs = post(&app, &troll_token, "Troll post", "Bait.").await;
    comment(&app, &troll_token, &mine, "boo").await;

    let self_block = app.call("PUT", &format!("/api/board/blocks/{me}"), Some(&token), None).await;
    assert_eq!((self_block.status, self_block.code()), (StatusCode::UNPROCESSABLE_ENTITY, "self-block"));
    for _ in 0..2 {
        let blocked = app.call("PUT", &format!("/api/board/blocks/{troll}"), Some(&token), None).await;
        assert_eq!(blocked.status, StatusCode::NO_CONTENT);
    }
    let list = get(&app, &token, "/api/board/blocks").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["user"]["id"].as_str(), Some(troll.to_string().as_str()));

    let feed = get(&app, &token, &format!("/api/board/posts?author={troll}")).await;
    assert!(titles(&feed).is_empty(), "a blocked person's posts are out of sight");
    let comments = get(&app, &token, &format!("/api/board/posts/{mine}/comments")).await;
    assert!(comments["comments"].as_array().unwrap().is_empty());
    let denied = comment(&app, &troll_token, &mine, "let me in").await;
    assert_eq!((denied.status, denied.code()), (StatusCode::FORBIDDEN, "blocked"));
    // They still see each other's post ids directly; blocking hides, it does not lock.
    let theirs_seen = get(&app, &troll_token, &format!("/api/board/posts/{theirs}")).await;
    assert_eq!(theirs_seen["comments"].as_i64(), Some(0));

    assert_eq!(
        app.call("DELETE", &format!("/api/board/blocks/{troll}"), Some(&token), None).await.status,
        StatusCode::NO_CONTENT
    );
    let feed = get(&app, &token, &format!("/api/board/posts?author={troll}")).await;
    assert_eq!(titles(&feed), vec!["Troll post"]);
    assert_eq!(comment(&app, &troll_token, &mine, "sorry").await.status, StatusCode::CREATED);
}
