//! Small parsers for `/proc` files shared by the container and host collectors.

/// One interface of `/proc/<pid>/net/dev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDev {
    pub iface: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errs: u64,
    pub tx_errs: u64,
    pub rx_drop: u64,
    pub tx_drop: u64,
}

/// Parses `/proc/<pid>/net/dev` (two header lines, then `iface: 16 numbers`). Bad lines are skipped.
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        let nums: Vec<u64> = rest
            .split_ascii_whitespace()
            .map_while(|v| v.parse().ok())
            .collect();
        if nums.len() < 16 {
            continue;
        }
        out.push(NetDev {
            iface: iface.trim().to_string(),
            rx_bytes: nums[0],
            rx_packets: nums[1],
            rx_errs: nums[2],
            rx_drop: nums[3],
            tx_bytes: nums[8],
            tx_packets: nums[9],
            tx_errs: nums[10],
            tx_drop: nums[11],
        });
    }
    out
}

/// Parses an RFC 3339 UTC-or-offset timestamp as Docker prints it (`2024-05-01T10:11:12.123456789Z`) into unix
/// seconds. `None` for Docker's zero time (`0001-01-01T00:00:00Z`) and anything malformed.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y < 1970 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + se - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_parses_and_skips_headers() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:       10       1    0    0    0     0          0         0       10       1    0    0    0     0       0          0\n  eth0:  200 2 0 0 0 0 0 0 300 3 0 0 0 0 0 0\n bad: 1 2\n";
        let v = parse_net_dev(t);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].iface, "eth0");
        assert_eq!(
            (v[1].rx_bytes, v[1].tx_bytes, v[1].tx_packets),
            (200, 300, 3)
        );
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-05-01T10:11:12.123456789Z"),
            Some(1714558272)
        );
        assert_eq!(parse_rfc3339("2024-05-01T12:11:12+02:00"), Some(1714558272));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("nonsense"), None);
        assert_eq!(parse_rfc3339("2024-05-01T10:11:12.5"), None);
    }
}
