//! IP network functions: cidrhost, cidrnetmask, cidrsubnet, cidrsubnets (IPv4 and IPv6).

use super::{as_int, str_arg, string, want, want_min, R};
use crate::eval::Scope;
use hcl::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network: its first address (host bits cleared), its prefix length and its address width (32 or 128).
struct Net {
    base: u128,
    len: u32,
    bits: u32,
}

impl Net {
    fn parse(s: &str, name: &str) -> Result<Net, String> {
        let bad = || format!("{name}(): invalid CIDR address {s:?}");
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let (ip, bits) = match addr.parse::<IpAddr>().map_err(|_| bad())? {
            IpAddr::V4(a) => (u32::from(a) as u128, 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        };
        let len: u32 = len.parse().map_err(|_| bad())?;
        if len > bits || len.to_string() != len_text(s) {
            return Err(bad());
        }
        let base = ip & !host_mask(len, bits);
        Ok(Net { base, len, bits })
    }

    fn addr(&self, v: u128) -> String {
        if self.bits == 32 {
            Ipv4Addr::from(v as u32).to_string()
        } else {
            Ipv6Addr::from(v).to_string()
        }
    }
}

fn len_text(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or("")
}

/// The host part of an address for a prefix of `len` bits out of `bits`.
fn host_mask(len: u32, bits: u32) -> u128 {
    let host = bits - len;
    if host == 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

pub(super) fn cidrhost(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "cidrhost")?;
    let net = Net::parse(&str_arg(a, 0, "cidrhost")?, "cidrhost")?;
    let n = as_int(&a[1], "cidrhost")?;
    let size = host_mask(net.len, net.bits);
    let host = if n >= 0 {
        n as u128
    } else {
        // Negative numbers count back from the last address (-1 is the last one).
        size.checked_sub(n.unsigned_abs() as u128 - 1)
            .ok_or_else(|| format!("cidrhost(): prefix has no host number {n}"))?
    };
    if host > size {
        return Err(format!(
            "cidrhost(): prefix of {} bits has no room for host number {n}",
            net.len
        ));
    }
    string(net.addr(net.base | host))
}

pub(super) fn cidrnetmask(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "cidrnetmask")?;
    let net = Net::parse(&str_arg(a, 0, "cidrnetmask")?, "cidrnetmask")?;
    if net.bits != 32 {
        return Err("cidrnetmask(): only IPv4 networks have a netmask".into());
    }
    string(net.addr(!host_mask(net.len, 32) & 0xffff_ffff))
}

/// The subnet number `num` of `newbits` more prefix bits, as `(first address, prefix length)`.
fn subnet(net: &Net, newbits: i64, num: i64, name: &str) -> Result<(u128, u32), String> {
    if newbits < 0 || net.len as i64 + newbits > net.bits as i64 {
        return Err(format!(
            "{name}(): a prefix of {} bits cannot be extended by {newbits} bits",
            net.len
        ));
    }
    let len = net.len + newbits as u32;
    if num < 0 || (newbits < 64 && num as u128 >= 1u128 << newbits) {
        return Err(format!(
            "{name}(): a prefix extension of {newbits} bits does not accommodate a subnet numbered {num}"
        ));
    }
    let shift = net.bits - len;
    let offset = if shift >= 128 {
        0
    } else {
        (num as u128) << shift
    };
    Ok((net.base | offset, len))
}

pub(super) fn cidrsubnet(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 3, "cidrsubnet")?;
    let net = Net::parse(&str_arg(a, 0, "cidrsubnet")?, "cidrsubnet")?;
    let newbits = as_int(&a[1], "cidrsubnet")?;
    let num = as_int(&a[2], "cidrsubnet")?;
    let (addr, len) = subnet(&net, newbits, num, "cidrsubnet")?;
    string(format!("{}/{len}", net.addr(addr)))
}

/// Consecutive subnets of the given sizes, each starting at the first address after the previous one
/// that is aligned to its own size.
pub(super) fn cidrsubnets(a: &[Value], _: &Scope<'_>) -> R {
    want_min(a, 1, "cidrsubnets")?;
    let net = Net::parse(&str_arg(a, 0, "cidrsubnets")?, "cidrsubnets")?;
    let end = net.base | host_mask(net.len, net.bits);
    let mut next = Some(net.base);
    let mut out = Vec::new();
    for v in &a[1..] {
        let newbits = as_int(v, "cidrsubnets")?;
        subnet(&net, newbits, 0, "cidrsubnets")?;
        let len = net.len + newbits as u32;
        let size = host_mask(len, net.bits);
        let start = next
            .and_then(|n| n.checked_add(size))
            .map(|n| n & !size)
            .filter(|s| s.checked_add(size).is_some_and(|last| last <= end))
            .ok_or_else(|| {
                format!(
                    "cidrsubnets(): not enough remaining address space for a subnet with a prefix of {len} bits after {}",
                    out.last().map(|s: &String| s.as_str()).unwrap_or("the start")
                )
            })?;
        out.push(format!("{}/{len}", net.addr(start)));
        next = (start + size).checked_add(1);
    }
    Ok(Value::Array(out.into_iter().map(Value::String).collect()))
}
