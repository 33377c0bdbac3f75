//! Unit tests of `src/evolve.rs` (kept out of `src/`, which holds the commands, their
//! output and the composition root).

use super::*;

#[test]
fn strategy_values_are_the_registered_strategies() {
    let mut listed = STRATEGIES.map(str::to_string).to_vec();
    listed.sort();
    assert_eq!(listed, StrategyRegistry::default().names());
}
