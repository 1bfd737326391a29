//! Item costs for the load generator (`bench --cost`): a fixed cost, or
//! costs drawn from a lognormal distribution given by its median and p99,
//! the long tail of token counts in real text.

/// z of the 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;

/// How the load generator gives each item a cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Costs {
    /// Every item costs this.
    Fixed(u64),
    /// Lognormal with this median and 99th percentile.
    Lognormal {
        /// Median cost.
        median: f64,
        /// 99th-percentile cost.
        p99: f64,
    },
}

impl Costs {
    /// Parses `N` or `lognormal:MEDIAN:P99`.
    ///
    /// # Errors
    /// What is wrong with the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Costs::Fixed(n));
        }
        let number = |s: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 1.0)
                .ok_or_else(|| format!("{s:?} is not a number ≥ 1"))
        };
        match text.split(':').collect::<Vec<_>>().as_slice() {
            ["lognormal", median, p99] => {
                let (median, p99) = (number(median)?, number(p99)?);
                if p99 < median {
                    return Err(format!("p99 {p99} is below the median {median}"));
                }
                Ok(Costs::Lognormal { median, p99 })
            }
            _ => Err(format!(
                "expected N or lognormal:MEDIAN:P99 (e.g. lognormal:40:400), got {text:?}"
            )),
        }
    }

    /// The next item's cost (at least 1).
    pub fn draw(&self, rng: &mut fastrand::Rng) -> u64 {
        match *self {
            Costs::Fixed(n) => n,
            Costs::Lognormal { median, p99 } => {
                let sigma = (p99 / median).ln() / Z99;
                // Box-Muller: one standard normal from two uniforms.
                let (u1, u2) = (1.0 - rng.f64(), rng.f64());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let x = (median.ln() + sigma * z).exp().round();
                // Far past p99 the tail is cut, so one draw cannot exceed
                // any sane budget by orders of magnitude.
                (x.clamp(1.0, p99 * 10.0)) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_costs_have_the_median_and_p99_asked_for() {
        let costs = Costs::parse("lognormal:40:400").unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut drawn: Vec<u64> = (0..100_000).map(|_| costs.draw(&mut rng)).collect();
        drawn.sort_unstable();
        let (median, p99) = (drawn[50_000], drawn[99_000]);
        assert!((37..=43).contains(&median), "{median}");
        assert!((360..=440).contains(&p99), "{p99}");
        assert_eq!(Costs::parse("7"), Ok(Costs::Fixed(7)));
        assert!(Costs::parse("lognormal:40").is_err());
        assert!(Costs::parse("lognormal:400:40").is_err());
    }
}
