"""ddpm_utils: the tested implementations that the ddpm-from-scratch notebooks build up to."""

from . import conditional, exercises, extras, learned_variance, levels, metrics, plotting
from ._requirements import MIN_TORCH  # refuses an older PyTorch
from .analytic import GaussianData, GaussianMixture
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .data import DIGITS_LEVELS, from_model_range, load_digits, load_toy, to_model_range
from .elbo import (
    bits_per_dim,
    decoder_nll,
    discretized_gaussian_log_likelihood,
    eps_mse_weights,
    kl_term,
    loss_simple,
    nll_bound,
    normal_kl,
    prior_kl,
    vb_term,
)
from .forward import (
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
    q_step_sample,
    score_from_eps,
    v_from_eps,
    x0_from_eps,
    x0_from_v,
)
from .pretrained import load_pretrained
from .reverse import eps_and_x0_from_output, model_log_variance, p_mean_variance
from .sampling import ddim_invert, ddim_sample, ddpm_sample, dpm_solver_sample
from .schedules import Schedule, cosine_betas, gather, linear_betas, make_schedule, scaled_linear_betas
from .training import TrainConfig, Trainer, training_losses
from .unet import DDPM_CIFAR10, DIGITS, MLPDenoiser, UNet, UNetConfig, timestep_embedding

__version__ = "0.1.0"
