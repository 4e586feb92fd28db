//! Finding a model: a local folder, or a Hugging Face Hub id in the standard cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hf_hub::Cache;

use super::weights::{WEIGHT_FILES, shard_names};

/// Files a model folder needs besides one of `WEIGHT_FILES`.
const NEEDED: [&str; 2] = ["config.json", "tokenizer.json"];

/// Returns a folder holding `config.json`, `tokenizer.json` and the weights. A `spec` naming an
/// existing folder is used as it is; otherwise it is a Hub id, looked up in the HF cache
/// (`HF_HOME` / `HF_HUB_CACHE`) and downloaded there unless `HF_HUB_OFFLINE=1`.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    resolve_in(spec, &Cache::from_env(), offline)
}

/// `resolve` with an explicit cache and offline switch.
pub fn resolve_in(spec: &str, cache: &Cache, offline: bool) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        for f in NEEDED {
            if !path.join(f).exists() {
                bail!(
                    "{} has no {f}; a model folder needs config.json, tokenizer.json and model.safetensors or pytorch_model.bin (Hugging Face layout)",
                    path.display()
                );
            }
        }
        return Ok(path.to_path_buf());
    }
    if spec.starts_with('.') || spec.starts_with('/') || spec.matches('/').count() > 1 {
        bail!("model folder {spec} does not exist");
    }
    let repo = cache.model(spec.to_string());
    if let Some(dir) = cached_dir(&repo) {
        return Ok(dir);
    }
    let hint = format!(
        "`{spec}` is not a local folder and is not in the Hugging Face cache at {}.\n  Fix: pass the path of a folder with config.json, tokenizer.json and model.safetensors or pytorch_model.bin, \
         or download it where the Hub is reachable (`huggingface-cli download {spec}`) and set HF_HOME to that cache",
        cache.path().display()
    );
    if offline {
        bail!("{hint} (HF_HUB_OFFLINE is set, so nothing was downloaded)");
    }
    download(spec).map_err(|e| anyhow::anyhow!("{hint}\n  download failed: {e}"))
}

fn cached_dir(repo: &hf_hub::CacheRepo) -> Option<PathBuf> {
    let config = repo.get("config.json")?;
    repo.get("tokenizer.json")?;
    WEIGHT_FILES.into_iter().find_map(|f| repo.get(f))?;
    config.parent().map(Path::to_path_buf)
}

fn download(spec: &str) -> Result<PathBuf> {
    let api = hf_hub::api::sync::ApiBuilder::from_env().with_progress(true).build()?;
    let repo = api.model(spec.to_string());
    let config = repo.get("config.json")?;
    repo.get("tokenizer.json")?;
    // Chosen from the repository's file list, so a failed download of the preferred format
    // is an error rather than a silent fall back to fetching a pickle.
    let listed: Vec<String> = repo.info()?.siblings.into_iter().map(|s| s.rfilename).collect();
    let weights = WEIGHT_FILES
        .into_iter()
        .find(|f| listed.iter().any(|l| l == f))
        .with_context(|| format!("{spec} on the Hub has none of {}", WEIGHT_FILES.join(", ")))?;
    let first = repo.get(weights)?;
    if weights.ends_with(".index.json") {
        for shard in shard_names(&first)? {
            repo.get(&shard)?;
        }
    }
    Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
}
