//! The data-directory adapter of the media port: a file per path, at
//! `<data dir>/<media_path>` (`media/<app_id>/<device_id>-<id>.<ext>`), written durably
//! (temporary file, fsync, rename) and private to the server's user (directories 0700,
//! files 0600, whatever the umask). It hands out no URLs: `GET /media` serves the bytes.

use std::io;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;
use wa_core::media::{Media, MediaError, MediaPath, MediaStore};
use wa_core::private_fs;

/// Media files under a data directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DirMedia {
    root: PathBuf,
}

impl DirMedia {
    /// Media files under `data_dir` (created on the first write).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        DirMedia {
            root: data_dir.into(),
        }
    }

    /// Where the file of `path` is on disk.
    pub fn file(&self, path: &MediaPath) -> PathBuf {
        self.root.join(path.as_str())
    }

    fn app_dir(&self, app_id: Uuid) -> PathBuf {
        self.root.join("media").join(app_id.to_string())
    }
}

/// Errors the disk may recover from by itself are worth a retry; the others need a person.
fn io_error(what: &str, e: io::Error) -> MediaError {
    let text = format!("{what}: {e}");
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => {
            MediaError::Unavailable(text)
        }
        _ => MediaError::Backend(text),
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, MediaError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MediaError::Backend(format!("{what}: {e}")))?
        .map_err(|e| io_error(what, e))
}

fn write_durably(file: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = file.parent() {
        private_fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("part");
    let mut f = private_fs::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

fn missing_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl MediaStore for DirMedia {
    async fn put(&self, path: &MediaPath, bytes: &[u8]) -> Result<(), MediaError> {
        let (file, bytes) = (self.file(path), bytes.to_vec());
        blocking("writing a media file", move || write_durably(&file, &bytes)).await
    }

    async fn get(&self, path: &MediaPath) -> Result<Option<Media>, MediaError> {
        let bytes = missing_is_none(tokio::fs::read(self.file(path)).await)
            .map_err(|e| io_error("reading a media file", e))?;
        Ok(bytes.map(|bytes| Media {
            bytes,
            content_type: path.content_type(),
        }))
    }

    async fn size(&self, path: &MediaPath) -> Result<Option<u64>, MediaError> {
        let meta = missing_is_none(tokio::fs::metadata(self.file(path)).await)
            .map_err(|e| io_error("reading a media file's size", e))?;
        Ok(meta.filter(|m| m.is_file()).map(|m| m.len()))
    }

    fn has_urls(&self) -> bool {
        false
    }

    async fn url(&self, _path: &MediaPath, _ttl: Duration) -> Result<Option<String>, MediaError> {
        Ok(None)
    }

    async fn delete_device(&self, app_id: Uuid, device_id: Uuid) -> Result<(), MediaError> {
        let dir = self.app_dir(app_id);
        let prefix = format!("{device_id}-");
        blocking("deleting a device's media files", move || {
            let Some(entries) = missing_is_none(std::fs::read_dir(&dir))? else {
                return Ok(());
            };
            for e in entries {
                let e = e?;
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    missing_is_none(std::fs::remove_file(e.path()))?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn delete_app(&self, app_id: Uuid) -> Result<(), MediaError> {
        let dir = self.app_dir(app_id);
        blocking("deleting an App's media files", move || {
            missing_is_none(std::fs::remove_dir_all(&dir)).map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        wa_testkit::conformance::media_store(Arc::new(DirMedia::new(dir.path())), async |_| {
            unreachable!("the data directory hands out no URLs")
        })
        .await;
    }

    /// The layout `GET /media` paths and older data directories rely on.
    #[tokio::test]
    async fn files_are_at_their_path_under_the_data_dir_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let media = DirMedia::new(dir.path());
        let (app, dev) = (Uuid::now_v7(), Uuid::now_v7());
        let p = MediaPath::inbound(app, dev, "3EB0AB", "image/png");
        media.put(&p, b"png").await.unwrap();
        let file = dir.path().join(format!("media/{app}/{dev}-3EB0AB.png"));
        assert_eq!(std::fs::read(&file).unwrap(), b"png");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("media")), 0o700);
        assert!(!file.with_extension("part").exists());
        assert_eq!(media.url(&p, Duration::from_secs(60)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_directory_at_a_path_is_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let media = DirMedia::new(dir.path());
        let p = MediaPath::inbound(Uuid::now_v7(), Uuid::now_v7(), "X", "image/png");
        std::fs::create_dir_all(media.file(&p)).unwrap();
        assert_eq!(media.size(&p).await.unwrap(), None);
    }

    #[test]
    fn io_errors_are_classified() {
        for (kind, retryable) in [
            (io::ErrorKind::TimedOut, true),
            (io::ErrorKind::Interrupted, true),
            (io::ErrorKind::WouldBlock, true),
            (io::ErrorKind::PermissionDenied, false),
            (io::ErrorKind::StorageFull, false),
            (io::ErrorKind::Other, false),
        ] {
            let got = io_error("x", io::Error::from(kind));
            assert_eq!(
                matches!(got, MediaError::Unavailable(_)),
                retryable,
                "{kind:?}"
            );
        }
    }
}
