//! Genetic operators: initialisation, tournament selection, uniform and blend
//! crossover, gaussian mutation with clamping, random reset, elitism, and
//! [`breed`], which derives a whole generation from the previous one.
//!
//! Every operator takes the random stream it may draw from; [`breed`] gives
//! each child its own stream from (seed, generation, index), so children can
//! be computed in any order or in parallel with the same result.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::genome::{Gene, GeneKind, GeneSpec, Genome, GenomeSpec, Purpose, stream};

/// How genes of two parents are mixed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Crossover {
    /// Each gene from either parent with equal probability.
    Uniform,
    /// Numeric genes drawn uniformly from the parents' interval widened by
    /// `alpha` on each side (BLX-alpha), then clamped; choices as uniform.
    Blend {
        /// Widening factor, typically 0.5.
        alpha: f64,
    },
}

/// Settings of the operators. The defaults suit populations of 20 to 200.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperatorConfig {
    /// Contestants per tournament.
    pub tournament_size: u32,
    /// Probability that a child comes from crossover rather than a copy of one parent.
    pub crossover_rate: f64,
    /// Which crossover.
    pub crossover: Crossover,
    /// Probability that each numeric gene gets a gaussian step.
    pub mutation_rate: f64,
    /// Standard deviation of the gaussian step, as a fraction of the gene's range.
    pub mutation_sigma: f64,
    /// Probability that each gene is reset to a uniformly random value.
    pub reset_rate: f64,
    /// Best individuals copied unchanged into the next generation.
    pub elites: u32,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            tournament_size: 3,
            crossover_rate: 0.9,
            crossover: Crossover::Blend { alpha: 0.5 },
            mutation_rate: 0.2,
            mutation_sigma: 0.1,
            reset_rate: 0.02,
            elites: 2,
        }
    }
}

/// A uniformly random value of one gene.
pub fn random_gene(spec: &GeneSpec, rng: &mut ChaCha8Rng) -> Gene {
    let gene = match &spec.kind {
        GeneKind::Int { min, max } => Gene::Int(rng.random_range(*min..=*max)),
        GeneKind::Float { min, max } => Gene::Float(*min + (*max - *min) * rng.random::<f64>()),
        GeneKind::Choice { options } => Gene::Choice(rng.random_range(0..options.len().max(1)) as u32),
    };
    spec.clamp(gene)
}

/// A uniformly random genome.
pub fn random_genome(spec: &GenomeSpec, rng: &mut ChaCha8Rng) -> Genome {
    Genome { genes: spec.genes.iter().map(|gene| random_gene(gene, rng)).collect() }
}

/// Generation 0: `size` random genomes, individual i from its own stream.
pub fn initial_population(spec: &GenomeSpec, seed: u64, size: u32) -> Vec<Genome> {
    (0..size).map(|index| random_genome(spec, &mut stream(seed, 0, index, Purpose::Initialise))).collect()
}

/// Tournament selection: the fittest of `size` individuals drawn with
/// replacement; ties go to the lower index. Returns an index into `fitness`.
/// A missing fitness (`NaN`, for a parked evaluation) loses to any number.
pub fn tournament(fitness: &[f64], size: u32, rng: &mut ChaCha8Rng) -> usize {
    let mut best = rng.random_range(0..fitness.len());
    for _ in 1..size.max(1) {
        let contender = rng.random_range(0..fitness.len());
        if better(fitness, contender, best) {
            best = contender;
        }
    }
    best
}

/// Whether individual `a` ranks above `b`: higher fitness, then lower index.
fn better(fitness: &[f64], a: usize, b: usize) -> bool {
    let key = |i: usize| if fitness[i].is_nan() { f64::NEG_INFINITY } else { fitness[i] };
    match key(a).total_cmp(&key(b)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => a < b,
    }
}

/// Indexes ranked best first (higher fitness, then lower index; `NaN` last).
pub fn ranking(fitness: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..fitness.len()).collect();
    order.sort_by(|a, b| {
        if better(fitness, *a, *b) {
            std::cmp::Ordering::Less
        } else if better(fitness, *b, *a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    order
}

/// Uniform crossover: each gene from either parent.
pub fn uniform_crossover(a: &Genome, b: &Genome, rng: &mut ChaCha8Rng) -> Genome {
    Genome { genes: a.genes.iter().zip(&b.genes).map(|(x, y)| if rng.random_bool(0.5) { *x } else { *y }).collect() }
}

/// Blend (BLX-alpha) crossover of numeric genes; choices as in uniform crossover.
pub fn blend_crossover(spec: &GenomeSpec, a: &Genome, b: &Genome, alpha: f64, rng: &mut ChaCha8Rng) -> Genome {
    let genes = spec
        .genes
        .iter()
        .zip(a.genes.iter().zip(&b.genes))
        .map(|(gene_spec, (x, y))| {
            let pick = |lo: f64, hi: f64, rng: &mut ChaCha8Rng| {
                let width = hi - lo;
                lo - alpha * width + (1.0 + 2.0 * alpha) * width * rng.random::<f64>()
            };
            let child = match (x, y) {
                (Gene::Int(x), Gene::Int(y)) => Gene::Int(pick(*x.min(y) as f64, *x.max(y) as f64, rng).round() as i64),
                (Gene::Float(x), Gene::Float(y)) => Gene::Float(pick(x.min(*y), x.max(*y), rng)),
                _ => {
                    if rng.random_bool(0.5) {
                        *x
                    } else {
                        *y
                    }
                }
            };
            gene_spec.clamp(child)
        })
        .collect();
    Genome { genes }
}

/// A standard normal draw (Box-Muller), from `rng` only.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u = 1.0 - rng.random::<f64>();
    let v = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Gaussian mutation with clamping plus random reset, gene by gene.
///
/// Each numeric gene moves by N(0, sigma x range) with probability
/// `mutation_rate` (integers round, and move at least one step); each gene
/// is reset to a random value with probability `reset_rate`. Every result is
/// clamped into its bounds.
pub fn mutate(spec: &GenomeSpec, genome: &mut Genome, config: &OperatorConfig, rng: &mut ChaCha8Rng) {
    for (gene_spec, gene) in spec.genes.iter().zip(genome.genes.iter_mut()) {
        if !matches!(gene_spec.kind, GeneKind::Choice { .. }) && rng.random_bool(config.mutation_rate.clamp(0.0, 1.0)) {
            let step = standard_normal(rng) * config.mutation_sigma * gene_spec.span();
            *gene = match *gene {
                Gene::Int(v) => {
                    let rounded = step.round() as i64;
                    let rounded = if rounded == 0 { if step >= 0.0 { 1 } else { -1 } } else { rounded };
                    Gene::Int(v.saturating_add(rounded))
                }
                Gene::Float(v) => Gene::Float(v + step),
                other => other,
            };
            *gene = gene_spec.clamp(*gene);
        }
        if rng.random_bool(config.reset_rate.clamp(0.0, 1.0)) {
            *gene = random_gene(gene_spec, rng);
        }
    }
}

/// The next generation from the previous one and its fitness (`NaN` for an
/// individual that could not be evaluated).
///
/// The `elites` best individuals are copied unchanged to indexes 0, 1, ...;
/// every other child i draws from the stream (seed, generation, i): two
/// tournaments, crossover with probability `crossover_rate` (else a copy of
/// the first parent), then mutation. The result depends only on the inputs.
pub fn breed(
    spec: &GenomeSpec,
    previous: &[Genome],
    fitness: &[f64],
    config: &OperatorConfig,
    seed: u64,
    generation: u32,
    size: u32,
) -> Vec<Genome> {
    if previous.is_empty() {
        return initial_population(spec, seed, size);
    }
    let ranked = ranking(fitness);
    let elites = (config.elites as usize).min(size as usize).min(previous.len());
    let mut children: Vec<Genome> = ranked[..elites].iter().map(|i| previous[*i].clone()).collect();
    for index in elites as u32..size {
        let mut rng = stream(seed, generation, index, Purpose::Breed);
        let first = &previous[tournament(fitness, config.tournament_size, &mut rng)];
        let second = &previous[tournament(fitness, config.tournament_size, &mut rng)];
        let mut child = if rng.random_bool(config.crossover_rate.clamp(0.0, 1.0)) {
            match config.crossover {
                Crossover::Uniform => uniform_crossover(first, second, &mut rng),
                Crossover::Blend { alpha } => blend_crossover(spec, first, second, alpha, &mut rng),
            }
        } else {
            first.clone()
        };
        mutate(spec, &mut child, config, &mut rng);
        children.push(child);
    }
    children
}

/// Mean pairwise distance of genomes, 0 (all equal) to 1: numeric genes by
/// their distance over the range, choices by 0 (equal) or 1, averaged over
/// genes and pairs.
pub fn diversity(spec: &GenomeSpec, genomes: &[Genome]) -> f64 {
    if genomes.len() < 2 || spec.genes.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    let mut pairs = 0u64;
    for (i, a) in genomes.iter().enumerate() {
        for b in &genomes[i + 1..] {
            let mut distance = 0.0;
            for (gene_spec, (x, y)) in spec.genes.iter().zip(a.genes.iter().zip(&b.genes)) {
                distance += match gene_spec.kind {
                    GeneKind::Choice { .. } => f64::from(u8::from(x != y)),
                    _ if gene_spec.span() > 0.0 => (x.as_f64() - y.as_f64()).abs() / gene_spec.span(),
                    _ => 0.0,
                };
            }
            total += distance / spec.genes.len() as f64;
            pairs += 1;
        }
    }
    total / pairs as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GenomeSpec {
        GenomeSpec::new(vec![
            GeneSpec::int("n", 2, 9),
            GeneSpec::float("x", -1.0, 1.0),
            GeneSpec::choice("c", &["a", "b", "c"]),
        ])
    }

    #[test]
    fn every_operator_keeps_genes_in_bounds() {
        let spec = spec();
        let wild = OperatorConfig {
            mutation_rate: 1.0,
            mutation_sigma: 5.0,
            reset_rate: 0.3,
            crossover: Crossover::Blend { alpha: 3.0 },
            ..OperatorConfig::default()
        };
        let mut population = initial_population(&spec, 1, 30);
        for genome in &population {
            assert!(spec.contains(genome), "{genome:?}");
        }
        for generation in 1..40 {
            let fitness: Vec<f64> = population.iter().map(|g| g.genes[1].as_f64()).collect();
            for config in [wild.clone(), OperatorConfig { crossover: Crossover::Uniform, ..wild.clone() }] {
                let next = breed(&spec, &population, &fitness, &config, 7, generation, 30);
                assert_eq!(next.len(), 30);
                for genome in &next {
                    assert!(spec.contains(genome), "generation {generation}: {genome:?}");
                    assert_eq!(spec.parse(&spec.to_text(genome)).unwrap(), *genome, "text round trip");
                }
                population = next;
            }
        }
    }

    #[test]
    fn elites_survive_and_breeding_is_deterministic() {
        let spec = spec();
        let population = initial_population(&spec, 3, 10);
        let fitness: Vec<f64> = (0..10)
            .map(|i| {
                if i == 6 {
                    5.0
                } else if i == 2 {
                    4.0
                } else {
                    f64::from(i) * 0.1
                }
            })
            .collect();
        let config = OperatorConfig::default();
        let next = breed(&spec, &population, &fitness, &config, 3, 1, 10);
        assert_eq!(next[0], population[6]);
        assert_eq!(next[1], population[2]);
        assert_eq!(next, breed(&spec, &population, &fitness, &config, 3, 1, 10));
        assert_ne!(next, breed(&spec, &population, &fitness, &config, 4, 1, 10));
        assert_ne!(next, breed(&spec, &population, &fitness, &config, 3, 2, 10));
    }

    #[test]
    fn tournament_prefers_the_fittest_and_ranks_nan_last() {
        let fitness = [1.0, f64::NAN, 3.0, 2.0];
        let mut rng = stream(1, 0, 0, Purpose::Breed);
        assert_eq!(tournament(&fitness, 50, &mut rng), 2);
        assert_eq!(ranking(&fitness), vec![2, 3, 0, 1]);
    }

    #[test]
    fn diversity_is_zero_for_clones_and_one_for_opposites() {
        let spec = spec();
        let low = Genome { genes: vec![Gene::Int(2), Gene::Float(-1.0), Gene::Choice(0)] };
        let high = Genome { genes: vec![Gene::Int(9), Gene::Float(1.0), Gene::Choice(2)] };
        assert_eq!(diversity(&spec, &[low.clone(), low.clone()]), 0.0);
        assert_eq!(diversity(&spec, &[low, high]), 1.0);
    }
}
