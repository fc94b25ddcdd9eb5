//! The networks, in burn. Inputs: node features `x: [batch, nodes, steps, features]` and the
//! normalized adjacency `a: [batch, nodes, nodes]` (Â = D^-1/2 (|W| + I) D^-1/2 of the graph at the
//! last step); output: one logit per node, `[batch, nodes]`, for "the next return is positive".
//!
//! - [`TemporalGcn`]: a dense graph convolution applied at every step (Â X W, shared weights),
//!   a temporal convolution over the steps (one kernel spanning them all), a second graph
//!   convolution on the result, and a linear read-out.
//! - [`Logistic`]: logistic regression on the same node features at the last step (a baseline).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::seeded::Seeded;

/// A network that scores every node of a batch of graphs.
pub trait Forecaster<B: Backend> {
    fn forward(&self, x: Tensor<B, 4>, a: Tensor<B, 3>) -> Tensor<B, 2>;
}

/// A linear layer (`[inputs, outputs]` weights and a bias) drawn on the host as burn's default
/// initialiser draws it (Kaiming uniform: ±1/√inputs for both), so that the network a seed gives
/// is the same on the CPU and on CUDA.
fn linear<B: Backend>(inputs: usize, outputs: usize, rng: &mut Seeded, device: &B::Device) -> Linear<B> {
    let bound = 1.0 / (inputs as f32).sqrt();
    let mut draw = |n: usize| (0..n).map(|_| rng.symmetric(bound)).collect::<Vec<f32>>();
    let weight = Tensor::from_data(TensorData::new(draw(inputs * outputs), [inputs, outputs]), device);
    let bias = Tensor::from_data(TensorData::new(draw(outputs), [outputs]), device);
    Linear { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(bias)) }
}

/// One dense graph convolution: `Â X W` (+ bias) for `x: [batch, nodes, features]`.
pub fn graph_conv<B: Backend>(a: Tensor<B, 3>, x: Tensor<B, 3>, w: &Linear<B>) -> Tensor<B, 3> {
    w.forward(a.matmul(x))
}

#[derive(Module, Debug)]
pub struct TemporalGcn<B: Backend> {
    spatial: Linear<B>,
    temporal: Linear<B>,
    spatial2: Linear<B>,
    readout: Linear<B>,
}

impl<B: Backend> TemporalGcn<B> {
    /// Weights drawn from `seed` (the same on every device).
    pub fn new(features: usize, steps: usize, hidden: usize, seed: u64, device: &B::Device) -> TemporalGcn<B> {
        let mut rng = Seeded::new(seed);
        TemporalGcn {
            spatial: linear(features, hidden, &mut rng, device),
            temporal: linear(steps * hidden, hidden, &mut rng, device),
            spatial2: linear(hidden, hidden, &mut rng, device),
            readout: linear(hidden, 1, &mut rng, device),
        }
    }
}

impl<B: Backend> Forecaster<B> for TemporalGcn<B> {
    fn forward(&self, x: Tensor<B, 4>, a: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, nodes, steps, features] = x.dims();
        // Â acts on the node dimension only, so one product covers every step.
        let mixed = a.clone().matmul(x.reshape([batch, nodes, steps * features]));
        let per_step = relu(self.spatial.forward(mixed.reshape([batch, nodes, steps, features])));
        let hidden = per_step.dims()[3];
        let over_time = relu(self.temporal.forward(per_step.reshape([batch, nodes, steps * hidden])));
        let neighbours = relu(graph_conv(a, over_time.clone(), &self.spatial2));
        self.readout.forward(over_time + neighbours).reshape([batch, nodes])
    }
}

#[derive(Module, Debug)]
pub struct Logistic<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> Logistic<B> {
    /// Weights drawn from `seed` (the same on every device).
    pub fn new(features: usize, seed: u64, device: &B::Device) -> Logistic<B> {
        Logistic { linear: linear(features, 1, &mut Seeded::new(seed), device) }
    }
}

impl<B: Backend> Forecaster<B> for Logistic<B> {
    fn forward(&self, x: Tensor<B, 4>, _a: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, nodes, steps, features] = x.dims();
        let last = x.slice([0..batch, 0..nodes, steps - 1..steps, 0..features]).reshape([batch, nodes, features]);
        self.linear.forward(last).reshape([batch, nodes])
    }
}

/// Mean binary cross-entropy of `logits` against `labels` (0/1) over the entries where `mask`
/// is 1, computed stably: max(z, 0) − z·y + ln(1 + e^−|z|).
pub fn masked_bce<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 2>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    let per = relu(logits.clone()) - logits.clone() * labels + logits.abs().neg().exp().log1p();
    (per * mask.clone()).sum() / mask.sum().clamp_min(1.0)
}
