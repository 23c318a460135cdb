//! Attachments of customer emails, kept as files: `{dir}/{integration in
//! hex}/{message}-{index}` with a `.json` beside it (name, type, size).
//! `dir` is `google.attachments_dir`, by default `attachments` under the
//! store's folder. The integration id is written in hex (any id makes a
//! safe folder name); keys are checked before any path is made from them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What is known of a kept file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub mime_type: String,
    pub size: u64,
}

/// The engine's attachment type for a MIME type.
pub fn kind_of(mime: &str) -> &'static str {
    match mime.split('/').next().unwrap_or_default() {
        "image" => "image",
        "video" => "video",
        "audio" => "audio",
        _ => "file",
    }
}

/// The key of a message's `index`-th file.
pub fn key(message: &str, index: usize) -> String {
    format!("{message}-{index}")
}

fn safe(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 200
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn path_of(dir: &Path, integration: &str, key: &str) -> Option<PathBuf> {
    (!integration.is_empty() && safe(key)).then(|| dir.join(hex::encode(integration)).join(key))
}

/// Keeps `bytes` as `key` of `integration` (written whole, then renamed).
pub async fn keep(
    dir: &Path,
    integration: &str,
    key: &str,
    info: &FileInfo,
    bytes: &[u8],
) -> std::io::Result<()> {
    let Some(path) = path_of(dir, integration, key) else {
        return Err(std::io::Error::other("not a valid attachment key"));
    };
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let tmp = path.with_extension("part");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, &path).await?;
    let meta = serde_json::to_vec(info).unwrap_or_default();
    tokio::fs::write(path.with_extension("json"), meta).await
}

/// A kept file and what is known of it; `None` when there is none.
pub async fn open(dir: &Path, integration: &str, key: &str) -> Option<(FileInfo, Vec<u8>)> {
    let path = path_of(dir, integration, key)?;
    let bytes = tokio::fs::read(&path).await.ok()?;
    let info = tokio::fs::read(path.with_extension("json"))
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(FileInfo {
            name: key.to_string(),
            mime_type: String::new(),
            size: bytes.len() as u64,
        });
    Some((info, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kept_file_is_read_back_and_bad_keys_make_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let info = FileInfo {
            name: "a.pdf".into(),
            mime_type: "application/pdf".into(),
            size: 4,
        };
        keep(dir.path(), "acme-mail", "m1-0", &info, b"%PDF")
            .await
            .unwrap();
        let (info, bytes) = open(dir.path(), "acme-mail", "m1-0").await.unwrap();
        assert_eq!(bytes, b"%PDF");
        assert_eq!(info.mime_type, "application/pdf");
        assert!(open(dir.path(), "acme-mail", "../m1-0").await.is_none());
        // Any integration id makes a folder name.
        keep(dir.path(), "../acme support.mail", "m2-0", &info, b"x")
            .await
            .unwrap();
        assert!(open(dir.path(), "../acme support.mail", "m2-0")
            .await
            .is_some());
        assert!(!dir.path().join("..").join("acme support.mail").exists());
        assert!(keep(dir.path(), "a", "../k", &info, b"").await.is_err());
        assert_eq!(kind_of("image/png"), "image");
        assert_eq!(kind_of("application/pdf"), "file");
    }
}
