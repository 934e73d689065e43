//! A GGUF chat model (llama architecture; SmolLM2-135M-Instruct Q4_1 by default).
//!
//! The tokenizer is built from the GGUF metadata (candle's built-in GGUF tokenizer
//! mis-tokenizes SmolLM2), the prompt from the GGUF's chat template rendered with minijinja,
//! generation stops on every control token, and streamed text never splits a UTF-8
//! character.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use eino::component::{ChatModel, ChatOptions};
use eino::schema::{Message, ResponseMeta, StreamReader, TokenUsage, ToolInfo};
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::llama::Llama;
use crate::minilm::candle_error;
use crate::models::{ModelCache, SMOLLM2};
use crate::quant::WeightPolicy;
use crate::threads::{init_threads, LocalOptions};

/// Sampling defaults for a [`LocalChatModel`]; `ChatOptions` override temperature, top-p,
/// seed and max tokens per call.
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    /// 0 or `None`: greedy.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Sampling seed.
    pub seed: u64,
    /// Repetition penalty over the last `repeat_last_n` tokens (1.0 = off; default 1.1:
    /// a 135M model loops without it).
    pub repeat_penalty: f32,
    /// Window of the repetition penalty (default 64).
    pub repeat_last_n: usize,
    /// Output limit (default 512).
    pub max_tokens: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            temperature: None,
            top_p: None,
            seed: 299_792_458,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            max_tokens: 512,
        }
    }
}

struct Inner {
    model: Llama,
    tokenizer: Tokenizer,
    template: String,
    bos: String,
    eos: String,
    /// Control tokens (GGUF token type 3): generation stops on any of them.
    stop_ids: HashSet<u32>,
    context: usize,
    gen: GenerationConfig,
}

/// A local chat model. Cheap to clone; concurrent calls each get their own KV cache and run
/// on tokio's blocking pool.
#[derive(Clone)]
pub struct LocalChatModel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChatModel")
            .field("context", &self.inner.context)
            .finish()
    }
}

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    ct.metadata
        .get(key)
        .ok_or_else(|| Error::invalid_input(format!("GGUF has no {key}")))
}

/// Byte-level BPE from `tokenizer.ggml.*`: digits split one by one, no prefix space
/// (SmolLM2's `pre` is "smollm"), control and user-defined tokens as special tokens.
pub(crate) fn tokenizer_from_gguf(ct: &gguf_file::Content) -> Result<(Tokenizer, HashSet<u32>)> {
    let bad = |what: &str| Error::invalid_input(format!("GGUF tokenizer metadata: bad {what}"));
    let tokens: Vec<String> = md(ct, "tokenizer.ggml.tokens")?
        .to_vec()
        .map_err(|_| bad("tokens"))?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|_| bad("token")))
        .collect::<Result<_>>()?;
    let merges: Vec<(String, String)> = md(ct, "tokenizer.ggml.merges")?
        .to_vec()
        .map_err(|_| bad("merges"))?
        .iter()
        .map(|v| {
            let s = v.to_string().map_err(|_| bad("merge"))?;
            let (a, b) = s.split_once(' ').ok_or_else(|| bad("merge"))?;
            Ok((a.to_string(), b.to_string()))
        })
        .collect::<Result<_>>()?;
    let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|_| bad("token types"))?
            .iter()
            .map(|t| t.to_i32().map_err(|_| bad("token type")))
            .collect::<Result<_>>()?,
        None => vec![1; tokens.len()],
    };
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| Error::invalid_input(format!("GGUF tokenizer: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tok.with_decoder(Some(ByteLevel::default()));
    let mut stop = HashSet::new();
    let mut special = Vec::new();
    for (i, (t, ty)) in tokens.iter().zip(&types).enumerate() {
        if *ty == 3 || *ty == 4 {
            special.push(AddedToken::from(t.clone(), true));
        }
        if *ty == 3 {
            stop.insert(i as u32);
        }
    }
    tok.add_special_tokens(special)
        .map_err(|e| Error::invalid_input(format!("GGUF tokenizer: {e}")))?;
    Ok((tok, stop))
}

/// Incremental detokenizer: byte-level BPE spells one character over several tokens, so
/// text is released only up to the last complete character (never a U+FFFD half).
pub(crate) struct Detok<'t> {
    tok: &'t Tokenizer,
    ids: Vec<u32>,
    text: String,
    sent: usize,
}

impl<'t> Detok<'t> {
    pub(crate) fn new(tok: &'t Tokenizer) -> Self {
        Self {
            tok,
            ids: Vec::new(),
            text: String::new(),
            sent: 0,
        }
    }

    pub(crate) fn push(&mut self, id: u32) -> Result<()> {
        self.ids.push(id);
        self.text = self
            .tok
            .decode(&self.ids, true)
            .map_err(|e| Error::internal(format!("cannot decode: {e}")))?;
        Ok(())
    }

    /// Complete characters not yet released.
    pub(crate) fn ready(&mut self) -> Option<String> {
        let ready = self.text.trim_end_matches('\u{FFFD}').len();
        if ready <= self.sent {
            return None;
        }
        let piece = self.text[self.sent..ready].to_string();
        self.sent = ready;
        Some(piece)
    }

    /// If a stop sequence appeared: cut the text there and return what is left to release.
    fn cut_at_stop(&mut self, stops: &[String]) -> Option<String> {
        let cut = stops
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()?;
        self.text.truncate(cut);
        let piece = self.text.get(self.sent..).unwrap_or("").to_string();
        self.sent = self.sent.max(cut);
        Some(piece)
    }

    /// The released text (a trailing incomplete character is dropped).
    fn into_text(mut self) -> String {
        self.text.truncate(self.sent);
        self.text
    }
}

impl LocalChatModel {
    /// Stream-decode `ids` one at a time as generation does; returns the released pieces.
    /// (For tests and tools that replay token streams.)
    pub fn stream_decode(&self, ids: &[u32]) -> Result<Vec<String>> {
        let mut d = Detok::new(&self.inner.tokenizer);
        let mut out = Vec::new();
        for &id in ids {
            d.push(id)?;
            out.extend(d.ready());
        }
        Ok(out)
    }

    /// Load a GGUF file.
    pub fn load(path: &Path, opts: &LocalOptions, gen: GenerationConfig) -> Result<Self> {
        init_threads(opts);
        let mut file = std::fs::File::open(path).map_err(|e| {
            Error::invalid_input(format!("cannot open {}", path.display())).with_source(e)
        })?;
        let ct = gguf_file::Content::read(&mut file).map_err(|e| {
            Error::invalid_input(format!("{} is not a GGUF file: {e}", path.display()))
        })?;
        let (tokenizer, stop_ids) = tokenizer_from_gguf(&ct)?;
        let template = md(&ct, "tokenizer.chat_template")?
            .to_string()
            .map_err(|_| Error::invalid_input("GGUF chat template is not a string"))?
            .clone();
        let token_text = |key: &str| -> String {
            ct.metadata
                .get(key)
                .and_then(|v| v.to_u32().ok())
                .and_then(|id| tokenizer.id_to_token(id))
                .unwrap_or_default()
        };
        let (bos, eos) = (
            token_text("tokenizer.ggml.bos_token_id"),
            token_text("tokenizer.ggml.eos_token_id"),
        );
        let policy = WeightPolicy::for_this_cpu(opts.keep_quantization);
        let model = Llama::load(&ct, &mut file, policy)
            .map_err(candle_error("cannot load the GGUF model"))?;
        let context = model.context();
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                template,
                bos,
                eos,
                stop_ids,
                context,
                gen,
            }),
        })
    }

    /// The default model (SmolLM2-135M-Instruct Q4_1) from the default cache, fetched first
    /// if missing.
    pub async fn load_default(opts: LocalOptions) -> Result<Self> {
        Self::load_default_with(opts, GenerationConfig::default()).await
    }

    /// As [`LocalChatModel::load_default`] with sampling defaults `gen`.
    pub async fn load_default_with(opts: LocalOptions, gen: GenerationConfig) -> Result<Self> {
        tokio::task::spawn_blocking(move || {
            let dir = ModelCache::default().ensure(&SMOLLM2)?;
            Self::load(&dir.join("model.gguf"), &opts, gen)
        })
        .await
        .map_err(|e| Error::internal(format!("model loading task failed: {e}")))?
    }

    /// The prompt the model sees for `messages` (the GGUF's chat template).
    pub fn render_prompt(&self, messages: &[Message]) -> Result<String> {
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        let tpl = env
            .template_from_str(&self.inner.template)
            .map_err(|e| Error::invalid_input(format!("GGUF chat template: {e}")))?;
        let msgs: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        tpl.render(minijinja::context! {
            messages => minijinja::Value::from(minijinja::value::Serde(&msgs)),
            add_generation_prompt => true,
            bos_token => self.inner.bos.clone(),
            eos_token => self.inner.eos.clone(),
        })
        .map_err(|e| Error::invalid_input(format!("cannot render the chat prompt: {e}")))
    }

    /// Token ids of `text` (no special tokens added).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::invalid_input(format!("cannot tokenize: {e}")))
    }

    /// Generate on the calling thread; `emit` gets each text piece (whole characters only)
    /// and returns false to stop early.
    pub fn generate_blocking(
        &self,
        messages: &[Message],
        o: &ChatOptions,
        mut emit: impl FnMut(&str) -> bool,
    ) -> Result<Message> {
        let inner = &*self.inner;
        let prompt = self.tokenize(&self.render_prompt(messages)?)?;
        let max_new = o.max_tokens.map_or(inner.gen.max_tokens, |m| m as usize);
        if prompt.len() + 1 > inner.context {
            return Err(Error::new(
                ErrorKind::ContextLength,
                format!(
                    "the prompt has {} tokens; the model's context is {}",
                    prompt.len(),
                    inner.context
                ),
            ));
        }
        let max_new = max_new.min(inner.context - prompt.len());
        let temperature = o.temperature.or(inner.gen.temperature).filter(|t| *t > 0.0);
        let sampling = match (temperature, o.top_p.or(inner.gen.top_p)) {
            (None, _) => Sampling::ArgMax,
            (Some(t), None) => Sampling::All {
                temperature: t as f64,
            },
            (Some(t), Some(p)) => Sampling::TopP {
                p: p as f64,
                temperature: t as f64,
            },
        };
        let mut sampler =
            LogitsProcessor::from_sampling(o.seed.unwrap_or(inner.gen.seed), sampling);
        let mut state = inner.model.state(prompt.len() + max_new);
        let err = |what: &'static str| candle_error(what);
        let mut logits = inner
            .model
            .forward(&mut state, &prompt, 0)
            .map_err(err("prompt processing failed"))?;
        let mut out: Vec<u32> = Vec::new();
        let mut detok = Detok::new(&inner.tokenizer);
        let stops = o.stop.clone().unwrap_or_default();
        let mut finish = "length";
        while out.len() < max_new {
            let logits_p = if inner.gen.repeat_penalty == 1.0 {
                logits.clone()
            } else {
                let start = (prompt.len() + out.len()).saturating_sub(inner.gen.repeat_last_n);
                let ctx: Vec<u32> = prompt.iter().chain(&out).skip(start).copied().collect();
                candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    inner.gen.repeat_penalty,
                    &ctx,
                )
                .map_err(err("sampling failed"))?
            };
            let next = sampler.sample(&logits_p).map_err(err("sampling failed"))?;
            if inner.stop_ids.contains(&next) {
                finish = "stop";
                break;
            }
            out.push(next);
            detok.push(next)?;
            if let Some(piece) = detok.cut_at_stop(&stops) {
                if !piece.is_empty() {
                    emit(&piece);
                }
                finish = "stop";
                break;
            }
            if let Some(piece) = detok.ready() {
                if !emit(&piece) {
                    finish = "stop";
                    break;
                }
            }
            let pos = prompt.len() + out.len() - 1;
            logits = inner
                .model
                .forward(&mut state, &[next], pos)
                .map_err(err("decoding failed"))?;
        }
        if let Some(piece) = detok.ready() {
            emit(&piece);
        }
        let text = detok.into_text();
        let mut m = Message::assistant(text, vec![]);
        m.meta = Some(ResponseMeta {
            finish_reason: Some(finish.into()),
            usage: Some(TokenUsage {
                prompt_tokens: prompt.len() as u64,
                completion_tokens: out.len() as u64,
                total_tokens: (prompt.len() + out.len()) as u64,
                ..TokenUsage::default()
            }),
        });
        Ok(m)
    }
}

impl ChatModel for LocalChatModel {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<Message>> {
        let (me, msgs, o) = (self.clone(), msgs.to_vec(), o.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || me.generate_blocking(&msgs, &o, |_| true))
                .await
                .map_err(|e| Error::internal(format!("generation task failed: {e}")))?
        })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        let (me, msgs, o) = (self.clone(), msgs.to_vec(), o.clone());
        Box::pin(async move {
            // Bounded: a slow reader pauses generation. A dropped reader stops it.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Message>>(64);
            tokio::task::spawn_blocking(move || {
                let tx2 = tx.clone();
                let r = me.generate_blocking(&msgs, &o, |piece| {
                    tx2.blocking_send(Ok(Message::assistant(piece, vec![])))
                        .is_ok()
                });
                let last = r.map(|m| Message {
                    content: String::new(),
                    ..m
                });
                let _ = tx.blocking_send(last);
            });
            let s = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|m| (m, rx))
            });
            Ok(StreamReader::from_stream(s))
        })
    }

    fn with_tools(&self, _: Vec<ToolInfo>) -> Result<Arc<dyn ChatModel>> {
        Err(Error::invalid_input(
            "the local model does not support tool calling; use a remote model for agents",
        ))
    }

    fn model_name(&self) -> Option<&str> {
        Some("SmolLM2-135M-Instruct")
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("LocalGGUF")
    }
}
