//! Model presets: the few numbers of a transformer that decide its GEMM and attention shapes.
//!
//! The presets are data files (`data/models/*.toml`) compiled in with `include_str!`, so that a
//! new model is a new file, not new code, and a user's own model (`--model-file`) is read by the
//! same parser with the same checks.

use crate::error::{Error, Result};
use crate::workload::{require_head_groups, require_nonzero};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::path::Path;

/// The preset files, in the order `gpuvet` lists them.
const PRESETS: [(&str, &str); 5] = [
    (
        "llama3.1-8b",
        include_str!("../../data/models/llama3.1-8b.toml"),
    ),
    (
        "llama3.1-70b",
        include_str!("../../data/models/llama3.1-70b.toml"),
    ),
    (
        "llama3.1-405b",
        include_str!("../../data/models/llama3.1-405b.toml"),
    ),
    (
        "mixtral-8x7b",
        include_str!("../../data/models/mixtral-8x7b.toml"),
    ),
    (
        "qwen2.5-72b",
        include_str!("../../data/models/qwen2.5-72b.toml"),
    ),
];

/// Largest value any model field may take.
pub const MAX_DIM: u64 = 1 << 24;

/// The shape-deciding numbers of a decoder-only transformer with grouped-query attention and a
/// gated (SwiGLU) FFN, optionally a mixture of experts.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Short id used with `--model` (`llama3.1-70b`).
    pub id: String,
    /// Display name (`Llama-3.1-70B`).
    pub name: String,
    /// Width of the residual stream (`hidden_size` in a Hugging Face config).
    pub hidden_size: u64,
    /// Inner width of one FFN (`intermediate_size`); for a MoE model, of one expert.
    pub ffn_size: u64,
    /// Query heads (`num_attention_heads`).
    pub q_heads: u64,
    /// Key/value heads (`num_key_value_heads`); fewer than `q_heads` is GQA.
    pub kv_heads: u64,
    /// Width of one head; usually `hidden_size / q_heads`.
    pub head_dim: u64,
    /// Transformer blocks (`num_hidden_layers`).
    pub layers: u64,
    pub vocab_size: u64,
    /// Expert FFNs per layer (MoE); absent for a dense model.
    pub experts: Option<u64>,
    /// Experts each token is routed to (MoE top-k).
    pub experts_per_token: Option<u64>,
}

impl ModelConfig {
    /// Parses a model file and checks it describes a buildable model; `origin` names it in
    /// errors.
    pub fn parse(text: &str, origin: &str) -> Result<ModelConfig> {
        let m: ModelConfig = toml::from_str(text).map_err(|e| Error::CorruptFile {
            path: origin.into(),
            reason: format!("not a model file: {}", e.to_string().trim_end()),
        })?;
        m.validate().map_err(|e| Error::CorruptFile {
            path: origin.into(),
            reason: match e {
                Error::InvalidInput(s) => s,
                other => other.to_string(),
            },
        })?;
        Ok(m)
    }

    /// Reads a user's model file.
    pub fn load(path: &Path) -> Result<ModelConfig> {
        let text = crate::files::read_text_bounded(path, crate::files::MAX_SMALL_FILE_BYTES)
            .map_err(|e| Error::CorruptFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        ModelConfig::parse(&text, &path.display().to_string())
    }

    /// Whether the FFN is a mixture of experts.
    pub fn is_moe(&self) -> bool {
        self.experts.is_some()
    }

    /// Rejects numbers no model has: zeros, heads that do not group, top-k above the experts.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("hidden_size", self.hidden_size),
            ("ffn_size", self.ffn_size),
            ("q_heads", self.q_heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("layers", self.layers),
            ("vocab_size", self.vocab_size),
        ];
        let moe = [
            ("experts", self.experts.unwrap_or(1)),
            ("experts_per_token", self.experts_per_token.unwrap_or(1)),
        ];
        let what = format!("model {}", self.id);
        require_nonzero(&what, fields.into_iter().chain(moe))?;
        for (n, v) in fields.into_iter().chain(moe) {
            // No model comes near; the cap keeps every shape product far from overflowing.
            if v > MAX_DIM {
                return Err(Error::invalid(format!(
                    "{what}: {n} = {v} is beyond any model (at most {MAX_DIM})"
                )));
            }
        }
        require_head_groups(
            &what,
            ("q_heads", self.q_heads),
            ("kv_heads", self.kv_heads),
        )?;
        if self.head_dim > 1024 {
            return Err(Error::invalid(format!(
                "{what}: head_dim {} is above 1024",
                self.head_dim
            )));
        }
        match (self.experts, self.experts_per_token) {
            (None, None) => {}
            (Some(e), Some(k)) if e >= 1 && k >= 1 && k <= e => {}
            (Some(e), Some(k)) => {
                return Err(Error::invalid(format!(
                    "{what}: experts_per_token ({k}) must be between 1 and experts ({e})"
                )))
            }
            _ => {
                return Err(Error::invalid(format!(
                    "{what}: a mixture of experts needs both experts and experts_per_token"
                )))
            }
        }
        Ok(())
    }
}

/// Ids of the built-in presets.
pub fn preset_ids() -> Vec<&'static str> {
    PRESETS.iter().map(|(id, _)| *id).collect()
}

/// A built-in preset by id (case-insensitive; `llama-3.1-70b` and `Llama-3.1-70B` also match).
pub fn preset(id: &str) -> Result<ModelConfig> {
    let want = normalize(id);
    for (pid, text) in PRESETS {
        if normalize(pid) == want {
            return ModelConfig::parse(text, &format!("data/models/{pid}.toml"));
        }
    }
    Err(Error::invalid(format!(
        "unknown model `{id}`; presets: {} (or --model-file PATH)",
        preset_ids().join(", ")
    )))
}

/// Every built-in preset.
pub fn presets() -> Result<Vec<ModelConfig>> {
    PRESETS
        .iter()
        .map(|(id, text)| ModelConfig::parse(text, &format!("data/models/{id}.toml")))
        .collect()
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .flat_map(|c| c.to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_match_their_ids() {
        let all = presets().unwrap();
        assert_eq!(all.len(), 5);
        for (m, id) in all.iter().zip(preset_ids()) {
            assert_eq!(m.id, id);
            // every preset has hidden = q_heads × head_dim
            assert_eq!(m.hidden_size, m.q_heads * m.head_dim, "{id}");
        }
        let l70 = preset("Llama-3.1-70B").unwrap();
        assert_eq!(
            (l70.hidden_size, l70.ffn_size, l70.layers),
            (8192, 28672, 80)
        );
        let mx = preset("mixtral-8x7b").unwrap();
        assert_eq!((mx.experts, mx.experts_per_token), (Some(8), Some(2)));
        assert!(preset("gpt-5")
            .unwrap_err()
            .to_string()
            .contains("presets:"));
    }

    #[test]
    fn rejects_bad_files() {
        let base = "id='x'\nname='x'\nhidden_size=64\nffn_size=128\nq_heads=4\nkv_heads=2\nhead_dim=16\nlayers=2\nvocab_size=100\n";
        assert!(ModelConfig::parse(base, "t").is_ok());
        let e = ModelConfig::parse(&base.replace("kv_heads=2", "kv_heads=3"), "t").unwrap_err();
        assert!(e.to_string().contains("must divide"), "{e}");
        let e = ModelConfig::parse(&format!("{base}experts=8\n"), "t").unwrap_err();
        assert!(e.to_string().contains("both"), "{e}");
        let e = ModelConfig::parse(&format!("{base}experts=2\nexperts_per_token=3\n"), "t")
            .unwrap_err();
        assert!(e.to_string().contains("between"), "{e}");
        let e = ModelConfig::parse(&format!("{base}colour=1\n"), "t").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        assert!(ModelConfig::parse("not toml [", "t").is_err());
        let e =
            ModelConfig::parse(&base.replace("layers=2", "layers=99999999999"), "t").unwrap_err();
        assert!(e.to_string().contains("beyond"), "{e}");
        let e = ModelConfig::parse(&format!("{base}experts=0\nexperts_per_token=0\n"), "t")
            .unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        assert!(ModelConfig::load(Path::new("/nonexistent/model.toml")).is_err());
    }
}
