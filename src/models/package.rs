//! Model packages: a folder with a `model.toml` manifest naming the family, the files and
//! the tensor names, so elements never hard-code file names.
//!
//! ```toml
//! family = "silero-vad"
//! name = "silero-vad-6.2.3"
//! sample_rate = 16000
//!
//! [files]
//! model = "silero_vad.onnx"
//!
//! [io]            # optional: tensor names, defaults are the family's
//! input = "input"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

pub const MANIFEST: &str = "model.toml";
/// Colon-separated folders searched for model packages before the XDG data dirs.
pub const MODEL_PATH_ENV: &str = "LALM_MODEL_PATH";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub family: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    /// Audio models' input rate; 0 (absent) for the language model, which reads text.
    #[serde(default)]
    pub sample_rate: u32,
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub io: BTreeMap<String, String>,
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
}

/// A manifest together with the folder its file names are relative to.
#[derive(Debug, Clone)]
pub struct ModelPackage {
    pub dir: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

impl ModelPackage {
    /// Reads the package at `dir` (a folder, or its `model.toml`).
    pub fn load(path: &Path) -> Result<Self> {
        let manifest_path = if path.is_dir() {
            path.join(MANIFEST)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| Error::Manifest {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| Error::Manifest {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        if manifest.sample_rate == 0 && crate::models::family::takes_audio(&manifest.family) {
            return Err(Error::Manifest {
                path: manifest_path,
                reason: "sample_rate must be > 0".into(),
            });
        }
        let dir = manifest_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self {
            dir,
            manifest_path,
            manifest,
        })
    }

    /// Finds a package by path, or by name in the model search path.
    pub fn find(spec: &str) -> Result<Self> {
        let as_path = Path::new(spec);
        if as_path.exists() || spec.contains('/') {
            if !as_path.exists() {
                return Err(Error::ModelNotFound {
                    what: spec.into(),
                    searched: "(a path: it does not exist)".into(),
                });
            }
            return Self::load(as_path);
        }
        let dirs = model_dirs();
        for d in &dirs {
            let candidate = d.join(spec);
            if candidate.join(MANIFEST).is_file() {
                return Self::load(&candidate);
            }
        }
        Err(Error::ModelNotFound {
            what: format!("'{spec}'"),
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Checks the family, so a whisper package handed to a VAD slot is refused by name.
    pub fn expect_family(&self, family: &str) -> Result<()> {
        if self.manifest.family != family {
            return Err(Error::Manifest {
                path: self.manifest_path.clone(),
                reason: format!(
                    "family is '{}' but a '{family}' model is needed here",
                    self.manifest.family
                ),
            });
        }
        Ok(())
    }

    /// Absolute path of the file the manifest lists under `key`, which must exist.
    pub fn file(&self, key: &str) -> Result<PathBuf> {
        let rel = self
            .manifest
            .files
            .get(key)
            .ok_or_else(|| Error::Manifest {
                path: self.manifest_path.clone(),
                reason: format!("[files] has no '{key}' entry"),
            })?;
        let p = self.dir.join(rel);
        if !p.is_file() {
            return Err(Error::ModelFileMissing {
                path: p,
                manifest: self.manifest_path.clone(),
            });
        }
        Ok(p)
    }

    /// Tensor name for `key`, or the family's default.
    pub fn io_name<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.manifest
            .io
            .get(key)
            .map(String::as_str)
            .unwrap_or(default)
    }

    pub fn param_int(&self, key: &str, default: i64) -> Result<i64> {
        match self.manifest.params.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(i)) => Ok(*i),
            Some(other) => Err(Error::Manifest {
                path: self.manifest_path.clone(),
                reason: format!("params.{key} must be an integer, found {other}"),
            }),
        }
    }

    /// The package's folder name: what the Triton repository writer names its model.
    pub fn folder_name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.display_name())
    }

    pub fn display_name(&self) -> String {
        self.manifest
            .name
            .clone()
            .unwrap_or_else(|| self.dir.display().to_string())
    }
}

/// `$XDG_DATA_HOME/lalm` (default `~/.local/share/lalm`), then `lalm` under each of
/// `$XDG_DATA_DIRS` (default `/usr/local/share:/usr/share`).
pub fn data_dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let home_data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    if let Some(d) = home_data {
        out.push(d.join("lalm"));
    }
    let sys = std::env::var("XDG_DATA_DIRS")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    for d in sys.split(':').filter(|d| !d.is_empty()) {
        out.push(Path::new(d).join("lalm"));
    }
    out
}

/// Folders searched for packages named without a path.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::env::var(MODEL_PATH_ENV)
        .ok()
        .map(|v| {
            v.split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    out.extend(data_dirs().into_iter().map(|d| d.join("models")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("soundflow-model-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn manifest_round_trip_and_missing_file() {
        let d = tmpdir("ok");
        std::fs::write(
            d.join(MANIFEST),
            "family = \"silero-vad\"\nsample_rate = 16000\n[files]\nmodel = \"m.onnx\"\n[io]\ninput = \"x\"\n[params]\nwindow = 512\n",
        )
        .unwrap();
        let p = ModelPackage::load(&d).unwrap();
        assert_eq!(p.manifest.family, "silero-vad");
        assert_eq!(p.io_name("input", "input"), "x");
        assert_eq!(p.io_name("state", "state"), "state");
        assert_eq!(p.param_int("window", 0).unwrap(), 512);
        p.expect_family("silero-vad").unwrap();
        assert!(p.expect_family("whisper").is_err());
        match p.file("model") {
            Err(Error::ModelFileMissing { path, .. }) => assert!(path.ends_with("m.onnx")),
            other => panic!("expected a missing-file error, got {other:?}"),
        }
        std::fs::write(d.join("m.onnx"), b"x").unwrap();
        assert!(p.file("model").is_ok());
    }

    #[test]
    fn bad_manifest_names_the_file() {
        let d = tmpdir("bad");
        std::fs::write(d.join(MANIFEST), "family = 3\n").unwrap();
        let e = ModelPackage::load(&d).unwrap_err().to_string();
        assert!(e.contains("model.toml"), "{e}");
    }

    #[test]
    fn unknown_name_lists_the_search_path() {
        let e = ModelPackage::find("no-such-model-xyz")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no-such-model-xyz") && e.contains("models"),
            "{e}"
        );
    }
}
