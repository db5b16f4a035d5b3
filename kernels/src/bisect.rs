//! Naming the bad items of a failed batch.
//!
//! A batch equation says "all valid" or "something invalid". When it fails, the set is
//! split in halves and each half re-checked (with the same secret weights restricted to it,
//! which stay uniformly random and unknown to the submitter), recursing into failing halves
//! until single items remain. Cost: O(b · log n) sub-checks for b bad items; one bad item
//! never rejects a good one.

/// Returns the positions (into `indices`' values) of the items `check` refuses, given that
/// `check(indices)` already failed. `check` must be monotone in the usual batch sense: a set
/// passes iff every item in it is valid (with overwhelming probability).
pub fn find_invalid<F>(indices: &[usize], check: &F) -> Vec<usize>
where
    F: Fn(&[usize]) -> bool + Sync,
{
    if indices.len() <= 1 {
        return indices.to_vec();
    }
    let (left, right) = indices.split_at(indices.len() / 2);
    let side = |half: &[usize]| {
        if check(half) {
            Vec::new()
        } else {
            find_invalid(half, check)
        }
    };
    let (mut a, b) = rayon::join(|| side(left), || side(right));
    a.extend(b);
    a
}

/// Runs `check` on all of `0..n`; if it fails, bisects. Returns the invalid positions.
pub fn verify_or_bisect<F>(n: usize, check: &F) -> Vec<usize>
where
    F: Fn(&[usize]) -> bool + Sync,
{
    let all: Vec<usize> = (0..n).collect();
    if n == 0 || check(&all) {
        Vec::new()
    } else {
        find_invalid(&all, check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_exactly_the_bad_items() {
        for n in [1usize, 2, 7, 100, 1000] {
            for bad in [
                vec![],
                vec![0],
                vec![n - 1],
                (0..n).step_by(13).collect::<Vec<_>>(),
            ] {
                let check = |set: &[usize]| set.iter().all(|i| !bad.contains(i));
                let mut found = verify_or_bisect(n, &check);
                found.sort();
                assert_eq!(found, bad, "n = {n}");
            }
        }
    }
}
