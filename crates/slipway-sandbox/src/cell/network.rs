//! The cell's wall toward the host's network. pasta carries a cell's outbound connections
//! from the host, so without rules the cell would reach every address the host can: the
//! host's own addresses (any service listening on all interfaces, Slipway's included), the
//! metadata address, the private network. Policy-routing rules in the cell's network
//! namespace, installed before any command runs, make those unreachable: each address of the
//! host's (and any it gains later, checked by the watcher), and every private, link-local,
//! loopback and multicast range. Exceptions: DNS to the host's resolvers, and networks an
//! administrator allows (`SLIPWAY_SANDBOX_ALLOW_NETWORKS`). Code in the cell has no
//! capability over its network namespace, so it cannot remove them.

use super::{setup, Cell, CellError};
use crate::enter::{Entry, Ids};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Never reached from a cell (but for the exceptions).
const CLOSED_V4: [&str; 11] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
];
const CLOSED_V6: [&str; 8] = [
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b:1::/48",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Rule priorities: lower is consulted first (the `local` table, at 0, keeps the cell's
/// own addresses and loopback its own).
const DNS_FIRST: u32 = 30;
const HOST_ADDRESS: u32 = 40;
const ALLOWED: u32 = 60;
const CLOSED_RANGE: u32 = 100;

/// The administrator's exceptions: comma-separated CIDRs.
pub const ALLOW_NETWORKS_ENV: &str = "SLIPWAY_SANDBOX_ALLOW_NETWORKS";

/// The rules of a new cell, as `ip -batch` lines for IPv4 and for IPv6.
pub(super) fn initial_rules(
    host: &BTreeSet<IpAddr>,
    resolvers: &[IpAddr],
    allowed: &[String],
) -> (Vec<String>, Vec<String>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut push = |address: &str, line: String| {
        if address.contains(':') {
            v6.push(line)
        } else {
            v4.push(line)
        }
    };
    for resolver in resolvers {
        for protocol in ["udp", "tcp"] {
            push(
                &resolver.to_string(),
                format!(
                    "rule add to {resolver} ipproto {protocol} dport 53 lookup main priority {DNS_FIRST}"
                ),
            );
        }
    }
    for address in host {
        push(&address.to_string(), host_address_rule(address));
    }
    for network in allowed {
        push(
            network,
            format!("rule add to {network} lookup main priority {ALLOWED}"),
        );
    }
    for range in CLOSED_V4.iter().chain(&CLOSED_V6) {
        push(
            range,
            format!("rule add to {range} prohibit priority {CLOSED_RANGE}"),
        );
    }
    (v4, v6)
}

fn host_address_rule(address: &IpAddr) -> String {
    format!("rule add to {address} prohibit priority {HOST_ADDRESS}")
}

/// Every address of the host's interfaces (this network namespace's).
pub(super) fn host_addresses() -> std::io::Result<BTreeSet<IpAddr>> {
    let mut found = BTreeSet::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below; each entry is read while it lives, as
    // the socket address type its family names.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut entry = list;
        while !entry.is_null() {
            let address = (*entry).ifa_addr;
            if !address.is_null() {
                match i32::from((*address).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*(address as *const libc::sockaddr_in);
                        found.insert(IpAddr::from(v4.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(address as *const libc::sockaddr_in6);
                        found.insert(IpAddr::from(v6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            entry = (*entry).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    Ok(found)
}

/// The resolvers of the host's `/etc/resolv.conf` (the cell sees the same file).
fn resolvers() -> Vec<IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse().ok())
        .collect()
}

/// The administrator's allowed networks, each checked to be a CIDR.
pub fn allowed_networks() -> Result<Vec<String>, String> {
    let Ok(text) = std::env::var(ALLOW_NETWORKS_ENV) else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (address, prefix) = item.split_once('/').unwrap_or((item, ""));
            let example = "e.g. 10.1.0.0/16";
            let address: IpAddr = address.parse().map_err(|_| {
                format!("{ALLOW_NETWORKS_ENV}: {item:?} is not an address/prefix ({example})")
            })?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            match prefix.parse::<u32>() {
                Ok(bits) if bits <= max => Ok(format!("{address}/{bits}")),
                _ => Err(format!(
                    "{ALLOW_NETWORKS_ENV}: {item:?} needs a prefix length of 0 to {max} ({example})"
                )),
            }
        })
        .collect()
}

fn ip_command() -> Option<PathBuf> {
    crate::find_on_path("ip").or_else(|| {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
    })
}

impl Cell {
    /// Installs the wall's rules in the cell's network namespace; the host addresses it
    /// closed are remembered for the watcher.
    pub(super) async fn close_host_network(&self) -> Result<(), CellError> {
        let allowed = allowed_networks().map_err(CellError::Config)?;
        let host = host_addresses().map_err(setup("cannot list the host's addresses"))?;
        let (v4, v6) = initial_rules(&host, &resolvers(), &allowed);
        apply_rules(self.entry(false, true), 4, &v4).await?;
        apply_rules(self.entry(false, true), 6, &v6).await?;
        *self.watch.closed_addresses.lock().expect("watch lock") = host;
        Ok(())
    }
}

/// Closes the addresses the host gained since the cell was made (the watcher calls it).
pub(super) async fn close_new_addresses(
    namespaces: &Arc<(OwnedFd, OwnedFd)>,
    drop_to: Option<Ids>,
    closed: &Mutex<BTreeSet<IpAddr>>,
) -> Result<(), CellError> {
    let now = host_addresses().map_err(setup("cannot list the host's addresses"))?;
    let new: Vec<IpAddr> = {
        let closed = closed.lock().expect("watch lock");
        now.difference(&closed).copied().collect()
    };
    if new.is_empty() {
        return Ok(());
    }
    let entry = || Entry {
        drop_to,
        namespaces: Some((namespaces.0.as_raw_fd(), namespaces.1.as_raw_fd())),
        ..Entry::default()
    };
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = new.iter().partition(|a| a.is_ipv4());
    let rules = |addresses: &[IpAddr]| addresses.iter().map(host_address_rule).collect::<Vec<_>>();
    apply_rules(entry(), 4, &rules(&v4)).await?;
    apply_rules(entry(), 6, &rules(&v6)).await?;
    closed.lock().expect("watch lock").extend(new);
    Ok(())
}

/// Runs `ip -<family> -batch -` with `lines`, entering the cell as `entry` says.
async fn apply_rules(entry: Entry, family: u8, lines: &[String]) -> Result<(), CellError> {
    use tokio::io::AsyncWriteExt;
    if lines.is_empty() {
        return Ok(());
    }
    let ip = ip_command().ok_or_else(|| {
        CellError::Tool(
            "cannot close the host's addresses to the cell: `ip` is not installed \
             (Debian/Ubuntu: apt-get install iproute2)"
                .into(),
        )
    })?;
    let mut command = tokio::process::Command::new(ip);
    command
        .args([format!("-{family}").as_str(), "-batch", "-"])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: Entry::apply uses only async-signal-safe calls.
    unsafe {
        command.pre_exec(move || entry.apply());
    }
    let mut child = command
        .spawn()
        .map_err(setup("cannot start `ip` in the cell"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let written = stdin.write_all((lines.join("\n") + "\n").as_bytes()).await;
    drop(stdin);
    let output = child
        .wait_with_output()
        .await
        .map_err(setup("`ip` in the cell failed"))?;
    let said = String::from_utf8_lossy(&output.stderr);
    // A kernel without IPv6 has no IPv6 to close.
    if family == 6 && said.contains("Address family not supported") {
        return Ok(());
    }
    if !output.status.success() || written.is_err() {
        return Err(CellError::Tool(format!(
            "cannot close the host's addresses to the cell: ip -{family}: {}",
            said.trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_close_the_host_and_private_ranges_but_dns_and_what_is_allowed() {
        let host: BTreeSet<IpAddr> = ["192.0.2.2", "fd00::2", "203.0.113.9"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let resolvers = ["10.255.255.53".parse().unwrap()];
        let (v4, v6) = initial_rules(&host, &resolvers, &["10.1.0.0/16".to_owned()]);
        let has = |rules: &[String], text: &str| rules.iter().any(|r| r.contains(text));
        assert!(has(&v4, "to 203.0.113.9 prohibit priority 40"));
        assert!(has(&v4, "to 192.0.2.2 prohibit"));
        assert!(has(&v6, "to fd00::2 prohibit"));
        assert!(has(
            &v4,
            "to 10.255.255.53 ipproto udp dport 53 lookup main priority 30"
        ));
        assert!(has(&v4, "to 10.1.0.0/16 lookup main priority 60"));
        assert!(has(&v4, "to 169.254.0.0/16 prohibit priority 100"));
        assert!(has(&v6, "to fe80::/10 prohibit"));
        assert!(!v4.iter().any(|r| r.contains(':')), "{v4:?}");
    }

    #[test]
    fn allowed_networks_must_be_cidrs() {
        // SAFETY: this test alone reads or writes this variable.
        unsafe { std::env::set_var(ALLOW_NETWORKS_ENV, "10.1.0.0/16, fd00::/8") };
        assert_eq!(
            allowed_networks().unwrap(),
            ["10.1.0.0/16".to_owned(), "fd00::/8".to_owned()]
        );
        unsafe { std::env::set_var(ALLOW_NETWORKS_ENV, "10.1.0.0") };
        assert!(allowed_networks().unwrap_err().contains("prefix length"));
        unsafe { std::env::set_var(ALLOW_NETWORKS_ENV, "intranet/8") };
        assert!(allowed_networks().unwrap_err().contains("not an address"));
        unsafe { std::env::remove_var(ALLOW_NETWORKS_ENV) };
    }
}
