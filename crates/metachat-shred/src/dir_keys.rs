//! [`DirKeys`]: one file per key in a directory of its own, so that
//! shredding a key deletes it for real.
//!
//! ```text
//! <dir>/keys/<first two hex digits>/<subject uuid>       the 32 key bytes
//! <dir>/shredded/<first two hex digits>/<subject uuid>   an empty tombstone
//! <dir>/sweep-checkpoint                                  the sweep's next position
//! <dir>/tmp/                                              files being written
//! ```
//!
//! * **Create** writes the key to a fresh file in `tmp/`, syncs it, then
//!   hard-links it into `keys/` (which fails if a key is there: of two
//!   creators the first wins) and syncs the directory.
//! * **Shred** makes the tombstone durable first, then overwrites the key
//!   file with zeros, syncs it, removes it and syncs the directory. A crash
//!   in between leaves a tombstone and a key file: the key reads as shredded
//!   and the next shred of the subject (the vault's start-up sweep does it)
//!   removes the file.
//!
//! After a shred no file under the directory holds the key. What the
//! *device* keeps is another matter: the overwrite reaches the same blocks
//! on ext4 and XFS in their default modes, but not on copy-on-write file
//! systems (btrfs, ZFS) or behind an SSD's wear levelling, where the old
//! blocks live until reused. Put the data directory on an encrypted volume
//! if that matters to you.
//!
//! One process owns the directory at a time (the caller's lock; MetaChat's
//! server holds the data directory's).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use uuid::Uuid;
use zeroize::Zeroizing;

use metachat_core::error::{Error, Result};

use crate::keys::{KeyState, KeyStore};
use crate::seal::{DataKey, KEY_LEN};

/// Keys as files in a directory: create links a synced file into place,
/// shred overwrites, removes and syncs it (see the [`KeyStore`] docs).
#[derive(Debug, Clone)]
pub struct DirKeys {
    root: PathBuf,
}

impl DirKeys {
    /// Opens (creating if needed) the key directory `root`. Leftovers of an
    /// interrupted create in `tmp/` are removed.
    ///
    /// # Errors
    /// [`Error::Backend`] when the directories cannot be made or read.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["keys", "shredded", "tmp"] {
            fs::create_dir_all(root.join(sub)).map_err(|e| io_error(&root, e))?;
        }
        let tmp = root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(|e| io_error(&tmp, e))? {
            let path = entry.map_err(|e| io_error(&tmp, e))?.path();
            wipe_and_remove(&path).map_err(|e| io_error(&path, e))?;
        }
        sync_dir(&root).map_err(|e| io_error(&root, e))?;
        Ok(DirKeys { root })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn shard(&self, kind: &str, subject: Uuid) -> (PathBuf, PathBuf) {
        let name = subject.to_string();
        let dir = self.root.join(kind).join(&name[..2]);
        let file = dir.join(&name);
        (dir, file)
    }

    fn load_now(&self, subject: Uuid) -> io::Result<KeyState> {
        let (_, tomb) = self.shard("shredded", subject);
        if tomb.exists() {
            return Ok(KeyState::Shredded);
        }
        let (_, file) = self.shard("keys", subject);
        let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN));
        match File::open(&file) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(KeyState::Missing),
            Err(e) => return Err(e),
        }
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a {KEY_LEN}-byte key", file.display()),
            )
        })?;
        Ok(KeyState::Active(DataKey::from_bytes(key)))
    }

    fn create_now(&self, subject: Uuid, key: &DataKey) -> io::Result<KeyState> {
        match self.load_now(subject)? {
            KeyState::Missing => {}
            held => return Ok(held),
        }
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{subject}.{}", Uuid::new_v4().simple()));
        {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(key.as_bytes())?;
            f.sync_all()?;
        }
        let (dir, file) = self.shard("keys", subject);
        fs::create_dir_all(&dir)?;
        let linked = fs::hard_link(&tmp, &file);
        fs::remove_file(&tmp)?;
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        sync_dir(&dir)?;
        sync_dir(&self.root.join("tmp"))?;
        // A shred may have raced the link: its tombstone wins, and the key
        // file must not stay.
        match self.load_now(subject)? {
            KeyState::Shredded => {
                self.shred_now(subject)?;
                Ok(KeyState::Shredded)
            }
            held => Ok(held),
        }
    }

    fn shred_now(&self, subject: Uuid) -> io::Result<()> {
        let (tomb_dir, tomb) = self.shard("shredded", subject);
        if !tomb.exists() {
            fs::create_dir_all(&tomb_dir)?;
            File::create(&tomb)?.sync_all()?;
            sync_dir(&tomb_dir)?;
            sync_dir(&self.root.join("shredded"))?;
        }
        let (dir, file) = self.shard("keys", subject);
        if file.exists() {
            wipe_and_remove(&file)?;
            sync_dir(&dir)?;
        }
        Ok(())
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.root.join("sweep-checkpoint")
    }

    fn write_checkpoint(&self, next: u64) -> io::Result<()> {
        let tmp = self.root.join("tmp").join("sweep-checkpoint");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(next.to_string().as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.checkpoint_path())?;
        sync_dir(&self.root)
    }

    fn read_checkpoint(&self) -> io::Result<Option<u64>> {
        match fs::read_to_string(self.checkpoint_path()) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sweep-checkpoint is not a number",
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn blocking<T, F>(&self, what: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(DirKeys) -> io::Result<T> + Send + 'static,
    {
        let this = self.clone();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || what(this))
            .await
            .map_err(Error::backend)?
            .map_err(|e| io_error(&root, e))
    }
}

/// Overwrites `path` with zeros, syncs it, and removes it.
fn wipe_and_remove(path: &Path) -> io::Result<()> {
    if let Ok(mut f) = OpenOptions::new().write(true).open(path) {
        let len = f.metadata()?.len();
        let len = usize::try_from(len).unwrap_or(usize::MAX).min(1 << 20);
        f.write_all(&vec![0u8; len])?;
        f.sync_all()?;
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn io_error(path: &Path, e: io::Error) -> Error {
    Error::backend(io::Error::new(
        e.kind(),
        format!("key directory {}: {e}", path.display()),
    ))
}

#[async_trait]
impl KeyStore for DirKeys {
    async fn load(&self, subject: Uuid) -> Result<KeyState> {
        self.blocking(move |k| k.load_now(subject)).await
    }

    async fn create(&self, subject: Uuid, key: &DataKey) -> Result<KeyState> {
        let key = key.clone();
        self.blocking(move |k| k.create_now(subject, &key)).await
    }

    async fn shred(&self, subjects: &[Uuid], sweep_next: Option<u64>) -> Result<()> {
        let subjects = subjects.to_vec();
        self.blocking(move |k| {
            for s in subjects {
                k.shred_now(s)?;
            }
            match sweep_next {
                Some(next) => k.write_checkpoint(next),
                None => Ok(()),
            }
        })
        .await
    }

    async fn sweep_checkpoint(&self) -> Result<Option<u64>> {
        self.blocking(|k| k.read_checkpoint()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_under(dir: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                all.extend(bytes_under(&path));
            } else {
                all.extend(fs::read(&path).unwrap());
            }
        }
        all
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[tokio::test]
    async fn create_load_shred_and_nothing_left() {
        let dir = tempfile::tempdir().unwrap();
        let keys = DirKeys::open(dir.path()).unwrap();
        let (anna, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let (ka, kb) = (DataKey::generate(), DataKey::generate());
        assert_eq!(keys.load(anna).await.unwrap(), KeyState::Missing);
        assert_eq!(
            keys.create(anna, &ka).await.unwrap(),
            KeyState::Active(ka.clone())
        );
        // The first key wins.
        assert_eq!(
            keys.create(anna, &DataKey::generate()).await.unwrap(),
            KeyState::Active(ka.clone())
        );
        keys.create(bob, &kb).await.unwrap();
        assert!(contains(&bytes_under(dir.path()), ka.as_bytes()));

        keys.shred(&[anna], Some(7)).await.unwrap();
        assert_eq!(keys.load(anna).await.unwrap(), KeyState::Shredded);
        assert_eq!(
            keys.create(anna, &DataKey::generate()).await.unwrap(),
            KeyState::Shredded
        );
        assert_eq!(keys.sweep_checkpoint().await.unwrap(), Some(7));
        let left = bytes_under(dir.path());
        assert!(!contains(&left, ka.as_bytes()), "the shredded key is gone");
        assert!(contains(&left, kb.as_bytes()), "the scan sees live keys");

        // Reopened: the same state.
        let again = DirKeys::open(dir.path()).unwrap();
        assert_eq!(again.load(anna).await.unwrap(), KeyState::Shredded);
        assert_eq!(again.load(bob).await.unwrap(), KeyState::Active(kb));
        assert_eq!(again.sweep_checkpoint().await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn a_crash_between_tombstone_and_removal_reads_shredded_and_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let keys = DirKeys::open(dir.path()).unwrap();
        let anna = Uuid::new_v4();
        let ka = DataKey::generate();
        keys.create(anna, &ka).await.unwrap();
        // The tombstone alone, as if the process died before the removal.
        let (tomb_dir, tomb) = keys.shard("shredded", anna);
        fs::create_dir_all(tomb_dir).unwrap();
        File::create(tomb).unwrap();
        assert_eq!(keys.load(anna).await.unwrap(), KeyState::Shredded);
        keys.shred(&[anna], None).await.unwrap();
        assert!(!contains(&bytes_under(dir.path()), ka.as_bytes()));
    }

    #[tokio::test]
    async fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = DirKeys::open(dir.path()).unwrap();
        let anna = Uuid::new_v4();
        keys.create(anna, &DataKey::generate()).await.unwrap();
        let (_, file) = keys.shard("keys", anna);
        fs::write(&file, b"short").unwrap();
        assert!(matches!(keys.load(anna).await, Err(Error::Backend { .. })));
        assert!(keys.create(anna, &DataKey::generate()).await.is_err());
    }

    #[tokio::test]
    async fn leftovers_in_tmp_are_wiped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        DirKeys::open(dir.path()).unwrap();
        let stray = dir.path().join("tmp").join("x");
        fs::write(&stray, DataKey::generate().as_bytes()).unwrap();
        DirKeys::open(dir.path()).unwrap();
        assert!(!stray.exists());
    }
}
