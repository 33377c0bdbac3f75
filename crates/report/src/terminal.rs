//! A quick chart of best and mean fitness per generation for a terminal
//! (`strata runs show RUN --chart`): plain characters, no colours, so it
//! survives pipes, logs and any font.

use strata_core::evolution::GenerationStats;

/// Picks one value (best or mean) out of (generation, best, mean).
type Pick = fn(&(u32, f64, f64)) -> f64;

/// The character of the best fitness.
const BEST: char = '*';
/// The character of the mean fitness.
const MEAN: char = '.';

/// The chart as lines: a title with the legend, `height` rows of plot with
/// the y axis labelled at the top, middle and bottom, and the generation axis.
/// The plot is `width` columns wide at most (generations are spread over the
/// columns, values between them interpolated); empty when no generation has
/// statistics.
pub fn fitness_chart(stats: &[GenerationStats], width: usize, height: usize) -> Vec<String> {
    let points: Vec<(u32, f64, f64)> = stats
        .iter()
        .filter(|s| s.best.is_finite() && s.mean.is_finite())
        .map(|s| (s.generation + 1, s.best, s.mean))
        .collect();
    if points.is_empty() {
        return Vec::new();
    }
    let height = height.max(3);
    let columns = (points.len() * 4).clamp(16, width.max(16));
    let low = points.iter().map(|p| p.2.min(p.1)).fold(f64::INFINITY, f64::min);
    let high = points.iter().map(|p| p.1.max(p.2)).fold(f64::NEG_INFINITY, f64::max);
    let (low, high) = if high - low < 1e-12 { (low - 0.5, high + 0.5) } else { (low, high) };
    let row_of = |value: f64| {
        (((high - value) / (high - low)) * (height - 1) as f64).round().clamp(0.0, (height - 1) as f64) as usize
    };
    // The value of a series at a column: interpolated between the generations around it.
    let at = |column: usize, pick: Pick| {
        if points.len() == 1 {
            return pick(&points[0]);
        }
        let position = column as f64 / (columns - 1) as f64 * (points.len() - 1) as f64;
        let before = position.floor() as usize;
        let after = (before + 1).min(points.len() - 1);
        let share = position - before as f64;
        pick(&points[before]) * (1.0 - share) + pick(&points[after]) * share
    };
    let mut grid = vec![vec![' '; columns]; height];
    let series: [(Pick, char); 2] = [(|p| p.2, MEAN), (|p| p.1, BEST)];
    for (series, mark) in series {
        let mut previous: Option<usize> = None;
        for column in 0..columns {
            let row = row_of(at(column, series));
            // Join a steep step with the same mark, so the line stays unbroken.
            if let Some(last) = previous {
                let (from, to) = if last < row { (last + 1, row) } else { (row + 1, last) };
                for cell in grid.iter_mut().take(to).skip(from) {
                    if cell[column] == ' ' {
                        cell[column] = mark;
                    }
                }
            }
            grid[row][column] = mark;
            previous = Some(row);
        }
    }
    let label = |value: f64| format!("{value:>9.4}");
    let mut lines = vec![format!("fitness per generation ({BEST} best, {MEAN} mean)")];
    for (row, cells) in grid.iter().enumerate() {
        let text: String = cells.iter().collect();
        let axis = if row == 0 {
            format!("{} ┤", label(high))
        } else if row == height - 1 {
            format!("{} ┤", label(low))
        } else if row == (height - 1) / 2 {
            format!("{} ┤", label(high - (high - low) * row as f64 / (height - 1) as f64))
        } else {
            format!("{:>9} │", "")
        };
        lines.push(format!("{axis}{}", text.trim_end()));
    }
    lines.push(format!("{:>9} └{}", "", "─".repeat(columns)));
    let first = points[0].0.to_string();
    let last = points[points.len() - 1].0.to_string();
    let middle = "generation";
    let gap = columns.saturating_sub(first.len() + last.len() + middle.len());
    lines.push(format!("{:>9}  {first}{}{middle}{}{last}", "", " ".repeat(gap / 2), " ".repeat(gap - gap / 2)));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::evolution::RunId;

    fn stats(values: &[(f64, f64)]) -> Vec<GenerationStats> {
        values
            .iter()
            .enumerate()
            .map(|(generation, (best, mean))| GenerationStats {
                run: RunId::new("r").unwrap_or_else(|_| unreachable!("a valid id")),
                generation: generation as u32,
                best: *best,
                mean: *mean,
                std: 0.1,
                diversity: 0.5,
                evaluated: 10,
            })
            .collect()
    }

    #[test]
    fn the_best_line_rises_above_the_mean() {
        let lines = fitness_chart(&stats(&[(0.2, -0.5), (0.6, 0.0), (1.0, 0.4), (1.2, 0.8)]), 60, 10);
        assert_eq!(lines.len(), 1 + 10 + 2, "{}", lines.join("\n"));
        assert!(lines[0].contains("* best") && lines[0].contains(". mean"));
        assert!(lines[1].starts_with("   1.2000 ┤") && lines[1].ends_with('*'), "{}", lines.join("\n"));
        assert!(lines[10].starts_with("  -0.5000 ┤."), "the lowest mean at the bottom left:\n{}", lines.join("\n"));
        let last = &lines[12];
        assert!(last.trim_start().starts_with('1') && last.ends_with('4'), "generations 1 to 4: {last}");
        assert!(last.contains("generation"));
        let widths: Vec<usize> = lines[1..11].iter().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|w| *w <= 11 + 16), "4 generations take 16 columns: {widths:?}");
    }

    #[test]
    fn nothing_to_draw_gives_no_lines_and_a_flat_run_still_draws() {
        assert!(fitness_chart(&[], 60, 10).is_empty());
        assert!(fitness_chart(&stats(&[(f64::NAN, f64::NAN)]), 60, 10).is_empty());
        let flat = fitness_chart(&stats(&[(1.0, 1.0), (1.0, 1.0)]), 60, 5);
        assert_eq!(flat.len(), 1 + 5 + 2);
        assert!(flat.iter().any(|line| line.contains('*')), "{}", flat.join("\n"));
    }
}
