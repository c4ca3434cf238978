#!/usr/bin/env python3
"""The app's main path over HTTP, as a person uses it (Python standard library only).

    python3 tests/e2e/walkthrough.py http://127.0.0.1:8080

Against a running `ww dev` (tests/e2e/app.sh starts one): sign up, set a home location, see
the weather and today's missions, verify one with a photo (its location metadata is gone
from the stored copy), get the `daily-demo` coupon because of it, create a mission someone
else joins and completes, write a post someone comments on and likes, and find the post by a
Korean word. Every step prints what it did; any unexpected answer stops with the response.
"""

import json
import sys
import time
import urllib.error
import urllib.request
import uuid

BASE = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8080"
PASSWORD = "rainy-day-umbrella"
DEADLINE = 60.0  # seconds any eventually-consistent step may take


class Failed(Exception):
    pass


def call(method, path, token=None, body=None, raw=None, content_type=None, expect=(200,)):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if raw is not None:
        data = raw
        headers["content-type"] = content_type
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, payload, ctype = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, payload, ctype = e.code, e.read(), e.headers.get("content-type", "")
    parsed = json.loads(payload) if payload and "json" in ctype else payload
    if status not in expect:
        raise Failed(f"{method} {path}: expected {expect}, got {status}: {parsed!r}")
    return status, parsed


def step(text):
    print(f"  ✓ {text}", flush=True)


def eventually(what, attempt):
    """Retries `attempt` (returning a value or None) until it gives a value."""
    started = time.monotonic()
    while True:
        value = attempt()
        if value is not None:
            return value
        if time.monotonic() - started > DEADLINE:
            raise Failed(f"{what}: not within {DEADLINE:.0f}s")
        time.sleep(0.2)


def account(tag):
    email = f"{tag}-{uuid.uuid4().hex[:12]}@example.com"
    _, signed = call("POST", "/api/auth/signup", body={"email": email, "password": PASSWORD, "nickname": tag}, expect=(201,))
    _, tokens = call("POST", "/api/auth/login", body={"email": email, "password": PASSWORD})
    return signed["userId"], tokens["accessToken"]


def jpeg_with_gps():
    """A small JPEG carrying EXIF GPS data (structure only: the service tells the type by the
    bytes and strips metadata without decoding pixels)."""
    def segment(marker, body):
        return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body

    return (b"\xff\xd8" + segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
            + segment(0xE1, b"Exif\0\0MM\0*GPSLatitude 37.5665 N GPSLongitude 126.978 E")
            + segment(0xDB, bytes(65)) + segment(0xDA, bytes([1, 1, 0, 0, 0x3F, 0]))
            + b"\x12\x34\x56\xff\xd9")


def multipart(fields):
    boundary = "ww-walkthrough-" + uuid.uuid4().hex
    out = b""
    for name, filename, ctype, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


HOMES = [(37.5665, 126.978), (35.1796, 129.0756), (33.4996, 126.5312), (35.6762, 139.6503), (-33.8688, 151.2093),
         (51.5074, -0.1278), (40.7128, -74.006), (64.1466, -21.9426)]


def missions_with_a_photo():
    """A person whose missions today include one verified by a photo, accepted at once (the
    weather decides the missions; another home has other weather)."""
    for lat, lon in HOMES:
        user, token = account("minji")
        call("PATCH", "/api/users/me", token, {"homeLocation": {"lat": lat, "lon": lon}, "timeZone": "Asia/Seoul"})

        def settled():
            _, today = call("GET", "/api/missions/today", token)
            return None if today["provisional"] else today

        today = eventually("missions chosen from the home's weather", settled)
        for m in today["missions"]:
            if m["proof"] in ("photo", "photo-and-text") and m["review"] == "automatic":
                return user, token, (lat, lon), today, m
        step(f"today's missions at {lat},{lon} need no photo; trying another home")
    raise Failed("no home gave a photo mission today")


def main():
    print(f"walkthrough against {BASE}")
    user, token, (lat, lon), today, mission = missions_with_a_photo()
    step(f"signed up, home set to {lat},{lon}")

    _, weather = call("GET", f"/api/weather?lat={lat}&lon={lon}", token)
    current = weather["current"]
    step(f"weather from {weather['provider']}: {current['condition']}, {current['temperatureC']}°C")
    titles = ", ".join(m["title"] for m in today["missions"])
    step(f"today's missions ({today['date']}, {today['weather']['condition']}): {titles}")

    fields = [("photo", "proof.jpg", "image/jpeg", jpeg_with_gps())]
    if mission["proof"] == "photo-and-text":
        fields.append(("text", None, None, "On my way".encode()))
    form, ctype = multipart(fields)
    _, proof = call("POST", f"/api/missions/{mission['id']}/verifications", token, raw=form, content_type=ctype,
                    expect=(201,))
    if proof["status"] != "accepted":
        raise Failed(f"the proof was not accepted at once: {proof!r}")
    _, stored = call("GET", f"/api/missions/verifications/{proof['id']}/photo", token)
    if not stored.startswith(b"\xff\xd8") or b"GPS" in stored:
        raise Failed("the stored photo still carries its location metadata")
    step(f"verified '{mission['title']}' with a photo; the stored copy has no GPS data")

    def coupon():
        # 403 `not-eligible` until the MissionVerified event has reached the issuer.
        status, body = call("POST", "/api/campaigns/daily-demo/issue", token, expect=(201, 403))
        return body if status == 201 else None

    issued = eventually("the daily-demo coupon (MissionVerified reaching the issuer)", coupon)

    def in_wallet():
        _, wallet = call("GET", "/api/coupons/me", token)
        return True if any(c["couponId"] == issued["couponId"] for c in wallet) else None

    eventually("the coupon in the wallet", in_wallet)
    step(f"coupon {issued['code']} issued because of the mission, and in the wallet")

    friend, friend_token = account("jisoo")
    today_kst = today["date"]
    _, created = call("POST", "/api/created-missions", token, {
        "title": "Pick up litter by the river", "description": "Bring a bag.", "startsOn": today_kst,
        "endsOn": today_kst, "timeZone": "Asia/Seoul", "verification": "automatic", "capacity": 10}, expect=(201,))
    call("POST", f"/api/created-missions/{created['id']}/join", friend_token, expect=(201,))
    _, done = call("POST", f"/api/created-missions/{created['id']}/completions", friend_token,
                   {"text": "Two bags full"}, expect=(201,))
    if done["status"] != "completed":
        raise Failed(f"the completion was not accepted: {done!r}")
    step("created a mission; a friend joined and completed it")

    _, post = call("POST", "/api/board/posts", token,
                   {"title": "우산 챙긴 날", "body": f"Did '{mission['title']}' today ☔"}, expect=(201,))
    _, comment = call("POST", f"/api/board/posts/{post['id']}/comments", friend_token, {"body": "멋져요! Nice."},
                      expect=(201,))
    call("PUT", f"/api/board/posts/{post['id']}/like", friend_token)
    _, seen = call("GET", f"/api/board/posts/{post['id']}", token)
    if (seen["comments"], seen["likes"]) != (1, 1):
        raise Failed(f"counts: {seen!r}")
    _, found = call("GET", "/api/board/posts?q=%EC%9A%B0%EC%82%B0", friend_token)  # q=우산
    if post["id"] not in [p["id"] for p in found["posts"]]:
        raise Failed(f"search for 우산 missed the post: {found!r}")

    def nickname():
        _, p = call("GET", f"/api/board/posts/{post['id']}", friend_token)
        return p["author"]["nickname"] or None

    step(f"posted; a friend commented ({comment['body']}) and liked it; 우산 finds it; "
         f"author shown as {eventually('the author nickname', nickname)}")
    print("walkthrough passed")


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"walkthrough FAILED: {e}", file=sys.stderr)
        sys.exit(1)
