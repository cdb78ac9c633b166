//! Files and directories that only their owner may read. The data directory holds the
//! webhook secrets (`wa.db`), the WhatsApp session keys (`sessions/<device>.db`), inbound
//! media and the generated JWT secret: whatever the process's umask, what wa-server
//! creates there is made mode 0700 (directories) or 0600 (files), and what it finds there
//! with access for the group or others loses that access. Elsewhere than on Unix these
//! functions create and open as usual.

use std::fs::File;
use std::io;
use std::path::Path;

/// Creates the directory and its missing parents, each mode 0700; an existing directory
/// at `path` loses its group and other permissions.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)?;
    #[cfg(unix)]
    owner_only(path)?;
    Ok(())
}

/// Makes the file at `path` private (mode 0600), creating it empty when it is missing
/// (never truncating it): for files another library opens (SQLite databases, lock files).
pub fn file(path: &Path) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    drop(opts.open(path)?);
    #[cfg(unix)]
    owner_only(path)?;
    Ok(())
}

/// Creates (or truncates) the file at `path` for writing, mode 0600.
pub fn create(path: &Path) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let f = opts.open(path)?;
    #[cfg(unix)]
    owner_only(path)?;
    Ok(f)
}

/// Makes an SQLite database private before SQLite opens it: the database file (created
/// empty when missing) and its existing `-wal`, `-shm` and `-journal` files are made
/// 0600. SQLite gives the companion files it creates later the database file's mode.
pub fn sqlite_database(path: &Path) -> io::Result<()> {
    file(path)?;
    #[cfg(unix)]
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match owner_only(Path::new(&name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            r => r?,
        }
    }
    Ok(())
}

/// Takes the group's and others' permissions away (the owner's stay).
#[cfg(unix)]
fn owner_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn chmod(p: &Path, m: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    fn scratch() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("wa-private-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn new_directories_are_0700_at_every_level() {
        let root = scratch();
        let leaf = root.join("data").join("media").join("app");
        create_dir_all(&leaf).unwrap();
        for p in [root.join("data"), root.join("data/media"), leaf] {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_open_directory_is_closed_to_others() {
        let root = scratch();
        let data = root.join("data");
        std::fs::create_dir(&data).unwrap();
        chmod(&data, 0o755);
        create_dir_all(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        chmod(&data, 0o500);
        create_dir_all(&data).unwrap();
        assert_eq!(
            mode(&data),
            0o500,
            "an owner-only directory is left as it is"
        );
        chmod(&data, 0o700);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn created_files_are_0600_and_an_open_one_is_closed() {
        let root = scratch();
        let p = root.join("media.part");
        use std::io::Write;
        create(&p).unwrap().write_all(b"first").unwrap();
        assert_eq!(mode(&p), 0o600);
        chmod(&p, 0o644);
        create(&p).unwrap().write_all(b"2").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"2", "truncated");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_file_made_private_keeps_its_content() {
        let root = scratch();
        let p = root.join("wa.db.lock");
        file(&p).unwrap();
        assert_eq!((mode(&p), std::fs::read(&p).unwrap().len()), (0o600, 0));
        std::fs::write(&p, b"keep").unwrap();
        chmod(&p, 0o664);
        file(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"keep");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_sqlite_database_and_its_companions_are_private() {
        let root = scratch();
        let db = root.join("wa.db");
        sqlite_database(&db).unwrap();
        assert_eq!(mode(&db), 0o600, "created before SQLite opens it");
        for suffix in ["-wal", "-shm"] {
            let p = root.join(format!("wa.db{suffix}"));
            std::fs::write(&p, b"x").unwrap();
            chmod(&p, 0o644);
        }
        chmod(&db, 0o644);
        sqlite_database(&db).unwrap();
        for name in ["wa.db", "wa.db-wal", "wa.db-shm"] {
            assert_eq!(mode(&root.join(name)), 0o600, "{name}");
        }
        assert!(
            !root.join("wa.db-journal").exists(),
            "no companion is created"
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
