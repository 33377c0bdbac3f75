//! Genomes: typed genes (integer range, float range, choice) with bounds, their
//! canonical JSON text, and the seeded random streams every operator draws from.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{GaError, GaResult};

/// The kind and bounds of one gene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GeneKind {
    /// An integer in `[min, max]`.
    Int {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// A float in `[min, max]`.
    Float {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// One of a fixed list of options, stored as its index.
    Choice {
        /// The option names.
        options: Vec<String>,
    },
}

/// One gene of a genome: a name and its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneSpec {
    /// Name, unique within the genome.
    pub name: String,
    /// Kind and bounds.
    pub kind: GeneKind,
}

impl GeneSpec {
    /// An integer gene in `[min, max]`.
    pub fn int(name: &str, min: i64, max: i64) -> Self {
        GeneSpec { name: name.to_string(), kind: GeneKind::Int { min, max } }
    }

    /// A float gene in `[min, max]`.
    pub fn float(name: &str, min: f64, max: f64) -> Self {
        GeneSpec { name: name.to_string(), kind: GeneKind::Float { min, max } }
    }

    /// A choice among `options`.
    pub fn choice(name: &str, options: &[&str]) -> Self {
        GeneSpec {
            name: name.to_string(),
            kind: GeneKind::Choice { options: options.iter().map(|o| o.to_string()).collect() },
        }
    }

    /// Whether `value` has this gene's type and lies within its bounds.
    pub fn contains(&self, value: &Gene) -> bool {
        match (&self.kind, value) {
            (GeneKind::Int { min, max }, Gene::Int(v)) => min <= v && v <= max,
            (GeneKind::Float { min, max }, Gene::Float(v)) => v.is_finite() && *min <= *v && *v <= *max,
            (GeneKind::Choice { options }, Gene::Choice(i)) => (*i as usize) < options.len(),
            _ => false,
        }
    }

    /// Puts `value` back inside the bounds (a float NaN becomes the lower bound).
    pub fn clamp(&self, value: Gene) -> Gene {
        match (&self.kind, value) {
            (GeneKind::Int { min, max }, Gene::Int(v)) => Gene::Int(v.clamp(*min, *max)),
            (GeneKind::Float { min, max }, Gene::Float(v)) => {
                Gene::Float(if v.is_nan() { *min } else { quantize(v).clamp(*min, *max) })
            }
            (GeneKind::Choice { options }, Gene::Choice(i)) => {
                Gene::Choice(i.min(options.len().saturating_sub(1) as u32))
            }
            (_, other) => other,
        }
    }

    /// The width of the range as a float (for distances and mutation steps); 0 for choices.
    pub fn span(&self) -> f64 {
        match &self.kind {
            GeneKind::Int { min, max } => (*max - *min) as f64,
            GeneKind::Float { min, max } => *max - *min,
            GeneKind::Choice { .. } => 0.0,
        }
    }
}

/// Rounds a float gene to six decimals. Such a value survives the trip
/// through JSON text bit for bit (its decimal form has few digits), so a
/// population read back from the store equals the one that was written.
pub fn quantize(value: f64) -> f64 {
    if value.abs() < 1e12 { (value * 1e6).round() / 1e6 } else { value }
}

/// The value of one gene.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gene {
    /// An integer gene's value.
    Int(i64),
    /// A float gene's value.
    Float(f64),
    /// A choice gene's option index.
    Choice(u32),
}

impl Gene {
    /// The value as a float (choices give their index).
    pub fn as_f64(self) -> f64 {
        match self {
            Gene::Int(v) => v as f64,
            Gene::Float(v) => v,
            Gene::Choice(i) => i as f64,
        }
    }
}

/// A genome: one value per gene of a [`GenomeSpec`], in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Genome {
    /// Values, in the order of the spec's genes.
    pub genes: Vec<Gene>,
}

/// The genes of a strategy, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenomeSpec {
    /// The genes.
    pub genes: Vec<GeneSpec>,
}

impl GenomeSpec {
    /// A spec of these genes.
    pub fn new(genes: Vec<GeneSpec>) -> Self {
        GenomeSpec { genes }
    }

    /// Whether every gene of `genome` has the right type and is within bounds.
    pub fn contains(&self, genome: &Genome) -> bool {
        genome.genes.len() == self.genes.len() && self.genes.iter().zip(&genome.genes).all(|(s, g)| s.contains(g))
    }

    /// The canonical text of a genome: a JSON object `{"name": value, ...}`
    /// with keys sorted by name. Choices are written by option name. This is what the store
    /// keeps and what the fitness cache is keyed by.
    pub fn to_text(&self, genome: &Genome) -> String {
        let mut map = serde_json::Map::new();
        for (spec, gene) in self.genes.iter().zip(&genome.genes) {
            let value = match (&spec.kind, gene) {
                (GeneKind::Choice { options }, Gene::Choice(i)) => {
                    serde_json::Value::String(options.get(*i as usize).cloned().unwrap_or_default())
                }
                (_, Gene::Int(v)) => serde_json::Value::from(*v),
                (_, Gene::Float(v)) => serde_json::Value::from(*v),
                (_, Gene::Choice(i)) => serde_json::Value::from(*i),
            };
            map.insert(spec.name.clone(), value);
        }
        serde_json::Value::Object(map).to_string()
    }

    /// Parses the canonical text back, checking every gene's type and bounds.
    pub fn parse(&self, text: &str) -> GaResult<Genome> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| GaError::Genome(format!("genome {text:?} is not JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| GaError::Genome(format!("genome {text:?} is not an object")))?;
        let mut genes = Vec::with_capacity(self.genes.len());
        for spec in &self.genes {
            let field = object
                .get(&spec.name)
                .ok_or_else(|| GaError::Genome(format!("genome {text:?} lacks gene {:?}", spec.name)))?;
            let gene = match &spec.kind {
                GeneKind::Int { .. } => field.as_i64().map(Gene::Int),
                GeneKind::Float { .. } => field.as_f64().map(Gene::Float),
                GeneKind::Choice { options } => field
                    .as_str()
                    .and_then(|name| options.iter().position(|o| o == name))
                    .map(|i| Gene::Choice(i as u32)),
            }
            .filter(|gene| spec.contains(gene))
            .ok_or_else(|| {
                GaError::Genome(format!("gene {:?} = {field} is out of its bounds {:?}", spec.name, spec.kind))
            })?;
            genes.push(gene);
        }
        if object.len() != self.genes.len() {
            return Err(GaError::Genome(format!("genome {text:?} has genes this strategy does not know")));
        }
        Ok(Genome { genes })
    }

    /// The index of the gene called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.genes.iter().position(|gene| gene.name == name)
    }
}

/// Why a random stream is drawn, so streams of one individual never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Random genomes of generation 0.
    Initialise = 1,
    /// Selection, crossover and mutation of one child.
    Breed = 2,
}

/// The seeded random stream of one (run seed, generation, individual, purpose).
///
/// Every random choice of the engine comes from such a stream, so an
/// individual of generation g depends only on the seed, g, its index and
/// generation g-1, whatever order or process it is computed in.
pub fn stream(seed: u64, generation: u32, individual: u32, purpose: Purpose) -> ChaCha8Rng {
    let mut state = seed;
    let mut bytes = [0u8; 32];
    for (chunk, word) in
        bytes.chunks_mut(8).zip([generation as u64, individual as u64, purpose as u64, 0x5354_5241_5441])
    {
        state = splitmix(state ^ splitmix(word));
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    ChaCha8Rng::from_seed(bytes)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a over bytes: a stable 64-bit hash for population fingerprints and cache keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ *byte as u64).wrapping_mul(0x1000_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn spec() -> GenomeSpec {
        GenomeSpec::new(vec![
            GeneSpec::int("fast", 2, 50),
            GeneSpec::float("k", 0.5, 3.0),
            GeneSpec::choice("side", &["long", "long_short"]),
        ])
    }

    #[test]
    fn text_round_trips_and_checks_bounds() {
        let spec = spec();
        let genome = Genome { genes: vec![Gene::Int(7), Gene::Float(1.25), Gene::Choice(1)] };
        let text = spec.to_text(&genome);
        assert_eq!(text, r#"{"fast":7,"k":1.25,"side":"long_short"}"#);
        assert_eq!(spec.parse(&text).unwrap(), genome);
        assert!(spec.parse(r#"{"fast":70,"k":1.25,"side":"long"}"#).is_err());
        assert!(spec.parse(r#"{"fast":7,"k":1.25,"side":"short"}"#).is_err());
        assert!(spec.parse(r#"{"fast":7,"k":1.25}"#).is_err());
        assert!(spec.parse(r#"{"fast":7,"k":1.25,"side":"long","x":1}"#).is_err());
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |g, i, p| stream(9, g, i, p).random::<u64>();
        assert_eq!(draw(3, 4, Purpose::Breed), draw(3, 4, Purpose::Breed));
        assert_ne!(draw(3, 4, Purpose::Breed), draw(3, 5, Purpose::Breed));
        assert_ne!(draw(3, 4, Purpose::Breed), draw(4, 4, Purpose::Breed));
        assert_ne!(draw(0, 4, Purpose::Breed), draw(0, 4, Purpose::Initialise));
        assert_ne!(stream(9, 0, 0, Purpose::Breed).random::<u64>(), stream(10, 0, 0, Purpose::Breed).random::<u64>());
    }
}
