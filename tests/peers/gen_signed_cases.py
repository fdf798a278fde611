"""Prints `src/web/signed_cases.rs`: signed values and what Tornado's `decode_signed_value`
and `get_signature_key_version` make of them.

    .venv/bin/python tests/peers/gen_signed_cases.py > src/web/signed_cases.rs && cargo fmt
"""
import hashlib, hmac
from tornado.web import create_signed_value, decode_signed_value, get_signature_key_version
S = "n0t-s0-s3cret|with:odd=chars"
OLD = "old secret, retired"
T = 1764921600
clock = lambda: T + 0.7
def v2(secret, kv, ts, name, value_b64, lens=None):
    f = [str(kv), str(ts), name, value_b64]
    lens = lens or [str(len(x.encode())) for x in f]
    s = "2|" + "".join(f"{l}:{x}|" for l, x in zip(lens, f))
    return s + hmac.new(secret.encode(), s.encode(), hashlib.sha256).hexdigest()
def v1(secret, name, value_b64, ts):
    sig = hmac.new(secret.encode(), (name + value_b64 + str(ts)).encode(), hashlib.sha1).hexdigest()
    return f"{value_b64}|{ts}|{sig}"
cases = []  # (secret kind, name, signed, max_age, now, min_version, lenient)
LENIENT = False  # True while adding values no Tornado writes (see signed.rs)
def add(s, name="user", secret="S", max_age=31, now=T + 0.7, minv=None):
    cases.append((secret, name, s, max_age, now, minv, LENIENT))
for v in (1, 2):
    for name, value in [("user", b"bob"), ("s", b"\x00\xff|x|"), ("e", b""), ("n", "Zoë".encode()), ("p", b"a|b|c"), ("long", bytes(range(256)) * 3)]:
        add(create_signed_value(S, name, value, version=v, clock=clock).decode(), name)
for kv in (0, 1, 3, 7):
    add(create_signed_value(S, "user", b"bob", clock=clock, key_version=kv).decode())
    add(create_signed_value(S, "user", b"bob", clock=clock, key_version=kv).decode(), secret="D")
    add(create_signed_value(OLD, "user", b"bob", clock=clock, key_version=kv).decode(), secret="D")
good = create_signed_value(S, "user", b"bob", clock=clock).decode()
good1 = create_signed_value(S, "user", b"bob", version=1, clock=clock).decode()
# timing
D = 86400
for now in [T - 40 * D, T - 31 * D, T - 31 * D - 1, T - 30 * D, T, T + 31 * D - 1, T + 31 * D, T + 31 * D + 0.5, T + 31 * D + 1, T + 100 * D]:
    for s in (good, good1):
        add(s, now=now)
for ma in [0, 0.5, 1, 31, 1e9, -1]:
    for now in [T, T + 0.4 * D, T + 0.5 * D, T + 0.6 * D, T + 1.5 * D]:
        add(good, max_age=ma, now=now)
        add(good1, max_age=ma, now=now)
for ts in [0, 1, T - 32 * D, T + 30 * D, T + 32 * D, 10**12, 10**19 - 1, 10**19, 10**25]:
    LENIENT = ts >= 10**19
    add(v2(S, 0, ts, "user", "Ym9i"))
    add(v1(S, "user", "Ym9i", ts))
LENIENT = False
for minv in (1, 2):
    add(good, minv=minv); add(good1, minv=minv)
# non-canonical numbers inside a correctly signed value (only a key holder makes these)
LENIENT = True
for lens in [["01", "10", "4", "4"], ["1", "+10", "4", "4"], ["1", "10", " 4", "4"], ["1", "10", "4", "4 "], ["1", "1_0", "4", "4"], ["1", "10", "4", "-4"], ["1", "10", "4", "5"], ["1", "10", "4", "3"], ["1", "10", "4", "99999999999999999999999"]]:
    add(v2(S, 0, T, "user", "Ym9i", lens))
for kv in ["-1", "+1", " 1", "01", "1_0", "x", "", "99999999999999999999999"]:
    for sec in ("S", "D"):
        f = [kv, str(T), "user", "Ym9i"]
        s = "2|" + "".join(f"{len(x)}:{x}|" for x in f)
        add(s + hmac.new(S.encode(), s.encode(), hashlib.sha256).hexdigest(), secret=sec)
for ts in ["+1764921600", " 1764921600", "1764921600 ", "1_764921600", "01764921600", "-1", "", "17649216.0", "１７６４９２１６００"]:
    f = ["0", ts, "user", "Ym9i"]
    s = "2|" + "".join(f"{len(x)}:{x}|" for x in f)
    add(s + hmac.new(S.encode(), s.encode(), hashlib.sha256).hexdigest())
    add(v1(S, "user", "Ym9i", ts))
# base64 leniency
for b in ["Ym9i", "Ym9", "Ym9=", "Ym9j", "Ym8=", "Ym9=x", "Ym9i!!", "Ym 9i", "Ym9i====", "Ym9i=", "Y", "Ym9iYQ", "Ym9iYQ=", "Ym9iYR==", "-_-_", "Ym9i\n", "Zm9v+/+/", "Zm9v-_-_"]:
    add(v2(S, 0, T, "user", b))
    add(v1(S, "user", b, T))
LENIENT = False
# tampering and garbage
for i in range(0, len(good), 7):
    add(good[:i] + ("0" if good[i] != "0" else "1") + good[i + 1:])
for i in range(0, len(good1), 5):
    add(good1[:i] + ("0" if good1[i] != "0" else "1") + good1[i + 1:])
for s in ["", "2", "2|", "2|1:0", "2|1:0|", "3|1:0|10:1764921600|4:user|4:Ym9i|x", "02|" + good[2:], "999|x", "1000|x", "|||", "a|b|c", "a|b", "a|b|c|d",
          good + "0", good[:-1], good.upper(), good[:-64] + good[-64:].upper(), good1 + "|", good1[:-1], good1.upper(), "2|1:0|10:1764921600|4:user|4:Ym9i|", good.replace("|4:user|", "|4:USER|")]:
    add(s)
add(good, name="admin"); add(good1, name="admin"); add(good, name="use"); add(good1, name="use")
# A name that is not ASCII: Tornado writes its length in characters, reads it in bytes
for n in ["Zoë", "ü", "日本"]:
    add(create_signed_value(S, n, b"bob", clock=clock).decode(), name=n)
    add(v2(S, 0, T, n, "Ym9i"), name=n)
    add(create_signed_value(S, n, b"bob", version=1, clock=clock).decode(), name=n)

def decide(c):
    secret, name, s, ma, now, minv, _ = c
    sec = S if secret == "S" else {0: S, 1: OLD, 3: S, 7: S}
    try:
        return decode_signed_value(sec, name, s, max_age_days=ma, clock=lambda: now, min_version=minv)
    except AssertionError:
        return "assert"
def rs(s):
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\u{%x}" % ord(c) for c in s) + '"'
def rb(b):
    return 'b"' + "".join(chr(x) if 32 <= x < 127 and chr(x) not in '"\\' else "\\x%02x" % x for x in b) + '"'
print("""//! Signed values decided by Tornado 6.6.1, generated by
//! `.venv/bin/python tests/peers/gen_signed_cases.py > src/web/signed_cases.rs`
//! (then `cargo fmt`). Each case: the secret (`"S"`: the string `SECRET`;
//! `"D"`: the dictionary `{0: SECRET, 1: OLD, 3: SECRET, 7: SECRET}`), the name, the
//! signed value, `max_age_days`, the clock, `min_version`, what
//! `decode_signed_value` returns, what `get_signature_key_version` returns, and
//! whether the value is one no Tornado writes that Tornado accepts and cyclone refuses
//! (numbers and base64 as only Python's `int()` and `b64decode` read them, a timestamp
//! beyond 19 digits; see `signed.rs`).

/// Secret, name, value, `max_age_days`, clock, `min_version`, decoded value,
/// key version, refused here.
pub(super) type Case = (&'static str, &'static str, &'static str, f64, f64, u32, Option<&'static [u8]>, Option<&'static str>, bool);

#[rustfmt::skip]
pub(super) const CASES: &[Case] = &[""")
for c in cases:
    r = decide(c)
    secret, name, s, ma, now, minv, lenient = c
    out = "None" if r is None else f"Some({rb(r)} as &[u8])"
    kv = get_signature_key_version(s)
    kv = "None" if kv is None else f'Some("{kv}")'
    sec = '"S"' if secret == "S" else '"D"'
    print(f"    ({sec}, {rs(name)}, {rs(s)}, {float(ma)!r}, {float(now)!r}, {minv or 1}, {out}, {kv}, {str(lenient).lower()}),")
print("];")
