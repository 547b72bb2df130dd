//! AdamW as the reference's `Trainer` runs it: `torch.optim.AdamW` (betas 0.9/0.999, eps 1e-8,
//! weight decay 0 by default), gradients clipped to a global L2 norm of 1.0 first
//! (`max_grad_norm`), and a linear learning-rate schedule without warmup
//! (`lr * (total - step) / total` at 0-based step `step`).

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct AdamWConfig {
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Global gradient-norm clipping (`None`: none). HF Trainer's default is 1.0.
    pub max_grad_norm: Option<f32>,
    /// Steps of the linear schedule.
    pub total_steps: usize,
}

impl AdamWConfig {
    /// HF Trainer defaults for `learning_rate` over `total_steps`.
    pub fn new(learning_rate: f32, total_steps: usize) -> Result<Self> {
        if !learning_rate.is_finite() {
            return Err(Error::InvalidInput(format!("the learning rate must be finite, got {learning_rate}")));
        }
        if learning_rate <= 0.0 {
            return Err(Error::InvalidInput(format!("the learning rate must be > 0, got {learning_rate}")));
        }
        if total_steps == 0 {
            return Err(Error::InvalidInput("the number of steps must be at least 1".into()));
        }
        Ok(AdamWConfig {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
            total_steps,
        })
    }
}

/// AdamW state over a list of flat parameters.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    step: usize,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl AdamW {
    /// State for parameters of the given sizes.
    pub fn new(config: AdamWConfig, sizes: &[usize]) -> Self {
        AdamW {
            config,
            step: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    /// Learning rate of the next step.
    pub fn current_lr(&self) -> f32 {
        let total = self.config.total_steps;
        let factor = total.saturating_sub(self.step) as f64 / total.max(1) as f64;
        (self.config.learning_rate as f64 * factor) as f32
    }

    /// Clips `grads` in place (global norm) and updates `params`; returns the norm before clipping.
    pub fn step(&mut self, params: &mut [Vec<f32>], grads: &mut [Vec<f32>]) -> Result<f32> {
        if params.len() != self.m.len() || grads.len() != self.m.len() {
            return Err(Error::InvalidInput(format!(
                "AdamW holds {} parameters, got {} parameters and {} gradients",
                self.m.len(),
                params.len(),
                grads.len()
            )));
        }
        let norm = grads.iter().flatten().map(|&g| (g as f64) * (g as f64)).sum::<f64>().sqrt() as f32;
        if let Some(max_norm) = self.config.max_grad_norm {
            let coef = (max_norm / (norm + 1e-6)).min(1.0);
            grads.iter_mut().flatten().for_each(|g| *g *= coef);
        }
        let c = &self.config;
        let lr = self.current_lr();
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - (c.beta1 as f64).powi(t);
        let bc2 = 1.0 - (c.beta2 as f64).powi(t);
        let step_size = (lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for ((p, g), (m, v)) in params.iter_mut().zip(grads.iter()).zip(self.m.iter_mut().zip(self.v.iter_mut())) {
            if p.len() != g.len() || p.len() != m.len() {
                return Err(Error::InvalidInput("AdamW: a gradient's size differs from its parameter's".into()));
            }
            for i in 0..p.len() {
                p[i] *= 1.0 - lr * c.weight_decay;
                m[i] += (g[i] - m[i]) * (1.0 - c.beta1);
                v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g[i] * g[i];
                let denom = v[i].sqrt() / bc2_sqrt + c.eps;
                p[i] -= step_size * m[i] / denom;
            }
        }
        Ok(norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_and_first_step() {
        let mut opt = AdamW::new(AdamWConfig::new(0.1, 4).unwrap(), &[1]);
        assert_eq!(opt.current_lr(), 0.1);
        let mut p = vec![vec![1.0f32]];
        // a small gradient is not clipped; the first Adam step moves by lr (m/sqrt(v) = sign)
        opt.step(&mut p, &mut [vec![0.5]]).unwrap();
        assert!((p[0][0] - 0.9).abs() < 1e-6, "{}", p[0][0]);
        assert!((opt.current_lr() - 0.075).abs() < 1e-7);
    }

    #[test]
    fn gradients_are_clipped_to_norm_one() {
        let mut opt = AdamW::new(AdamWConfig::new(0.1, 4).unwrap(), &[2]);
        let mut g = vec![vec![3.0f32, 4.0]];
        let norm = opt.step(&mut [vec![0.0, 0.0]], &mut g).unwrap();
        assert_eq!(norm, 5.0);
        assert!((g[0][0] - 0.6).abs() < 1e-6 && (g[0][1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(AdamWConfig::new(0.0, 10).is_err());
        assert!(AdamWConfig::new(-1e-5, 10).is_err());
        assert!(AdamWConfig::new(1e-5, 0).is_err());
    }
}
