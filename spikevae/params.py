"""Every setting of the sorter, one dataclass per step, with its default and the reason for it
(the figures are in benchmarks/RESULTS.md). Importing this module loads neither PyTorch nor
scikit-learn, so the command line shows these defaults in ``--help`` at once.

A setting the command line sets is declared once, with ``setting``: its default, its flag,
its help and the values it takes. The CLI's options (``cli.settings_options``) and the
checks that refuse bad values before any work (``SortConfig``) are made from these."""
from __future__ import annotations

from dataclasses import dataclass, field

SHRINKAGE = 0.05  # added to a noise covariance's eigenvalues, × their mean, before whitening
FLOOR_RATIO = 1.25  # curation's floor: a unit's median trough must reach this × the threshold
MIN_TRAIN_SPIKES = 200  # fewer waveforms than this cannot train the β-VAE
MAX_STEPS = 1_000_000   # ~10 h on 2 cores; more is a typo, not a plan
MAX_TRAIN = 50_000_000  # training waveforms held in memory: ~10 GB
NEV_BAND_HZ = (250.0, 5000.0)  # Central's online spike band-pass: a .nev's waveforms are wide-band, so its sort
                               # takes this band's defaults (RESULTS.md, "Sorting a `.nev`")


def setting(default, flag: str, help: str = "", *, check=None, want="", shown: str | None = None,
            on_cli: bool = True, **click):
    """A dataclass field that says how the command line sets it: ``flag``, ``help`` (a template
    filled with its dataclass's defaults; the default is appended, as ``shown`` when given) and
    click's ``type``, ``nargs``, ``metavar``, ``choices`` or ``is_flag``; and which values it takes:
    ``check(value, owner)``, with ``want`` (text, or a function of the owner) naming them in
    the error. ``on_cli=False``: checked, but set by a command's own option or not at all."""
    return field(default=default, metadata={"flag": flag, "help": help, "check": check, "want": want,
                                            "shown": shown, "on_cli": on_cli, "click": click})


def within(lo, hi):
    return lambda v, _: lo <= v <= hi


def at_least(lo):
    """A check for an optional setting: unset (None) or at least ``lo``."""
    return lambda v, _: v is None or v >= lo


def default_contrast(band_hz) -> float:
    """Weight of the β-VAE's contrastive term for the band: on at a narrow band like the default
    250–750 Hz, where the neighbour graph turns the detail it adds into units; off at a wide one,
    where the mixture sorts more units without it (RESULTS.md, "Contrastive term")."""
    return 1000.0 if band_hz[1] <= 1000 else 0.0


def default_steps(features: str, contrast: float) -> int:
    """Training steps for the network of ``features``: without the contrastive term (which only
    ``vae`` has) longer training over-splits; with it 90 steps leave the latent unsettled, each
    initialisation sorting differently, and 180 sort more units at 250–750 Hz (RESULTS.md,
    "Choice of the β-VAE defaults")."""
    return 180 if features == "vae" and contrast else 90


def graph_suits(features: str, contrast: float) -> bool:
    """Whether a neighbour graph can cluster these features: a variational network without the
    contrastive term (vae-plain, or vae with --contrast 0) keeps a code that is nearly one curve
    along amplitude, whose graph is a chain (RESULTS.md, "Neighbour-graph clustering")."""
    return not (features == "vae-plain" or (features == "vae" and not contrast))


def default_clustering(band_hz, features: str, contrast: float) -> str:
    """How each electrode's units are found for the band and features: a narrow band leaves few
    dimensions, which the hash of distant cells fills, and a neighbour graph of the contrastive
    latent (or of PCA, or of a plain auto-encoder's code) keeps units apart from it where Gaussian
    mixtures do not; at a wide band the mixture and the look-alike split find more (RESULTS.md,
    "Neighbour-graph clustering")."""
    return "graph" if band_hz[1] <= 1000 and graph_suits(features, contrast) else "mixture"


def default_threshold(band_hz) -> float:
    """Detection threshold (× robust noise SD) for the band: a narrow band like the default
    250–750 Hz leaves smaller troughs and gains units from a lower one, a wide band loses them
    to noise (RESULTS.md, "Detection threshold per band")."""
    return 3.25 if band_hz[1] <= 1000 else 3.5


@dataclass
class DetectionParams:
    threshold: float | None = setting(   # × robust noise SD; None = default_threshold of the band
        None, "--threshold", "Detection threshold, × robust noise SD. Units whose median trough is under "
        f"{FLOOR_RATIO:g} × the threshold are left unsorted.", type=float, check=lambda v, _: v > 0,
        want="> 0 (× noise SD)", shown=f"{default_threshold((0, 750)):g} for bands up to 1 kHz such as 250–750, "
        f"{default_threshold((0, 7500)):g} for wider ones; both tuned on ground truth")
    polarity: str = setting("neg", "--polarity", choices=("neg", "pos", "both"))
    dead_time_ms: float = setting(1.0, "--dead-time-ms", "Minimum spacing of events on one electrode.", type=float,
                                  check=lambda v, _: v >= 0, want=">= 0")
    n_samples: int = 48
    align_sample: int = setting(11, "--align-sample", "Sample of the {n_samples} on which the trough sits.",
                                type=int, check=lambda v, d: 0 <= v < d.n_samples,
                                want=lambda d: f"within 0..{d.n_samples - 1}")
    artifact_fraction: float = setting(0.5, "--artifact-fraction",
                                       "Reject events seen at once on at least this share of electrodes.",
                                       type=float, check=lambda v, _: 0 < v <= 1, want="in (0, 1]")
    artifact_window_ms: float = 0.5
    cell_reach_um: float = 150.0      # one cell shows on electrodes this close: their coincident events
                                      # are not an artifact, and such electrodes are a dense probe (geometry.py)
    max_amplitude_uv: float = setting(1500.0, "--max-amplitude", "Reject events larger than this (µV).", type=float,
                                      check=lambda v, _: v > 0, want="> 0 µV")
    chunk_s: float = 2.0


@dataclass
class VAEConfig:
    """Every hyperparameter of the network and its training, in one place."""

    n_samples: int = 48        # waveform length; divisible by 8 (three poolings)
    latent_dim: int = setting(8, "--latent-dim", "β-VAE latent size.", type=int,
                              check=lambda v, c: 1 <= v <= c.n_samples, want=lambda c: f"within 1..{c.n_samples}")
    channels: int = 25         # conv filters per layer, as in the workshop network
    hidden: int = 50           # dense layer between conv stack and latent
    beta: float = setting(20.0, "--beta", "Weight of |KL − C|; 0 = plain AE.", type=float,
                          check=lambda v, _: v >= 0, want=">= 0")
    c_max: float = setting(15.0, "--c-max", "Final capacity C in nats.", type=float, check=lambda v, _: v >= 0,
                           want=">= 0 nats")
    anneal_fraction: float = 0.8  # share of the steps over which C rises linearly from 0 to c_max
    contrast: float | None = setting(  # None = default_contrast of the band
        None, "--contrast", "Weight of a contrastive term that teaches the encoder to tell one electrode's spikes "
        "apart, bringing the latent to per-electrode PCA's detail (benchmarks/RESULTS.md, \"Contrastive term\"); "
        "0 = off.", type=float, check=at_least(0), want=">= 0",
        shown="1000 for bands up to 1 kHz such as 250–750, 0 for wider ones; both tuned on ground truth")
    contrast_electrodes: int = 8  # electrodes in each step's contrastive batch
    contrast_spikes: int = 32     # spikes of each; an electrode with fewer sits it out
    contrast_noise: float = 3.0   # SD of the noise each view adds, in its electrode's noise SDs
    contrast_shift: int = 1       # samples each view may move either way: the alignment's own error
    variational: bool = True   # False: z = μ, no KL term (the plain AE)
    steps: int | None = setting(  # optimiser steps, whatever the data size; None = default_steps
        None, "--steps", "Training steps (batches of {batch_size}).", type=int,
        check=lambda v, _: v is None or 1 <= v <= MAX_STEPS, want=f"within 1..{MAX_STEPS}",
        shown="180 with the contrastive term, 90 without; both tuned on ground truth")
    batch_size: int = 512
    lr: float = 1e-3           # Adam; the workshop's 1e-2 destabilised training
    max_train: int = setting(60_000, "--max-train", "Most waveforms used for training (balanced across electrodes).",
                             type=int, check=within(MIN_TRAIN_SPIKES, MAX_TRAIN),
                             want=f"within {MIN_TRAIN_SPIKES}..{MAX_TRAIN}")
    val_fraction: float = 0.1
    whiten: bool = True        # input whitened by its electrode's noise (whitening.py); False: SD units only

    def capacity(self, step: int) -> float:
        """Capacity target at ``step`` (0-based): a linear ramp, then held at ``c_max``."""
        ramp = self.anneal_fraction * self.steps
        return self.c_max if ramp <= 0 else self.c_max * min(1.0, step / ramp)


@dataclass
class ClusterParams:
    method: str | None = setting(  # None = default_clustering of the band and features (SortConfig; alone: mixture)
        None, "--clustering", "How each electrode's spikes are grouped into units: communities of a neighbour "
        "graph of the features, or a Gaussian mixture chosen by BIC.", choices=("graph", "mixture"),
        shown="graph for bands up to 1 kHz such as 250–750, mixture for wider ones and for a variational network "
        "without the contrastive term (vae-plain, --contrast 0); tuned on ground truth")
    max_units: int = 5             # mixture components
    n_dims: int = 5               # best with merging (RESULTS.md, "Merging overlapping mixture components")
    min_spikes: int = 15           # keeps slow units of short files
    min_confidence: float = 0.6    # the unit's posterior (mixture) or share of the spike's neighbours (graph)
    outlier_quantile: float = 0.999
    max_fit: int = 2_000           # spikes that fit one electrode's mixture: more lets BIC over-split long recordings
    merge_overlap: float = 0.25    # 1 = off (RESULTS.md, "Merging overlapping mixture components")
    graph_fit: int = 5_000         # spikes that make one electrode's graph: 2 000 lose small units beside the hash;
                                   # bounded so that communities do not follow the recording's length
    neighbours: int = 15           # each spike's edges in the graph, and the votes that assign it
    resolution: float = 0.1        # Leiden's modularity resolution: lower, fewer and larger communities
    merge_edges: float = 0.05      # communities joined while this share of the smaller's edges runs between them
    join_valley: float = 0.9       # and then while the density between them stays above this share of their
                                   # medians' (clustering.valley_ratio); above 1 = off (RESULTS.md, "Joining
                                   # communities without a valley")


def default_split_ratio(band_hz) -> float:
    """Least ratio of the two pieces' median troughs for the band, for pieces that the shape
    test does not split: a narrow band leaves too little shape to split small look-alikes of
    near-equal trough, a wide one with sub-sample alignment does (RESULTS.md, "Look-alike split")."""
    return 1.2 if band_hz[1] <= 1000 else 1.05


def default_join_valley(band_hz) -> float:
    """Least valley ratio at which two units of near-equal trough are joined as one neuron, for
    the band: off up to 1 kHz, where the graph's communities are already joined where no valley
    lies between them (``ClusterParams.join_valley``) and the pieces of one neuron that stay apart
    are few; 0.95 above, where the mixture cuts cells of broad trough by where the noise puts it
    (RESULTS.md, "Pieces of one neuron joined")."""
    return 2.0 if band_hz[1] <= 1000 else 0.95


@dataclass
class SplitParams:
    min_amplitude_ratio: float | None = None  # None = default_split_ratio of the band
    n_dims: int = 3
    max_overlap: float = 0.25          # shared posterior mass, as clustering's merge_overlap
    min_spikes: int = 15               # as clustering's
    max_units: int = 4                 # pieces one unit may end in
    max_fit: int = 2_000
    shrinkage: float = SHRINKAGE       # added to the noise covariance's eigenvalues, × their mean
    covariance: str = "tied"           # of the two pieces (RESULTS.md, "Look-alike split")
    min_alike_spikes: int | None = 50  # fitted spikes each piece of near-equal trough needs (None: never split)
    min_shape_dprime: float = 1.5      # and their shapes' separation beyond amplitude and alignment
    max_shift: int = 2                 # samples a spike may move either way to match its unit's mean first,
    shift_step: float = 0.25           # in steps of this: whole ones leave a sharp flank up to half a sample off
    join_valley: float | None = None   # two units are joined while the density between them, realigned together,
    join_ratio: float = 0.9            # stays above this share of their medians', if their median troughs
                                       # are at least this share of each other (None: default_join_valley
                                       # of the band; above 1 = off)
    enabled: bool = True


def default_burst_ratio(band_hz) -> float:
    """Least trough of a burst's small cluster, as a share of its unit's, for the band: a narrow
    band's filter rings after a large spike (negative side lobes of up to 26 % at 2–15 ms) and
    its ringing must not join the unit; a wide band's rings under 6 %, so a burst's later spikes,
    down to a third of the first, may (RESULTS.md, "Burst followers")."""
    return 0.4 if band_hz[1] <= 1000 else 0.3


def default_refractory_window(band_hz) -> tuple[float, float]:
    """Distances (ms) at which pairs of two clusters' spikes are counted to tell one cell's
    refractory period: up to 2 ms, the refractory period of the cells simulated, and from the
    detector's dead time, 1 ms, except up to 1 kHz, where one spike's filtered waveform lasts so
    long that two cells' spikes closer than 1.5 ms make one event: there pairs of true units lie
    1.0–1.5 ms apart at 0.0–0.3 of the rate independent cells would have, against 0.8 or more at
    1.5–2 ms (RESULTS.md, "Burst modes joined whole")."""
    return (1.5, 2.0) if band_hz[1] <= 1000 else (1.0, 2.0)


@dataclass
class CurationParams:
    echo_lag_ms: tuple[float, float] = (0.4, 5.0)    # |lag| of a filter echo from its spike
    echo_jitter_ms: float = 0.2        # an echo's spikes lie this close to their one lag
    min_echo_fraction: float = 0.5     # share of the smaller unit's spikes that must be locked so
    max_echo_ratio: float = 0.5        # an echo's median trough, as a share of its spike's
    burst_lag_ms: tuple[float, float] = (2.0, 15.0)   # a follower's delay after the larger spike
    min_follow_fraction: float = 0.08  # share of the small cluster's spikes that must be followers beyond chance
    min_excess_share: float = 0.5      # and share of its followers that must be beyond chance (RESULTS.md,
                                       # "Joining communities without a valley")
    max_follow_p: float = 1e-6         # Poisson chance of that many followers at the larger unit's rate
    min_shape_corr: float = 0.9        # mean waveforms of a merged pair must be this alike
    min_amplitude_ratio: float | None = None  # the smaller's trough, as a share of the larger's
                                       # (None: default_burst_ratio of the band)
    followers_only: bool = True        # of the smaller, only its followers join (RESULTS.md, "Burst followers")
    refractory_ms: tuple[float, float] | None = None  # unless so few pairs of the two lie this
    max_refractory_share: float | None = 0.2  # far apart (None: default_refractory_window of the
    min_refractory_pairs: float = 5.0  # band) that they are one cell: this share of the pairs
                                       # two independent cells would have, with at least this many
                                       # expected; then all of it joins (None: never; RESULTS.md,
                                       # "Burst modes joined whole")
    recovery_ms: float = 100.0         # after this long a silence a cell's spike has its full size, so
    max_recovered_share: float | None = 0.2  # a cluster of its shrunk spikes is at most this share as
    max_recovered_p: float = 1e-3      # often after it as among all, by chance at most this (None: never)
    echo_within_ms: float = 3.0        # unless most of it comes this soon after the larger's: echoes
    echoes_after_join: bool = True     # look for echoes again once the pieces of a unit are joined
    floor_ratio: float = FLOOR_RATIO   # a unit's median trough must reach this × the threshold
                                       # (RESULTS.md, "Curation floor")


def default_mixed_ratio(band_hz) -> float:
    """Least ISI violations ratio of the several-cells noise rule for the band. The hash of
    distant cells at the threshold can show as little as 0.06 up to 1 kHz, but 0.27 and more
    at a wide band, where true units of SNR 5–6 reach 0.15 from the noise events in them
    (RESULTS.md, "Quality labels")."""
    return 0.05 if band_hz[1] <= 1000 else 0.2


@dataclass
class QualityParams:
    """A unit is ``noise`` when any group of ``noise_`` limits holds for it (RESULTS.md,
    "Quality labels"); ``good`` within every ``max_``/``min_`` limit; ``mua`` otherwise."""
    noise_l_ratio: float = 1.0           # L-ratio above: not isolated; for a unit of at least
    noise_large_snr: float = 15.0        # this SNR and
    noise_large_min_spikes: int = 75     # this many spikes (a neuron, however close the
    noise_large_l_ratio: float = 3.0     # electrode's hash comes), above this instead
    noise_presence: float = 0.7          # presence ratio below: fires in part of the recording
    noise_amplitude_cutoff: float = 0.5  # amplitude cut-off at or above, at a rate above
    noise_rate_hz: float = 30.0          # this: hash cut in half by the threshold
    noise_weak_snr: float = 5.0          # SNR below, with an L-ratio above
    noise_weak_l_ratio: float = 0.2      # this: weak and not isolated
    noise_faint_snr: float = 7.0         # SNR below, with an L-ratio above
    noise_faint_l_ratio: float = 0.5     # this and at least (few members make any
    noise_faint_min_spikes: int = 100    # cluster's L-ratio large) this many spikes
    noise_mixed_snr: float = 6.0         # SNR below, with at least this many refractory
    noise_mixed_violations: int = 3      # violations and an isi_violations_ratio above
    noise_mixed_ratio: float | None = None  # this (None: default_mixed_ratio): several cells
    max_l_ratio: float = 0.1
    min_presence: float = 0.9
    max_amplitude_cutoff: float = 0.2
    max_isi_violation: float = 0.01
    presence_bins: int = 20


# fitted by `python benchmarks/tracking.py --fit --family spikevae --seeds 1` (RESULTS.md, "Tracking across sessions")
TRACK_WEIGHTS = {"intercept": 7.98, "latent": -0.597, "shape": -2494.209, "amplitude": -10.931, "isi": 0.071,
                 "rate": -3.361, "gap": 0.397}
TRACK_WAVEFORM_WEIGHTS = {"intercept": 7.537, "shape": -2606.192, "amplitude": -13.089, "isi": -0.258, "rate": -3.206,
                          "gap": 0.348}


@dataclass
class TrackParams:
    """Matching units across sessions (tracking.py); the weights are a logistic model of the
    distances in ``tracking.FEATURES``."""
    max_gap: int = 3                  # sessions a track waits for its neuron to be sorted again
    min_probability: float = 0.5      # least probability of a link
    weights: dict = field(default_factory=lambda: dict(TRACK_WEIGHTS))
    waveform_weights: dict = field(default_factory=lambda: dict(TRACK_WAVEFORM_WEIGHTS))
