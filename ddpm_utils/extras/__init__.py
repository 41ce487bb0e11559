"""What the core chapters do not teach: speed, several processes, other optimisers, loss variants, guidance.

Each piece builds on the core (`ddpm_utils`) from outside: a wrapper around a network (`LowPrecision`,
`Guided`), a subclass of the core `Trainer` whose options change one hook each (`Trainer`, `TrainConfig`),
or a function whose result the caller combines (`min_snr_weights`, `posterior_mean_targets`).
"""

from . import distributed, optim
from .guidance import Guided
from .losses import extended_losses, min_snr_weights, posterior_mean_targets, random_hflip
from .optim import MuonAdamW, muon_parameter_groups, newton_schulz
from .precision import LowPrecision, cpu_computes_bfloat16
from .training import TrainConfig, Trainer
