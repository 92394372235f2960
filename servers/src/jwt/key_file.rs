//! A key shared through a file: created with fresh material when missing (mode 0600), its
//! public half written beside it (`<file>.pub`) for verify-only instances, every write a whole
//! replacement by rename, and a `flock` on `<file>.lock` around every read-then-write and
//! every rotation, so that processes sharing the file never leave the two halves apart.

use base64::Engine;
use jsonwebtoken::Algorithm;

use super::new_material;
use crate::token::new_jti;

/// Holds `<key_file>.lock` exclusively (`flock`) until dropped, so that one process's start
/// (reading the key, writing `.pub`) and another's rotation (writing `.pub`, then the key) never
/// interleave.
pub(super) fn lock_key_file(key_file: &std::path::Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = key_file.as_os_str().to_owned();
    name.push(".lock");
    let name = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(&name)
        .map_err(|e| format!("cannot open key lock {}: {e}", name.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", name.display()))
}

/// Writes `public` (base64 of its DER) to `<key_file>.pub`, for verify-only instances.
pub(super) fn write_public(key_file: &std::path::Path, public: &[u8]) -> Result<(), String> {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".pub");
    let text = base64::engine::general_purpose::STANDARD.encode(public);
    write_atomically(std::path::Path::new(&name), text.as_bytes(), 0o644)
}

/// Replaces `path` with `contents` whole: written to a temporary file beside it, synced, then
/// renamed over it, so a reader sees the old file or the new one and a crash leaves one of them.
pub(super) fn write_atomically(path: &std::path::Path, contents: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    let unique = new_jti().map_err(|e| format!("cannot write {}: no randomness: {e}", path.display()))?;
    tmp.push(format!(".tmp-{}-{unique}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Reads the key material in `path` (base64 of the secret or PKCS#8 key), or, when the file
/// does not exist, creates it with fresh material, readable by the owner only. Two servers
/// given the same file therefore share one key, as two instances behind a load balancer do.
pub(super) fn material_from_file(alg: Algorithm, path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let decode = |text: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("key file {}: not base64: {e}", path.display()))
    };
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut file) => {
            let material = new_material(alg)?;
            let text = base64::engine::general_purpose::STANDARD.encode(&material);
            file.write_all(text.as_bytes()).map_err(|e| format!("cannot write key file {}: {e}", path.display()))?;
            Ok(material)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another instance may be writing it right now: wait briefly for content.
            for _ in 0..50 {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
                if !text.trim().is_empty() {
                    return decode(&text);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(format!("key file {} stayed empty", path.display()))
        }
        Err(e) => Err(format!("cannot create key file {}: {e}", path.display())),
    }
}
