//! The sandbox's contacts: who is on its simulated WhatsApp, the LID each account has, and
//! the LID ↔ phone number pairs it handed out to a device (a contacts check, a profile), so
//! that a message later arriving from such an `@lid` carries its sender's number, as the
//! real provider resolves LIDs through the pairs its store learned.
//!
//! Rules:
//! - A number starting `1555000` has no account; any other has one, with the JID
//!   `<digits>@s.whatsapp.net`.
//! - Its LID is `1` followed by the 14 last digits (zero-padded) of the 64-bit FNV-1a hash
//!   of the number's digits, `@lid`: 15 digits like WhatsApp's, fixed for a number, and
//!   not readable back into it (only the kept pair resolves it).
//! - The pairs live in `<data dir>/sandbox/lids/<device_id>.jsonl`, one line per pair,
//!   appended under the file's exclusive lock (workers sharing the data directory share
//!   them); they are wiped with the device's simulated credentials (link, logout, destroy),
//!   as the real store is.
//! - An inbound sender's number: a phone-number JID's own digits; an `@lid` handed out to
//!   the device resolves through its pair; the made-up `9<number>@lid` of older tests
//!   resolves to `<number>`; else none.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_core::contacts::ContactCheck;

/// Numbers with this prefix have no WhatsApp account in the sandbox.
pub(super) const ABSENT_PREFIX: &str = "1555000";

/// The sandbox LID of the account with the phone number `digits`.
pub(super) fn lid_of(digits: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in digits.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("1{:014}@lid", hash % 100_000_000_000_000)
}

/// What the sandbox answers for the phone number `digits`.
pub(super) fn check(digits: &str) -> ContactCheck {
    if digits.starts_with(ABSENT_PREFIX) {
        return ContactCheck::absent(digits);
    }
    ContactCheck {
        phone_number: digits.to_owned(),
        on_whatsapp: true,
        jid: Some(format!("{digits}@s.whatsapp.net")),
        lid: Some(lid_of(digits)),
    }
}

/// The phone number of the inbound sender `from` (a normalized JID); `paired` is the
/// number kept for it when it is an `@lid` handed out to the device.
pub(super) fn sender_phone(from: &str, paired: Option<String>) -> Option<String> {
    let (user, server) = from.split_once('@')?;
    match server {
        wa_core::jid::USER_SERVER => Some(user.to_owned()),
        wa_core::jid::LID_SERVER => paired.or_else(|| user.strip_prefix('9').map(str::to_owned)),
        _ => None,
    }
}

/// One kept pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pair {
    lid: String,
    phone_number: String,
}

/// The pairs of every device, under `dir`.
pub(super) struct Pairs {
    dir: PathBuf,
}

impl Pairs {
    /// The pairs under `dir` (created if missing).
    pub(super) fn new(dir: PathBuf) -> std::io::Result<Pairs> {
        std::fs::create_dir_all(&dir)?;
        Ok(Pairs { dir })
    }

    fn path(&self, device_id: Uuid) -> PathBuf {
        self.dir.join(format!("{device_id}.jsonl"))
    }

    fn read(&self, device_id: Uuid) -> std::io::Result<Vec<Pair>> {
        let text = match std::fs::read_to_string(self.path(device_id)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        // A line cut short by a crash mid-append is skipped.
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// Keeps the pairs of the checks that have both a LID and a number, those not kept yet.
    pub(super) fn keep(&self, device_id: Uuid, checks: &[ContactCheck]) -> std::io::Result<()> {
        let known = self.read(device_id)?;
        let mut lines = Vec::new();
        let mut added: Vec<Pair> = Vec::new();
        for c in checks {
            let Some(lid) = &c.lid else { continue };
            let pair = Pair {
                lid: lid.clone(),
                phone_number: c.phone_number.clone(),
            };
            if known.contains(&pair) || added.contains(&pair) {
                continue;
            }
            lines.extend(serde_json::to_vec(&pair).map_err(std::io::Error::other)?);
            lines.push(b'\n');
            added.push(pair);
        }
        if lines.is_empty() {
            return Ok(());
        }
        append_locked(&self.path(device_id), &lines)
    }

    /// The phone number kept for `lid` (the latest pair).
    pub(super) fn phone_of(&self, device_id: Uuid, lid: &str) -> Option<String> {
        match self.read(device_id) {
            Ok(pairs) => pairs
                .into_iter()
                .rev()
                .find(|p| p.lid == lid)
                .map(|p| p.phone_number),
            Err(e) => {
                tracing::warn!(%device_id, error = %e, "could not read the sandbox's LID pairs");
                None
            }
        }
    }

    /// Forgets the device's pairs.
    pub(super) fn wipe(&self, device_id: Uuid) {
        match std::fs::remove_file(self.path(device_id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(%device_id, error = %e, "could not wipe sandbox LID pairs"),
        }
    }
}

/// Appends `bytes` to `path` in one write under the file's exclusive lock, and waits until
/// it is on disk.
fn append_locked(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.lock()?;
    f.write_all(bytes)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_starting_1555000_have_no_account_and_others_do() {
        for (digits, on) in [
            ("15550001234", false),
            ("1555000", false),
            ("15551230002", true),
            ("1555001234", true),
            ("4915112345678", true),
        ] {
            let c = check(digits);
            assert_eq!(c.on_whatsapp, on, "{digits}");
            assert_eq!(c.phone_number, digits);
            assert_eq!(c.jid.is_some(), on, "{digits}");
            assert_eq!(c.lid.is_some(), on, "{digits}");
        }
        assert_eq!(
            check("15551230002").jid.as_deref(),
            Some("15551230002@s.whatsapp.net")
        );
    }

    #[test]
    fn a_lid_is_fixed_for_a_number_fifteen_digits_and_not_the_number() {
        let lid = lid_of("15551230002");
        assert_eq!(lid, lid_of("15551230002"), "deterministic");
        assert_ne!(lid, lid_of("15551230003"));
        let user = lid.strip_suffix("@lid").unwrap();
        assert_eq!(user.len(), 15, "{lid}");
        assert!(user.starts_with('1') && user.bytes().all(|b| b.is_ascii_digit()));
        assert!(!user.contains("15551230002"), "{lid}");
        assert_eq!(wa_core::jid::normalize("lid", &lid).unwrap(), lid);
        // Pinned: the rule is documented, so it does not change unnoticed.
        assert_eq!(lid_of("15551230002"), "152065499436185@lid");
    }

    #[test]
    fn a_senders_number_comes_from_its_jid_its_pair_or_the_old_rule() {
        let p = |s: &str| Some(s.to_owned());
        for (from, paired, phone) in [
            ("15550001111@s.whatsapp.net", None, p("15550001111")),
            ("100000000000001@lid", p("15551230002"), p("15551230002")),
            ("915550003333@lid", None, p("15550003333")),
            ("915550003333@lid", p("15559990000"), p("15559990000")),
            ("100000000000001@lid", None, None),
            ("120363000000000001@g.us", None, None),
            ("nonsense", None, None),
        ] {
            assert_eq!(sender_phone(from, paired), phone, "{from}");
        }
    }

    #[test]
    fn pairs_are_kept_once_per_device_and_wiped_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (
            Pairs::new(dir.path().to_path_buf()).unwrap(),
            Pairs::new(dir.path().to_path_buf()).unwrap(),
        );
        let (d, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let checks = [
            check("15551230002"),
            check("15550001234"),
            check("15551230002"),
        ];
        one.keep(d, &checks).unwrap();
        one.keep(d, &checks).unwrap();
        let lid = lid_of("15551230002");
        assert_eq!(two.phone_of(d, &lid).as_deref(), Some("15551230002"));
        assert_eq!(two.read(d).unwrap().len(), 1, "kept once");
        assert_eq!(two.phone_of(other, &lid), None, "per device");
        two.wipe(d);
        assert_eq!(one.phone_of(d, &lid), None);
        one.wipe(d);
    }
}
