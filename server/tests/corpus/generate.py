#!/usr/bin/env python3
"""Writes malformed.json, the bad-input corpus replayed by tests/corpus.rs.

Each case is one HTTP request. Placeholders in {{...}} are filled in by the
test with live values (a fresh challenge, a forged one, the admin key, …), so
the corpus also covers forged, truncated, expired, replayed and wrong-address
challenges. Every case must get a 4xx JSON answer; `expect` pins the status
where it matters. Edit this script, run it, and commit both files.
"""
import json
import pathlib

cases = []


def add(name, method, path, body=None, headers=None, expect=None):
    c = {"name": name, "method": method, "path": path}
    if headers:
        c["headers"] = headers
    if body is not None:
        c["body"] = body
    if expect:
        c["expect"] = expect
    cases.append(c)


J = {"Content-Type": "application/json"}
for name, body, expect in [
    ("invalid json", "{", 400),
    ("truncated json", '{"challenge": "abc", "nonce": 1', 400),
    ("json array", "[]", 400),
    ("json string", '"hello"', 400),
    ("json null", "null", 400),
    ("empty object", "{}", 400),
    ("missing nonce", '{"challenge": "{{CHALLENGE}}"}', 400),
    ("missing challenge", '{"nonce": 1}', 400),
    ("challenge is a number", '{"challenge": 5, "nonce": 1}', 400),
    ("nonce is a string", '{"challenge": "{{CHALLENGE}}", "nonce": "1"}', 400),
    ("nonce is negative", '{"challenge": "{{CHALLENGE}}", "nonce": -1}', 400),
    ("nonce is a float", '{"challenge": "{{CHALLENGE}}", "nonce": 1.5}', 400),
    ("nonce overflows u64", '{"challenge": "{{CHALLENGE}}", "nonce": 18446744073709551616}', 400),
    ("nonce is huge", '{"challenge": "{{CHALLENGE}}", "nonce": 1e400}', 400),
    ("nonce is null", '{"challenge": "{{CHALLENGE}}", "nonce": null}', 400),
    ("unknown field", '{"challenge": "{{CHALLENGE}}", "nonce": 1, "admin": true}', 400),
    ("telemetry wrong type", '{"challenge": "{{CHALLENGE}}", "nonce": 1, "telemetry": "fast"}', 400),
    ("telemetry negative", '{"challenge": "{{CHALLENGE}}", "nonce": 1, "telemetry": {"hashes": -5}}', 400),
    ("unicode challenge", '{"challenge": "éè中文.😀", "nonce": 1}', 400),
    ("escaped nul", '{"challenge": "a\\u0000b", "nonce": 1}', 400),
    ("lone surrogate", '{"challenge": "\\ud800", "nonce": 1}', 400),
    ("empty challenge", '{"challenge": "", "nonce": 1}', 400),
    ("dot only", '{"challenge": ".", "nonce": 1}', 400),
    ("forged signature", '{"challenge": "{{CHALLENGE_FORGED}}", "nonce": {{NONCE}}}', 400),
    ("truncated challenge", '{"challenge": "{{CHALLENGE_TRUNCATED}}", "nonce": {{NONCE}}}', 400),
    ("challenge without signature", '{"challenge": "{{CHALLENGE_PAYLOAD}}", "nonce": {{NONCE}}}', 400),
    ("expired challenge", '{"challenge": "{{CHALLENGE_EXPIRED}}", "nonce": 1}', 410),
    ("replayed challenge", '{"challenge": "{{CHALLENGE_SPENT}}", "nonce": {{NONCE_SPENT}}, "ticket": {{TICKET_SPENT}}}', 409),
    ("missing ticket", '{"challenge": "{{CHALLENGE}}", "nonce": {{NONCE}}}', 400),
    ("ticket is a string", '{"challenge": "{{CHALLENGE}}", "nonce": {{NONCE}}, "ticket": "1"}', 400),
    ("ticket is negative", '{"challenge": "{{CHALLENGE}}", "nonce": {{NONCE}}, "ticket": -1}', 400),
    ("wrong-ip challenge", '{"challenge": "{{CHALLENGE_OTHER_IP}}", "nonce": 1}', 403),
    ("overlong challenge", '{"challenge": "{{LONG_200}}", "nonce": 1}', 400),
    ("deeply nested", "[" * 3000 + "]" * 3000, 400),
]:
    add(f"solve: {name}", "POST", "/api/solve", body, J, expect)
add("solve: empty body", "POST", "/api/solve", "", J, 400)
add("solve: oversized body", "POST", "/api/solve", "{{OVERSIZED}}", J, 413)
add("solve: binary garbage", "POST", "/api/solve", "\u0000\u00ff\u00fe\u0001garbage", {"Content-Type": "application/octet-stream"}, 400)
add("solve: GET is not allowed", "GET", "/api/solve", expect=405)

for name, body in [
    ("invalid json", "{"),
    ("refresh token wrong length", '{"refresh_token": "abc"}'),
    ("refresh token not a uuid", '{"refresh_token": "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"}'),
    ("refresh token unknown", '{"refresh_token": "0b6f4b52-0e5c-4f7e-9d2a-111111111111"}'),
    ("refresh token a number", '{"refresh_token": 7}'),
    ("unknown field", '{"difficulty": 1}'),
]:
    add(f"challenge: {name}", "POST", "/api/challenge", body, J)
add("challenge: oversized body", "POST", "/api/challenge", "{{OVERSIZED}}", J, 413)

for name, headers in [
    ("no credentials", {}),
    ("empty bearer", {"Authorization": "Bearer "}),
    ("basic auth", {"Authorization": "Basic dXNlcjpwYXNz"}),
    ("bearer with spaces", {"Authorization": "Bearer a b c"}),
    ("bearer too short", {"Authorization": "Bearer 1234"}),
    ("bearer too long", {"Authorization": "Bearer " + "a" * 5000}),
    ("bearer uuid v1", {"Authorization": "Bearer 6ba7b810-9dad-11d1-80b4-00c04fd430c8"}),
    ("bearer unknown v4", {"Authorization": "Bearer 0b6f4b52-0e5c-4f7e-9d2a-111111111111"}),
    ("bearer non-ascii", {"Authorization": "Bearer tökén"}),
    ("cookie garbage", {"Cookie": "powgate_token=%%%; ;;=;"}),
    ("cookie empty", {"Cookie": "powgate_token="}),
    ("cookie wrong length", {"Cookie": "powgate_token=abc"}),
    ("cookie quoted", {"Cookie": "powgate_token=\"0b6f4b52-0e5c-4f7e-9d2a-111111111111\""}),
    ("cookie non-ascii", {"Cookie": "powgate_token=ключ"}),
    ("cookie many", {"Cookie": "; ".join(f"c{i}=v" for i in range(300))}),
    ("forwarded uri garbage", {"X-Forwarded-Uri": "\u00ff\u00fe", "X-Forwarded-Method": "GET"}),
    ("forwarded ip garbage", {"X-Real-IP": "not-an-ip"}),
    ("forwarded for garbage", {"X-Forwarded-For": ",,,999.1.1.1, ::zz"}),
]:
    add(f"verify: {name}", "GET", "/verify-token", None, headers)

A = {"Content-Type": "application/json", "Authorization": "Bearer {{ADMIN_KEY}}"}
for name, body in [
    ("invalid json", "{"),
    ("empty object", "{}"),
    ("array", "[1]"),
    ("difficulty zero", '{"difficulty": 0}'),
    ("difficulty negative", '{"difficulty": -1}'),
    ("difficulty overflow", '{"difficulty": 99999999999999999999999}'),
    ("difficulty float", '{"difficulty": 1.5}'),
    ("difficulty unknown preset", '{"difficulty": "insane"}'),
    ("difficulty null", '{"difficulty": null}'),
    ("difficulty object", '{"difficulty": {"a": 1}}'),
    ("timeout zero", '{"challenge_timeout": 0}'),
    ("hours too large", '{"token_hours": 100000}'),
    ("max ips zero", '{"token_max_ips": 0}'),
    ("max tokens negative", '{"max_tokens_per_ip": -1}'),
    ("unknown setting", '{"argon2": {"t_cost": 1}}'),
]:
    add(f"admin settings: {name}", "PATCH", "/api/admin/settings", body, A, 400)
add("admin settings: oversized", "PATCH", "/api/admin/settings", "{{OVERSIZED}}", A, 413)
add("admin login: invalid json", "POST", "/api/admin/login", "{", J, 400)
add("admin login: wrong type", "POST", "/api/admin/login", '{"key": 5}', J, 400)
add("admin login: wrong key", "POST", "/api/admin/login", '{"key": "nope"}', J, 401)
add("admin tokens: page zero", "GET", "/api/admin/tokens?page=0", None, A, 400)
add("admin tokens: per_page huge", "GET", "/api/admin/tokens?per_page=100000", None, A, 400)
add("admin tokens: page not a number", "GET", "/api/admin/tokens?page=abc", None, A, 400)
add("admin tokens: page overflow", "GET", "/api/admin/tokens?page=99999999999999999999999", None, A, 400)
add("admin revoke: bad id", "POST", "/api/admin/tokens/xyz/revoke", None, A, 400)
add("admin revoke: unknown id", "POST", "/api/admin/tokens/999999/revoke", None, A, 404)
add("admin revoke: hash prefix, not an id", "POST", "/api/admin/tokens/0a1b2c3d4e5f/revoke", None, A, 400)
add("admin revoke: id zero", "POST", "/api/admin/tokens/0/revoke", None, A, 400)
add("admin revoke: id overflow", "POST", "/api/admin/tokens/99999999999999999999999/revoke", None, A, 400)
add("admin revoke: long id", "POST", "/api/admin/tokens/" + "ab" * 100 + "/revoke", None, A, 400)
add("admin: wrong bearer", "GET", "/api/admin/settings", None, {"Authorization": "Bearer wrong"}, 401)
add("admin: bearer non-ascii", "GET", "/api/admin/settings", None, {"Authorization": "Bearer ключ"}, 401)
add("admin: forged session", "GET", "/api/admin/stats", None, {"Cookie": "powgate_admin=aaaa"}, 401)
add("token form: missing field", "POST", "/api/token", "redir=/", {"Content-Type": "application/x-www-form-urlencoded"})
add("token form: wrong content type", "POST", "/api/token", '{"token": 1}', J)
add("unknown api path", "GET", "/api/nope", expect=404)

out = pathlib.Path(__file__).with_name("malformed.json")
out.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
print(f"{len(cases)} cases -> {out}")
