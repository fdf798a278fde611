//! Tornado's `tornado.netutil.is_valid_ip` for the `xheaders` setting:
//! which text an `X-Real-Ip` / `X-Forwarded-For` header may carry as the
//! client's address, and the address it denotes.
//!
//! Tornado asks glibc's `getaddrinfo(text, AI_NUMERICHOST)` (after Python
//! encodes the text with its `idna` codec), so it takes more than the
//! canonical forms: IPv4 as `inet_aton` reads it (`127.1`, `0x7f.1`,
//! `2130706433`, a leading `0` as octal: `010.1.1.1` is `8.1.1.1`, and
//! `08.1.1.1` is refused) and IPv6 with a zone (`fe80::1%eth0`,
//! `2001:db8::1%7`). This module gives the same answers from the same
//! rules, without calling the C library.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address `text` denotes, with its IPv6 zone as an interface index
/// (`0` for none), when Tornado's `is_valid_ip(text)` is true; `None`
/// when it is false.
///
/// The rules, in glibc's order (`getaddrinfo` with `AI_NUMERICHOST`):
/// 1. Empty, a NUL or a character outside ASCII: refused. (Tornado maps
///    some Latin-1 characters through IDNA's nameprep first, so that
///    `1.2.3.4` followed by a soft hyphen, or `1.2.3.²`, pass there; not
///    here.)
/// 2. Python's `idna` codec: every dot-separated label but the last must
///    be 1 to 63 bytes long, the last at most 63.
/// 3. `inet_aton`, with nothing after the address: one to four parts
///    separated by dots, each decimal, octal (a leading `0`) or hex (`0x`),
///    the last one filling the remaining bytes (`127.1`, `1.2.65535`).
/// 4. `inet_pton(AF_INET6)` of the text before the first `%`, and after
///    it a zone: an interface name for a link-local unicast (`fe80::/10`)
///    or an interface- or link-local multicast address (`ffx1::`,
///    `ffx2::`), if that interface exists here (see [`interface_index`]),
///    else a decimal number up to 2³²−1.
pub(crate) fn parse_ip(text: &str) -> Option<(IpAddr, u32)> {
    if text.is_empty() || !text.is_ascii() || text.contains('\0') {
        return None;
    }
    let mut labels = text.split('.');
    let last = labels.next_back().unwrap_or("");
    if last.len() > 63 || labels.any(|l| l.is_empty() || l.len() > 63) {
        return None;
    }
    if let Some(v4) = inet_aton_exact(text) {
        return Some((IpAddr::V4(v4), 0));
    }
    let (addr, zone) = match text.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (text, None),
    };
    let v6: Ipv6Addr = addr.parse().ok()?;
    let scope = match zone {
        None => 0,
        Some(zone) => scope_id(&v6, zone)?,
    };
    Some((IpAddr::V6(v6), scope))
}

/// glibc's `__inet_aton_exact`: `a`, `a.b`, `a.b.c` or `a.b.c.d`, each
/// part as C's `strtoul(.., 0)` reads it after a digit, the parts before
/// the last at most 255 and the last at most what the remaining bytes
/// hold; nothing may follow.
fn inet_aton_exact(text: &str) -> Option<Ipv4Addr> {
    let mut bytes = [0u8; 4];
    let mut parts = 0;
    let mut rest = text.as_bytes();
    loop {
        let (value, after) = aton_part(rest)?;
        match after.split_first() {
            Some((b'.', tail)) => {
                if parts == 3 {
                    return None;
                }
                bytes[parts] = u8::try_from(value).ok()?;
                parts += 1;
                rest = tail;
            }
            Some(_) => return None,
            None => {
                let room = 8 * (4 - parts as u32);
                if room < 32 && value >> room != 0 {
                    return None;
                }
                let mut word = u32::from_be_bytes(bytes);
                word |= value as u32;
                return Some(Ipv4Addr::from(word));
            }
        }
    }
}

/// One part of [`inet_aton_exact`]: its value (at most 2³²−1) and the
/// bytes after it. It must start with a digit; `0x` then hex digits is
/// hex, another leading `0` octal (where `8` and `9` end the part: `08` is
/// `0` followed by `8`), else decimal.
fn aton_part(s: &[u8]) -> Option<(u64, &[u8])> {
    if !s.first()?.is_ascii_digit() {
        return None;
    }
    let (radix, digits) = match s {
        [b'0', b'x' | b'X', h, ..] if h.is_ascii_hexdigit() => (16, &s[2..]),
        [b'0', ..] => (8, s),
        _ => (10, s),
    };
    let len = digits
        .iter()
        .position(|&b| !(b as char).is_digit(radix))
        .unwrap_or(digits.len());
    let mut value: u64 = 0;
    for &b in &digits[..len] {
        let d = u64::from((b as char).to_digit(radix)?);
        value = value.checked_mul(u64::from(radix))?.checked_add(d)?;
        if value > u64::from(u32::MAX) {
            return None;
        }
    }
    Some((value, &digits[len..]))
}

/// glibc's `__inet6_scopeid_pton`: an interface name (for the link-local
/// kinds of address only), else a decimal number that fits 32 bits.
fn scope_id(addr: &Ipv6Addr, zone: &str) -> Option<u32> {
    let o = addr.octets();
    let link_local =
        (o[0] == 0xfe && o[1] & 0xc0 == 0x80) || (o[0] == 0xff && matches!(o[1] & 0x0f, 1 | 2));
    if link_local {
        if let Some(index) = interface_index(zone) {
            return Some(index);
        }
    }
    if !zone.bytes().all(|b| b.is_ascii_digit()) || zone.is_empty() {
        return None;
    }
    let digits = zone.trim_start_matches('0');
    if digits.len() > 10 {
        return None;
    }
    if digits.is_empty() {
        return Some(0);
    }
    digits.parse().ok()
}

/// The index of the network interface `name` on this machine (C's
/// `if_nametoindex`), read from `/sys/class/net/NAME/ifindex` on Linux:
/// `None` when there is no such interface, for a name the kernel would
/// not give one (empty, 16 bytes or more, `.`, `..`, with `/`), and on
/// other systems.
fn interface_index(name: &str) -> Option<u32> {
    let valid = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0']);
    if !valid || !cfg!(target_os = "linux") {
        return None;
    }
    let path = std::path::Path::new("/sys/class/net")
        .join(name)
        .join("ifindex");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `socket.getaddrinfo(s, 0, AF_UNSPEC, SOCK_STREAM, 0,
    /// AI_NUMERICHOST)` (and so Tornado 6.6's `is_valid_ip`) answered for
    /// each text, on glibc 2.36 in Python 3: the address and zone it gave,
    /// or `None` for a refusal (`gaierror`, or `UnicodeError` from the
    /// `idna` codec). Interface names use `lo` (index 1 on Linux), the one
    /// interface every Linux machine has.
    const CASES: &[(&str, Option<(&str, u32)>)] = &[
        // IPv4 as inet_aton reads it.
        ("1.2.3.4", Some(("1.2.3.4", 0))),
        ("001.2.3.4", Some(("1.2.3.4", 0))),
        ("010.1.1.1", Some(("8.1.1.1", 0))),
        ("0x7f.1", Some(("127.0.0.1", 0))),
        ("0x7f000001", Some(("127.0.0.1", 0))),
        ("0X1A.2.3.4", Some(("26.2.3.4", 0))),
        ("1.2.3.0x4", Some(("1.2.3.4", 0))),
        ("127.1", Some(("127.0.0.1", 0))),
        ("127.0.1", Some(("127.0.0.1", 0))),
        ("2130706433", Some(("127.0.0.1", 0))),
        ("4294967295", Some(("255.255.255.255", 0))),
        ("0xffffffff", Some(("255.255.255.255", 0))),
        ("0xFFFFFFFF", Some(("255.255.255.255", 0))),
        ("1.2.65535", Some(("1.2.255.255", 0))),
        ("1.16777215", Some(("1.255.255.255", 0))),
        ("0", Some(("0.0.0.0", 0))),
        ("00", Some(("0.0.0.0", 0))),
        (
            "000000000000000000000000000000000000000000000000000000000000001.1",
            Some(("1.0.0.1", 0)),
        ),
        ("08.1.1.1", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("1.256.1.1", None),
        ("1.2.65536", None),
        ("1.16777216", None),
        ("4294967296", None),
        ("0x100000000", None),
        ("99999999999999999999999", None),
        ("1.2.3.4 ", None),
        (" 1.2.3.4", None),
        ("1.2.3.4\t", None),
        ("1.2.3.4\n", None),
        ("1.2.3.4.", None),
        ("1..2", None),
        ("", None),
        ("0x", None),
        ("0x.1.1.1", None),
        ("1e1.1.1.1", None),
        ("1.2.3.4%1", None),
        // A label over 63 bytes: Python's idna codec refuses it first.
        (
            "00000000000000000000000000000000000000000000000000000000000000000000001",
            None,
        ),
        (
            "1.0000000000000000000000000000000000000000000000000000000000000000000000",
            None,
        ),
        // IPv6, and its zones.
        ("::1", Some(("::1", 0))),
        ("FE80::1%1", Some(("fe80::1", 1))),
        ("fe80::1%lo", Some(("fe80::1", 1))),
        ("ff02::1%lo", Some(("ff02::1", 1))),
        ("ff01::1%lo", Some(("ff01::1", 1))),
        ("ff12::1%lo", Some(("ff12::1", 1))),
        ("::1%1", Some(("::1", 1))),
        ("::1%01", Some(("::1", 1))),
        ("2001:db8::1%7", Some(("2001:db8::1", 7))),
        ("::1%4294967295", Some(("::1", 4294967295))),
        ("::ffff:1.2.3.4", Some(("::ffff:1.2.3.4", 0))),
        ("1:2:3:4:5:6:7::", Some(("1:2:3:4:5:6:7:0", 0))),
        ("::1:2:3:4:5:6:7", Some(("0:1:2:3:4:5:6:7", 0))),
        ("fe80::1%nosuchif0", None),
        ("::1%lo", None),
        ("2001:db8::1%lo", None),
        ("ff05::1%lo", None),
        ("::1%", None),
        ("fe80::1%", None),
        ("::1%4294967296", None),
        ("::1%+1", None),
        ("::1% 1", None),
        ("::1%1 ", None),
        ("::1%1%2", None),
        ("::ffff:1.02.3.4", None),
        ("::ffff:001.2.3.4", None),
        ("::ffff:1.2.3", None),
        ("1:2:3:4:5:6:7:8::", None),
        ("1:2:3:4:5:6::1.2.3.4", None),
        ("1:2:3:4:5:6:7:1.2.3.4", None),
        ("::00001", None),
        ("[::1]", None),
        ("::1]", None),
        (
            "::1%0000000000000000000000000000000000000000000000000000000000000000000000",
            None,
        ),
        // Tornado takes these (nameprep maps the Latin-1 character away
        // or to a digit); cyclone refuses text that is not ASCII.
        ("1.2.3.4\u{ad}", None),
        ("1.2.3.\u{b2}", None),
        ("1.2.3.4\0", None),
    ];

    #[test]
    fn is_valid_ip_as_getaddrinfo_numeric() {
        let lo = cfg!(target_os = "linux") && interface_index("lo") == Some(1);
        for &(text, want) in CASES {
            if !lo && text.contains("%lo") && want.is_some() {
                continue;
            }
            let got = parse_ip(text);
            let want = want.map(|(ip, scope)| (ip.parse::<IpAddr>().unwrap(), scope));
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn interface_names_the_kernel_would_not_give_are_not_looked_up() {
        for name in ["", ".", "..", "a/b", "../lo", "lo/", "0123456789abcdef"] {
            assert_eq!(interface_index(name), None, "{name:?}");
        }
    }
}
