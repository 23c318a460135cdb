//! How many widget sockets are open: on the instance (at most
//! [`MAX_SOCKETS`]) and from each client address (at most
//! `server.web_sockets_per_ip`, so one address cannot take them all by
//! opening slowly and keeping them alive with pings). An IPv6 client is
//! counted by its /64, which one subscriber can fill with addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::sync::lock;

/// Sockets open on this instance, at most.
pub const MAX_SOCKETS: usize = 10_000;

/// Why a socket was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Instance,
    Address,
}

pub struct Slots {
    open: AtomicUsize,
    by_ip: Mutex<BTreeMap<IpAddr, u32>>,
    max: usize,
}

impl Slots {
    pub const fn new(max: usize) -> Self {
        Self {
            open: AtomicUsize::new(0),
            by_ip: Mutex::new(BTreeMap::new()),
            max,
        }
    }

    /// A slot for a socket from `ip`, if there is room (`max_per_ip` from
    /// one address).
    pub fn take(&'static self, ip: IpAddr, max_per_ip: u32) -> Result<Slot, Full> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Instance);
        }
        let ip = client(ip);
        let mut by_ip = lock(&self.by_ip);
        let n = by_ip.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            drop(by_ip);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Address);
        }
        *n += 1;
        Ok(Slot { slots: self, ip })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// The address a client is counted by: an IPv4 address, or an IPv6
/// address's /64 (IPv4-mapped ones as IPv4).
pub fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

/// One socket's place: given back when dropped, whether the upgrade
/// completed or not, and however the session ended.
pub struct Slot {
    slots: &'static Slots,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_ip = lock(&self.slots.by_ip);
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
        drop(by_ip);
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([203, 0, 113, last])
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_slash_64() {
        let slots: &'static Slots = Box::leak(Box::new(Slots::new(10)));
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = slots.take(one, 1).unwrap();
        assert_eq!(slots.take(same_64, 1).err(), Some(Full::Address));
        assert!(slots.take(other_64, 1).is_ok());
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(client(mapped), IpAddr::from([203, 0, 113, 7]));
    }

    #[test]
    fn one_address_cannot_take_every_socket() {
        let slots: &'static Slots = Box::leak(Box::new(Slots::new(5)));
        let a1 = slots.take(ip(1), 2).unwrap();
        let _a2 = slots.take(ip(1), 2).unwrap();
        assert_eq!(slots.take(ip(1), 2).err(), Some(Full::Address));
        let _b1 = slots.take(ip(2), 2).unwrap();
        let _b2 = slots.take(ip(2), 2).unwrap();
        let c1 = slots.take(ip(3), 2).unwrap();
        assert_eq!(slots.take(ip(4), 2).err(), Some(Full::Instance));
        assert_eq!(slots.open(), 5);
        // A closed socket gives its place back, to its address too.
        drop(a1);
        assert_eq!(slots.open(), 4);
        let _a3 = slots.take(ip(1), 2).unwrap();
        drop(c1);
        assert_eq!(slots.take(ip(1), 2).err(), Some(Full::Address));
        assert_eq!(slots.open(), 4, "a refused socket takes no place");
        assert_eq!(
            lock(&slots.by_ip).len(),
            2,
            "an address with none open is forgotten"
        );
    }
}
