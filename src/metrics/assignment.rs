//! Rectangular linear assignment (METHOD.md §8, "Hungarian"): the shortest-augmenting-path
//! algorithm of Jonker–Volgenant as described by Crouse (2016), the one behind SciPy's
//! `linear_sum_assignment`. Minimises the total cost of a one-to-one matching of
//! `min(rows, cols)` pairs; [`max_weight_assignment`] maximises instead.

/// Error of [`min_cost_assignment`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssignmentError {
    #[error("cost matrix has {len} entries, expected {rows}x{cols}")]
    Shape {
        rows: usize,
        cols: usize,
        len: usize,
    },
    #[error("cost matrix entry ({row}, {col}) is {value}, not finite")]
    NotFinite { row: usize, col: usize, value: f64 },
}

/// Minimum-cost assignment of a `rows × cols` row-major cost matrix. Returns `(row, col)` pairs
/// sorted by row; every row is matched when `rows <= cols`, else every column.
pub fn min_cost_assignment(
    cost: &[f64],
    rows: usize,
    cols: usize,
) -> Result<Vec<(usize, usize)>, AssignmentError> {
    if cost.len() != rows * cols {
        return Err(AssignmentError::Shape {
            rows,
            cols,
            len: cost.len(),
        });
    }
    if let Some((i, &value)) = cost.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(AssignmentError::NotFinite {
            row: i / cols,
            col: i % cols,
            value,
        });
    }
    if rows == 0 || cols == 0 {
        return Ok(Vec::new());
    }
    if rows <= cols {
        Ok(solve(cost, rows, cols))
    } else {
        // Transpose so that there are no more rows than columns.
        let t: Vec<f64> = (0..cols)
            .flat_map(|j| (0..rows).map(move |i| cost[i * cols + j]))
            .collect();
        let mut pairs: Vec<(usize, usize)> = solve(&t, cols, rows)
            .into_iter()
            .map(|(j, i)| (i, j))
            .collect();
        pairs.sort_unstable();
        Ok(pairs)
    }
}

/// Maximum-weight assignment (e.g. of a clusters × classes count matrix).
pub fn max_weight_assignment(
    weight: &[f64],
    rows: usize,
    cols: usize,
) -> Result<Vec<(usize, usize)>, AssignmentError> {
    let neg: Vec<f64> = weight.iter().map(|w| -w).collect();
    min_cost_assignment(&neg, rows, cols)
}

/// Work arrays of the augmenting-path search.
struct State {
    u: Vec<f64>,
    v: Vec<f64>,
    spc: Vec<f64>,
    path: Vec<usize>,
    col4row: Vec<Option<usize>>,
    row4col: Vec<Option<usize>>,
    sr: Vec<bool>,
    sc: Vec<bool>,
    remaining: Vec<usize>,
}

/// Core solver, `rows <= cols`, all costs finite: every row gets a column.
fn solve(cost: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    let mut s = State {
        u: vec![0.0; rows],
        v: vec![0.0; cols],
        spc: vec![f64::INFINITY; cols],
        path: vec![usize::MAX; cols],
        col4row: vec![None; rows],
        row4col: vec![None; cols],
        sr: vec![false; rows],
        sc: vec![false; cols],
        remaining: vec![0; cols],
    };
    for cur_row in 0..rows {
        let (sink, min_val) = augmenting_path(cost, cols, &mut s, cur_row);
        // Update the dual variables.
        s.u[cur_row] += min_val;
        for i in 0..rows {
            if s.sr[i] && i != cur_row {
                if let Some(j) = s.col4row[i] {
                    s.u[i] += min_val - s.spc[j];
                }
            }
        }
        for j in 0..cols {
            if s.sc[j] {
                s.v[j] -= min_val - s.spc[j];
            }
        }
        // Augment the previous solution along the path.
        let mut j = sink;
        loop {
            let i = s.path[j];
            s.row4col[j] = Some(i);
            let prev = s.col4row[i].replace(j);
            if i == cur_row {
                break;
            }
            match prev {
                Some(p) => j = p,
                None => break,
            }
        }
    }
    s.col4row
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.map(|c| (i, c)))
        .collect()
}

/// Dijkstra-like search for the shortest augmenting path from `cur_row` to a free column.
/// Returns the sink column and the path length. With finite costs a sink always exists.
fn augmenting_path(cost: &[f64], cols: usize, s: &mut State, cur_row: usize) -> (usize, f64) {
    let mut min_val = 0.0;
    let mut num_remaining = cols;
    for (it, r) in s.remaining.iter_mut().enumerate() {
        *r = cols - it - 1;
    }
    s.sr.iter_mut().for_each(|x| *x = false);
    s.sc.iter_mut().for_each(|x| *x = false);
    s.spc.iter_mut().for_each(|x| *x = f64::INFINITY);
    let mut i = cur_row;
    loop {
        let mut index = 0;
        let mut lowest = f64::INFINITY;
        s.sr[i] = true;
        for it in 0..num_remaining {
            let j = s.remaining[it];
            let r = min_val + cost[i * cols + j] - s.u[i] - s.v[j];
            if r < s.spc[j] {
                s.path[j] = i;
                s.spc[j] = r;
            }
            if s.spc[j] < lowest || (s.spc[j] == lowest && s.row4col[j].is_none()) {
                lowest = s.spc[j];
                index = it;
            }
        }
        min_val = lowest;
        let j = s.remaining[index];
        s.sc[j] = true;
        num_remaining -= 1;
        s.remaining[index] = s.remaining[num_remaining];
        match s.row4col[j] {
            None => return (j, min_val),
            Some(r) => i = r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(cost: &[f64], cols: usize, pairs: &[(usize, usize)]) -> f64 {
        pairs.iter().map(|&(i, j)| cost[i * cols + j]).sum()
    }

    /// Brute force over all injections of the smaller side (closed-form reference for tiny sizes).
    fn brute(cost: &[f64], rows: usize, cols: usize) -> f64 {
        fn rec(cost: &[f64], rows: usize, cols: usize, i: usize, used: &mut Vec<bool>) -> f64 {
            if i == rows {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for j in 0..cols {
                if !used[j] {
                    used[j] = true;
                    best = best.min(cost[i * cols + j] + rec(cost, rows, cols, i + 1, used));
                    used[j] = false;
                }
            }
            best
        }
        assert!(rows <= cols);
        rec(cost, rows, cols, 0, &mut vec![false; cols])
    }

    #[test]
    fn matches_brute_force_on_small_matrices() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..300 {
            let rows = rng.gen_range(1..=5);
            let cols = rng.gen_range(rows..=6);
            let cost: Vec<f64> = (0..rows * cols)
                .map(|_| rng.gen_range(0..5) as f64)
                .collect();
            let pairs = min_cost_assignment(&cost, rows, cols).unwrap();
            assert_eq!(pairs.len(), rows);
            let mut seen = vec![false; cols];
            for &(_, j) in &pairs {
                assert!(!std::mem::replace(&mut seen[j], true), "column used twice");
            }
            assert_eq!(total(&cost, cols, &pairs), brute(&cost, rows, cols));
        }
    }

    #[test]
    fn tall_matrices_are_transposed() {
        // 3 rows, 2 columns: the best is rows 2 and 0.
        let cost = [1.0, 9.0, 9.0, 9.0, 9.0, 0.0];
        assert_eq!(
            min_cost_assignment(&cost, 3, 2).unwrap(),
            vec![(0, 0), (2, 1)]
        );
        assert_eq!(max_weight_assignment(&cost, 3, 2).unwrap().len(), 2);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            min_cost_assignment(&[1.0, 2.0], 2, 2),
            Err(AssignmentError::Shape { .. })
        ));
        assert!(matches!(
            min_cost_assignment(&[1.0, f64::NAN], 1, 2),
            Err(AssignmentError::NotFinite { col: 1, .. })
        ));
        assert!(min_cost_assignment(&[], 0, 3).unwrap().is_empty());
    }
}
