//! The generated JWT secret of a local install, kept in the data directory.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

const FILE: &str = "jwt_secret";

/// Reads `<data_dir>/jwt_secret`, creating it (mode 0600) with a random secret when missing.
pub fn load_or_create_jwt_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it or set WA_JWT_SECRET",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    wa_core::private_fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let secret = wa_core::auth::new_jwt_secret();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(&path) {
        Ok(mut f) => {
            f.write_all(secret.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "WA_JWT_SECRET is unset: generated a JWT secret into the data directory; \
                 mint a tenant token with `wa-server token --tenant <id>`"
            );
            Ok(secret)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create_jwt_secret(data_dir)
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}
