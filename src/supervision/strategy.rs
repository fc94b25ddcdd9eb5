//! Which children a supervisor restarts when one of them must be restarted (OTP's strategies).

/// Restart strategy of a supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// Every child: the others are stopped (in reverse order) and all start again in order.
    OneForAll,
    /// The child that exited and every child started after it.
    RestForOne,
}

impl Strategy {
    /// The children restarted together with `failed`, in start order. `order` lists the live
    /// children in start order; it is only computed for the strategies that need it.
    pub fn affected(&self, order: impl FnOnce() -> Vec<u64>, failed: u64) -> Vec<u64> {
        match self {
            Strategy::OneForOne => vec![failed],
            Strategy::OneForAll => order(),
            Strategy::RestForOne => order().into_iter().filter(|s| *s >= failed).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affected_children_follow_the_strategy() {
        let order = || vec![1, 2, 3, 4];
        assert_eq!(Strategy::OneForOne.affected(|| unreachable!("not needed"), 2), vec![2]);
        assert_eq!(Strategy::OneForAll.affected(order, 2), vec![1, 2, 3, 4]);
        assert_eq!(Strategy::RestForOne.affected(order, 2), vec![2, 3, 4]);
        assert_eq!(Strategy::RestForOne.affected(order, 4), vec![4]);
    }
}
