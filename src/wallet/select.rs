//! Coin and allowance selection over power-of-two values.

#![allow(
    clippy::indexing_slicing,
    reason = "coin selection indexes the value list it was given"
)]

/// Greedy exact selection: walks values from largest to smallest, taking each that still
/// fits. Returns the chosen indices and what is left to pay (0 when exact). With power-of-two
/// denominations this finds an exact set whenever the held small coins allow one.
pub fn exact_greedy(values: &[u64], amount: u64) -> (Vec<usize>, u64) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].cmp(&values[a]));
    let mut left = amount;
    let mut chosen = Vec::new();
    for i in order {
        if values[i] <= left && left > 0 {
            left -= values[i];
            chosen.push(i);
        }
    }
    (chosen, left)
}

/// A set of indices whose values sum to at least `need`, preferring the smallest single
/// value that covers it, then the largest values first. `None` if all together fall short.
pub fn cover(values: &[u64], need: u64) -> Option<Vec<usize>> {
    if let Some(i) = (0..values.len())
        .filter(|&i| values[i] >= need)
        .min_by_key(|&i| values[i])
    {
        return Some(vec![i]);
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].cmp(&values[a]));
    let mut sum = 0u64;
    let mut chosen = Vec::new();
    for i in order {
        if sum >= need {
            break;
        }
        sum += values[i];
        chosen.push(i);
    }
    (sum >= need).then_some(chosen)
}

/// Removes the items at `indices` from `items` and returns them.
pub fn take<T>(items: &mut Vec<T>, indices: &[usize]) -> Vec<T> {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    sorted.into_iter().map(|i| items.remove(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_finds_exact_sets_and_reports_the_gap() {
        let v = [256, 32, 8, 4];
        let (c, left) = exact_greedy(&v, 44);
        assert_eq!(left, 0);
        assert_eq!(c.iter().map(|&i| v[i]).sum::<u64>(), 44);
        let (_, left) = exact_greedy(&v, 100);
        assert_eq!(left, 56);
    }

    #[test]
    fn cover_prefers_one_small_token() {
        assert_eq!(cover(&[512, 64, 8], 40), Some(vec![1]));
        assert_eq!(cover(&[16, 8, 4], 20).map(|c| c.len()), Some(2));
        assert_eq!(cover(&[1, 2], 4), None);
    }
}
