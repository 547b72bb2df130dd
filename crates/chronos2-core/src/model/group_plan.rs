//! Host-side plan for group (cross-series) attention.
//!
//! The reference attends along the batch axis at every token with mask
//! `same_group(q, b) AND observed(b, t)`, all additive `f32::MIN`. We compute the same thing
//! without a dense `(batch x batch)` mask: rows are gathered so that each group is contiguous,
//! groups of equal size are attended together as one batched attention over their members, and
//! singleton groups need no attention at all (a query's only key is itself). A query whose keys
//! are all hidden gets, as in the reference, a uniform softmax over every row of the batch: the
//! mean of the values over the batch.

use std::collections::BTreeMap;

/// Consecutive groups of equal size in the gathered row order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupRun {
    /// First gathered row of the run.
    pub start: usize,
    /// Number of groups in the run.
    pub groups: usize,
    /// Rows per group.
    pub size: usize,
}

/// The part of a [`GroupPlan`] that shapes the graph: which rows are gathered, in what order, and
/// how the gathered rows split into runs of equal-size groups. Two forwards with the same layout
/// (and input shapes) run the same graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupLayout {
    /// Row order that makes groups contiguous, or `None` when they already are.
    pub order: Option<Vec<usize>>,
    /// Inverse of `order`.
    pub inverse: Option<Vec<usize>>,
    pub runs: Vec<GroupRun>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub layout: GroupLayout,
    /// `(rows, seq_len)` in the ORIGINAL row order: 1 where some key of the row's group is
    /// observed at that token (the attention is defined), 0 where the reference's softmax is
    /// uniform over the whole batch.
    pub visible: Vec<f32>,
    /// True when some query has no visible key.
    pub any_hidden: bool,
}

impl GroupPlan {
    /// Plans group attention for `group_ids` (one per row) and the token `attention_mask`
    /// `(rows, seq_len)`.
    pub fn new(group_ids: &[i64], attention_mask: &[f32], seq_len: usize) -> Self {
        let rows = group_ids.len();
        // Groups in order of first appearance, members in row order.
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut index_of: BTreeMap<i64, usize> = BTreeMap::new();
        for (row, id) in group_ids.iter().enumerate() {
            let g = *index_of.entry(*id).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[g].push(row);
        }
        let gathered: Vec<usize> = members.iter().flatten().copied().collect();
        let identity = gathered.iter().enumerate().all(|(i, &r)| i == r);
        let (order, inverse) = if identity {
            (None, None)
        } else {
            let mut inverse = vec![0; rows];
            for (i, &r) in gathered.iter().enumerate() {
                inverse[r] = i;
            }
            (Some(gathered), Some(inverse))
        };

        let mut runs: Vec<GroupRun> = Vec::new();
        let mut start = 0;
        for group in &members {
            match runs.last_mut() {
                Some(run) if run.size == group.len() => run.groups += 1,
                _ => runs.push(GroupRun { start, groups: 1, size: group.len() }),
            }
            start += group.len();
        }

        let mut visible = vec![0f32; rows * seq_len];
        for group in &members {
            for t in 0..seq_len {
                let any = group.iter().any(|&r| attention_mask[r * seq_len + t] > 0.5);
                for &r in group {
                    visible[r * seq_len + t] = f32::from(u8::from(any));
                }
            }
        }
        let any_hidden = visible.contains(&0.0);
        GroupPlan { layout: GroupLayout { order, inverse, runs }, visible, any_hidden }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_groups_need_no_gather() {
        let plan = GroupPlan::new(&[0, 0, 1, 2, 2, 3, 3], &[1.0; 7], 1);
        assert_eq!(plan.layout.order, None);
        assert_eq!(
            plan.layout.runs,
            vec![
                GroupRun { start: 0, groups: 1, size: 2 },
                GroupRun { start: 2, groups: 1, size: 1 },
                GroupRun { start: 3, groups: 2, size: 2 },
            ]
        );
        assert!(!plan.any_hidden);
    }

    #[test]
    fn interleaved_groups_are_gathered() {
        // Rollout layout: group ids 0,1,0,1 -> rows [0,2] and [1,3].
        let plan = GroupPlan::new(&[5, 7, 5, 7], &[1.0; 4], 1);
        assert_eq!(plan.layout.order, Some(vec![0, 2, 1, 3]));
        assert_eq!(plan.layout.inverse, Some(vec![0, 2, 1, 3]));
        assert_eq!(plan.layout.runs, vec![GroupRun { start: 0, groups: 2, size: 2 }]);
    }

    #[test]
    fn visibility_is_per_group_and_token() {
        // Two tokens; row 0 hidden at token 0, row 1 (same group) observed -> visible.
        // Row 2 alone and hidden at token 1.
        let mask = [0.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        let plan = GroupPlan::new(&[0, 0, 1], &mask, 2);
        assert_eq!(plan.visible, vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
        assert!(plan.any_hidden);
    }
}
