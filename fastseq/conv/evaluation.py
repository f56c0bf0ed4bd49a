"""The faces evaluation protocol: which split, which network, which baseline, which measures.

* Split (:func:`split_faces`): a seeded share of the faces is held out, and each face's
  left-right mirror image joins its own part, so no held-out face is seen mirrored in
  training. :func:`split_digits` gives the same record for the embedded MNIST digits.
* Network (:func:`train_autoencoder`): a :class:`~fastseq.conv.model.ConvAutoencoder`
  trained layer by layer, then end to end (faces: at a quarter of the rate; digits:
  :data:`DIGITS_TRAINING`).
* Baseline: PCA with as many components as the network has codes, fitted on the training
  faces; both are scored on the held-out faces. PCA cannot use more components than the
  training set has faces (N centred faces span at most N - 1 directions), so with fewer
  training faces than codes it gets all it can use, and the network has more numbers per
  face than PCA: the 25 x 25 faces' default network (288 codes, 160 training faces) is
  such a case; the digits' (72 codes, 1,200 training digits) is not.
* Measures (:func:`evaluate_faces`), for each code model of the top codes: the held-out
  faces' error up through the network and the model and back down, the held-out codes'
  error through the model over their variance, the held-out log-likelihood of the codes
  where the model offers one, a classifier two-sample test of generated against held-out
  codes (linear, and with squared features) and the spread of the generated codes (its mean,
  and the share of code units within a factor 2 of the real).

Code models join by duck typing, as in :class:`~fastseq.conv.stacked.StackedModel`: this
module never imports a particular one (``fastseq faces`` passes fastseq's Boltzmann machines).
Shapes: ``N`` training and ``M`` held-out faces of ``S x S``; ``D`` codes per face.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch

from fastseq._util.memory import check_fits
from fastseq._util.validate import (bounded_int, finite_float, flag, instance_of, nonnegative_int, one_of,
                                    positive_int, real_array, refuse_non_finite, torch_device)
from fastseq.conv.model import ConvAutoencoder, ConvConfig, default_config
from fastseq.conv.quality import mean_squared_error, pca_reconstruction_error, two_sample_accuracy
from fastseq.conv.stacked import StackedModel
from fastseq.conv.training import LayerReport, fine_tune, train_layerwise

__all__ = ["DIGITS_TRAINING", "CodeModelScores", "FaceSplit", "FacesEvaluation", "evaluate_faces", "split_digits",
           "split_faces", "train_autoencoder"]

_CODE_MODEL_METHODS = ("fit", "transform", "inverse_transform", "gibbs", "sample")

#: :func:`train_autoencoder` settings for the digits' network (``default_config(28, "digits")``):
#: short layer-wise training, then long end-to-end training at the full rate. On 1,200
#: digits the network's error fell from 2.0x PCA's (8 epochs per layer, 4 end to end at a
#: quarter of the rate) to 0.66x (these), in about 20 s of one CPU thread; see docs/guide/faces.md.
DIGITS_TRAINING: Mapping[str, int | float] = MappingProxyType(
    {"epochs": 4, "fine_tune_epochs": 40, "fine_tune_rate": 1.0})


@dataclass(frozen=True, eq=False)
class FaceSplit:
    """Training and held-out faces.

    Attributes:
        train: ``N x S x S`` faces to train on.
        test: ``M x S x S`` held-out faces, never trained on.
        people_train: ``N`` names (or labels) of the training faces.
        people_test: ``M`` names of the held-out faces.
    """

    train: np.ndarray
    test: np.ndarray
    people_train: np.ndarray
    people_test: np.ndarray


@dataclass(frozen=True, eq=False)
class CodeModelScores:
    """How one code model describes the held-out faces' codes.

    Attributes:
        seconds: time to fit the code model (and the scaler of its codes).
        image_mse: mean squared error of the held-out faces up through the network and the
            code model (mean field) and back down.
        code_mse_relative: mean squared error of the held-out codes through the code model
            and back, over the codes' variance.
        log_likelihood: what the code model's ``held_out_log_likelihood(train, test)``
            returned (``log_likelihood``: mean nats per face in the model's space), plus
            ``log_likelihood_codes``, the density of the codes themselves (comparable across
            scalings); None for a code model without one, or that returned None.
        generate_seconds: time to generate ``max(M, 64)`` codes.
        two_sample_accuracy: cross-validated accuracy of a logistic regression telling the
            generated codes from the held-out ones (0.5: indistinguishable).
        two_sample_accuracy_quadratic: the same with squared features (sees the spread).
        generated_spread: mean standard deviation of the generated codes over that of the
            held-out codes.
        generated_spread_within_2x: share of the code units whose generated standard
            deviation is within a factor 2 of the held-out codes' (1: every unit's spread is
            right to a factor 2, which a right mean spread alone does not say).
    """

    seconds: float
    image_mse: float
    code_mse_relative: float
    log_likelihood: dict[str, float] | None
    generate_seconds: float
    two_sample_accuracy: float
    two_sample_accuracy_quadratic: float
    generated_spread: float
    generated_spread_within_2x: float


@dataclass(frozen=True, eq=False)
class FacesEvaluation:
    """What :func:`evaluate_faces` measured, and the models it measured.

    Attributes:
        autoencoder: the network (trained here, or the one given).
        training: one :class:`~fastseq.conv.training.LayerReport` per trained layer and one
            (layer 0) for fine-tuning; empty when the network was given.
        cnn_mse: the network's held-out reconstruction error.
        pca_mse: PCA's held-out reconstruction error.
        pca_components: components PCA used (the code size, or fewer if the training set is smaller).
        scores: a :class:`CodeModelScores` per code model, in the order given.
        stacked: each code model on the network (a fitted :class:`~fastseq.conv.stacked.StackedModel`).
        generated_codes: the codes each code model generated for the two-sample test, ``max(M, 64) x D``.
    """

    autoencoder: ConvAutoencoder
    training: list[LayerReport]
    cnn_mse: float
    pca_mse: float
    pca_components: int
    scores: dict[str, CodeModelScores]
    stacked: dict[str, StackedModel] = field(repr=False)
    generated_codes: dict[str, np.ndarray] = field(repr=False)

    @property
    def code_size(self) -> int:
        """D, the network's codes per face."""
        return self.autoencoder.config.code_size

    @property
    def pca_over_cnn(self) -> float:
        """PCA's error over the network's: above 1 the network beats PCA."""
        return self.pca_mse / self.cnn_mse

    @property
    def best_two_sample(self) -> str:
        """The code model whose two-sample accuracy with squared features is nearest 0.5."""
        return min(self.scores, key=lambda n: abs(self.scores[n].two_sample_accuracy_quadratic - 0.5))


def _faces(name: str, images, at_least: int) -> np.ndarray:
    arr = real_array(name, images, ndim=(3,), allow_empty=True)
    if arr.shape[0] < at_least or 0 in arr.shape[1:]:
        raise ValueError(f"Expected {name} to be N x H x W faces with N >= {at_least} and H, W >= 1, "
                         f"got shape {arr.shape}.")
    refuse_non_finite(name, arr)
    return arr


def _unit_share(name: str, value) -> float:
    share = finite_float(name, value, 0.0, 1.0)
    if share in (0.0, 1.0):
        raise ValueError(f"Expected {name} to be a share in (0, 1), got {value!r}.")
    return share


def split_faces(images, people, held_out: float = 0.2, mirror: bool = True, seed: int = 0) -> FaceSplit:
    """Hold out a seeded share of the faces; each face's mirror image joins its own part.

    ``round(N * held_out)`` faces (at least 1, at most ``N - 1``) are held out; with
    ``mirror`` both parts then gain the left-right mirror images of their faces (after the
    originals), so a held-out face is never seen mirrored in training.

    Args:
        images: ``N x S x S`` faces, ``N >= 2``.
        people: ``N`` names of the faces (any 1-D array).
        held_out: share of the faces held out, in (0, 1).
        mirror: add the mirror images.
        seed: seed of the split (an integer >= 0).

    Example:
        >>> faces = np.arange(10 * 2 * 2, dtype=np.float32).reshape(10, 2, 2)
        >>> s = split_faces(faces, np.array(list("abcdefghij")), held_out=0.3, seed=0)
        >>> s.train.shape, s.test.shape, s.people_test.tolist() == 2 * sorted(s.people_test[:3].tolist())
        ((14, 2, 2), (6, 2, 2), True)
    """
    images = _faces("images", images, 2)
    try:
        people = np.asarray(people)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"Expected people to hold one name per image of images ({images.shape[0]}), got a "
                         f"ragged {type(people).__name__}: {exc}") from None
    if people.shape != images.shape[:1]:
        raise ValueError(f"Expected people to hold one name per image of images ({images.shape[0]}), got shape "
                         f"{people.shape}.")
    held_out, mirror = _unit_share("held_out", held_out), flag("mirror", mirror)
    rng = np.random.default_rng(bounded_int("seed", seed, low=0))
    order = rng.permutation(len(images))
    n_test = min(len(images) - 1, max(1, int(round(len(images) * held_out))))
    te, tr = np.sort(order[:n_test]), np.sort(order[n_test:])
    parts = [images[tr], images[te]]
    names = [people[tr], people[te]]
    if mirror:
        parts = [np.concatenate([x, x[:, :, ::-1]]) for x in parts]
        names = [np.concatenate([p, p]) for p in names]
    return FaceSplit(np.ascontiguousarray(parts[0]), np.ascontiguousarray(parts[1]), names[0], names[1])


def split_digits(digits, limit: int = 1500, held_out: float = 0.2, size: int | None = None,
                 seed: int = 0) -> FaceSplit:
    """The MNIST digits as the faces protocol uses them: ``limit`` digits, resized and normalised.

    ``round(limit * held_out)`` (at least 1) seeded digits come from MNIST's held-out set and
    the rest of ``limit`` from its training set (the embedded digits are stored sorted by
    class, hence a seeded subset, not the first ones); both are resized to ``size x size``
    (default 28, unchanged) and normalised like faces
    (:func:`~fastseq.datasets.faces.normalise_faces`). The labels, as text, are the names.

    Args:
        digits: a :class:`~fastseq.datasets.mnist.Digits` record (``load_mnist()``).
        limit: digits in all.
        held_out: share of them held out, in (0, 1).
        size: side of the digits in pixels.
        seed: seed of the subsets (an integer >= 0).
    """
    from fastseq.datasets.faces import normalise_faces
    from fastseq.datasets.mnist import Digits

    instance_of("digits", digits, Digits, "a Digits record (fastseq.datasets.load_mnist())")
    limit, held_out = positive_int("limit", limit), _unit_share("held_out", held_out)
    if size is not None:
        size = positive_int("size", size)
    rng = np.random.default_rng(bounded_int("seed", seed, low=0))
    n_test = max(1, int(round(limit * held_out)))
    i = np.sort(rng.permutation(len(digits.train_images))[:max(1, limit - n_test)])
    j = np.sort(rng.permutation(len(digits.test_images))[:n_test])
    tr, te = digits.train_images[i], digits.test_images[j]
    if size not in (None, 28):
        from skimage.transform import resize

        check_fits(f"size={size}", 8.0 * (len(i) + len(j)) * size * size)  # the resized digits, float64
        tr, te = (resize(x, (len(x), size, size), anti_aliasing=True) for x in (tr, te))
    return FaceSplit(normalise_faces(tr), normalise_faces(te), digits.train_labels[i].astype(str),
                     digits.test_labels[j].astype(str))


def _say(log: Callable[[str], object] | None, text: str) -> None:
    if log is not None:
        log(text)


def _training_settings(epochs, fine_tune_epochs, learning_rate, fine_tune_rate, batch_size, device, progress,
                       log) -> tuple:
    if log is not None and not callable(log):
        raise TypeError(f"Expected log to be a function of one line of text, or None, got {type(log).__name__}.")
    rate = finite_float("learning_rate", learning_rate)
    if rate <= 0:
        raise ValueError(f"Expected learning_rate to be a finite number > 0, got {learning_rate!r}.")
    share = finite_float("fine_tune_rate", fine_tune_rate)
    if share <= 0:
        raise ValueError(f"Expected fine_tune_rate to be a finite number > 0, got {fine_tune_rate!r}.")
    device = torch_device("device", device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Expected device to be one this machine has, got {device} (no CUDA device here).")
    return (nonnegative_int("epochs", epochs), nonnegative_int("fine_tune_epochs", fine_tune_epochs), rate, share,
            positive_int("batch_size", batch_size), device, flag("progress", progress))


def train_autoencoder(images, config: ConvConfig | None = None, *, epochs: int = 20, fine_tune_epochs: int = 20,
                      learning_rate: float = 2e-3, fine_tune_rate: float = 0.25, batch_size: int = 16, seed: int = 0,
                      device="cpu", progress: bool = False,
                      log: Callable[[str], object] | None = None) -> tuple[ConvAutoencoder, list[LayerReport]]:
    """The protocol's network: each layer trained in turn, then all of them end to end.

    A ``ConvAutoencoder(config, seed=seed)`` is trained by
    :func:`~fastseq.conv.training.train_layerwise` for ``epochs`` per layer, then by
    :func:`~fastseq.conv.training.fine_tune` for ``fine_tune_epochs`` at ``fine_tune_rate``
    times ``learning_rate`` (0 epochs skips a stage). The defaults are the faces'; the
    digits' are :data:`DIGITS_TRAINING` (``train_autoencoder(x, config, **DIGITS_TRAINING)``).

    Args:
        images: ``N x S x S`` training faces.
        config: the network's shape (default :func:`~fastseq.conv.model.default_config` (S)).
        epochs: Adam epochs per layer.
        fine_tune_epochs: end-to-end epochs after the layers.
        learning_rate: Adam step size of the layers.
        fine_tune_rate: Adam step size of the fine-tuning, as a share of ``learning_rate``.
        batch_size: faces per step.
        seed: seed of the weights and of the mini-batch order.
        device: where the network trains.
        progress: tqdm bars.
        log: called with one line of text per trained layer and for the fine-tuning.

    Returns:
        The network (in eval mode) and its reports: one per layer, then the fine-tuning's
        (layer 0).

    Example:
        >>> x = np.random.default_rng(0).uniform(-0.5, 0.5, (8, 8, 8)).astype(np.float32)
        >>> net, reports = train_autoencoder(x, ConvConfig(8, (2,), (2,)), epochs=2, fine_tune_epochs=1)
        >>> [r.layer for r in reports], net.config.code_size
        ([1, 0], 32)
    """
    images = _faces("images", images, 1)
    epochs, ft_epochs, rate, ft_share, batch_size, device, progress = _training_settings(
        epochs, fine_tune_epochs, learning_rate, fine_tune_rate, batch_size, device, progress, log)
    seed = bounded_int("seed", seed, low=0)
    if images.shape[1] != images.shape[2]:  # the network takes S x S inputs, trained or not (epochs=0)
        raise ValueError(f"Expected square images, N x S x S, got shape {images.shape}.")
    if config is None:
        try:
            config = default_config(images.shape[1])
        except ValueError as exc:
            raise ValueError(f"Expected images of a size default_config takes, got shape {images.shape} ({exc}).") from None
    elif instance_of("config", config, ConvConfig).size != images.shape[1]:
        raise ValueError(f"Expected config for the images' size, got one for {config.size} x {config.size} and "
                         f"images of shape {images.shape}.")
    model = ConvAutoencoder(config, seed=seed).to(device)
    reports: list[LayerReport] = []
    if epochs:
        for rep in train_layerwise(model, images, epochs=epochs, batch_size=batch_size, learning_rate=rate,
                                   seed=seed, progress=progress):
            reports.append(rep)
            _say(log, f"CNN layer {rep.layer}: reconstruction error {rep.error_before:.5f} -> {rep.error_after:.5f} "
                      f"({rep.images_per_second:,.0f} images/s)")
    if ft_epochs:
        rep = fine_tune(model, images, epochs=ft_epochs, batch_size=batch_size, learning_rate=rate * ft_share, seed=seed,
                        progress=progress)
        reports.append(rep)
        _say(log, f"CNN fine-tuning: reconstruction error {rep.error_before:.5f} -> {rep.error_after:.5f}")
    model.eval()
    return model, reports


def _check_code_models(code_models) -> dict:
    if not isinstance(code_models, Mapping) or not code_models:
        raise TypeError(f"Expected code_models to be a non-empty mapping of names to code models, "
                        f"got {type(code_models).__name__}{' (empty)' if isinstance(code_models, Mapping) else ''}.")
    for name, model in code_models.items():
        if not isinstance(name, str):
            raise TypeError(f"Expected code_models to be keyed by names (str), got {type(name).__name__} {name!r}.")
        missing = [m for m in _CODE_MODEL_METHODS if not callable(getattr(model, m, None))]
        if missing:
            raise TypeError(f"Expected code_models[{name!r}] to have the methods of CodeModel, got "
                            f"{type(model).__name__} without {', '.join(missing)}.")
        one_of(f"code_models[{name!r}].scaling", getattr(model, "scaling", "unit"), ("unit", "standard"))
    return dict(code_models)


def _share_within(spread: np.ndarray, reference: np.ndarray, factor: float) -> float:
    """Share of the units whose ``spread`` is within ``factor`` of ``reference`` (both per unit)."""
    ref = np.maximum(reference, 1e-12)
    return float(np.mean((spread >= ref / factor) & (spread <= ref * factor)))


def _measure(code_model, autoencoder: ConvAutoencoder, test: np.ndarray, ctr: np.ndarray, cte: np.ndarray,
             gibbs_steps: int, seed: int) -> tuple[StackedModel, np.ndarray, CodeModelScores]:
    """Fit one code model on the training codes and measure it on the held-out faces."""
    stacked = StackedModel(autoencoder, code_model, scaling=getattr(code_model, "scaling", "unit"))
    start = time.perf_counter()
    stacked.fit(codes=ctr)
    seconds = time.perf_counter() - start
    code_var = float(np.var(cte))
    image_mse = mean_squared_error(stacked.autoencode(test), test)
    code_mse = mean_squared_error(stacked.through_machine(cte), cte) / code_var
    likelihood = None
    measure = getattr(code_model, "held_out_log_likelihood", None)
    if callable(measure):
        likelihood = measure(stacked.scaler.transform(ctr), stacked.scaler.transform(cte))
    if likelihood is not None:
        # the density of the codes themselves: comparable across code models whatever their scaling
        likelihood = dict(likelihood)
        likelihood["log_likelihood_codes"] = likelihood["log_likelihood"] + stacked.scaler.log_det
    start = time.perf_counter()
    generated = stacked.generate_codes(max(len(cte), 64), gibbs_steps, seed=seed)
    generate_seconds = time.perf_counter() - start
    folds = min(5, len(cte))
    scores = CodeModelScores(
        seconds=seconds, image_mse=image_mse, code_mse_relative=code_mse, log_likelihood=likelihood,
        generate_seconds=generate_seconds,
        two_sample_accuracy=two_sample_accuracy(cte, generated, folds=folds, seed=seed),
        two_sample_accuracy_quadratic=two_sample_accuracy(cte, generated, folds=folds, seed=seed, quadratic=True),
        generated_spread=float(generated.std(0).mean() / max(cte.std(0).mean(), 1e-12)),
        generated_spread_within_2x=_share_within(generated.std(0), cte.std(0), 2.0))
    return stacked, generated, scores


def evaluate_faces(train, test, code_models: Mapping[str, object], *, autoencoder: ConvAutoencoder | None = None,
                   config: ConvConfig | None = None, epochs: int = 20, fine_tune_epochs: int = 20,
                   learning_rate: float = 2e-3, fine_tune_rate: float = 0.25, batch_size: int = 16,
                   gibbs_steps: int = 1000, seed: int = 0, device="cpu", progress: bool = False,
                   log: Callable[[str], object] | None = None) -> FacesEvaluation:
    """Run the faces protocol: the network against PCA, then each code model of its codes.

    Without ``autoencoder`` the network is trained first (:func:`train_autoencoder` with
    ``config``, ``epochs``, ``fine_tune_epochs``, ``learning_rate``, ``fine_tune_rate``,
    ``batch_size``, ``seed``, ``device``). Its held-out reconstruction error is compared with
    PCA's at the same code size (or as many components as ``train`` allows, see
    :func:`~fastseq.conv.quality.pca_reconstruction_error`), fitted on ``train``. Then each code model is fitted (in place) on the
    training faces' codes, mapped by a :class:`~fastseq.conv.stacked.CodeScaler` of the
    kind its ``scaling`` attribute names (``"unit"`` when it has none), and scored (see
    :class:`CodeModelScores`). A code model with a ``held_out_log_likelihood(train, test)``
    method (scaled training and held-out codes in, a dict with ``log_likelihood`` or None
    out) gets the likelihood measure.

    Args:
        train: ``N x S x S`` training faces (``N >= 2``).
        test: ``M x S x S`` held-out faces (``M >= 2``).
        code_models: names to :class:`~fastseq.conv.stacked.CodeModel` objects.
        autoencoder: a trained network for ``S x S`` faces (put in eval mode), instead of training one.
        config, epochs, fine_tune_epochs, learning_rate, fine_tune_rate, batch_size, device: training settings
            (see :func:`train_autoencoder`), used only without ``autoencoder``.
        gibbs_steps: Gibbs steps of each generated code.
        seed: seed of the network, the generated codes' chain starts and the two-sample
            folds (an integer in [0, 2**32 - 1]).
        progress: tqdm bars while the network trains.
        log: called with one line of text per result as it comes (layers, network against
            PCA, each code model).

    Example:
        >>> class Mean:   # the smallest code model: the training mean, whatever the input
        ...     def fit(self, X, y=None): self.m = X.mean(0); return self
        ...     def transform(self, X): return np.zeros((len(X), 1))
        ...     def inverse_transform(self, H): return np.repeat(self.m[None], len(H), 0)
        ...     def gibbs(self, v): return self.inverse_transform(v)
        ...     def sample(self, n_samples=1, n_steps=1, start=None): return self.inverse_transform(np.zeros((n_samples, 1)))
        >>> x = np.random.default_rng(0).uniform(-0.5, 0.5, (24, 8, 8)).astype(np.float32)
        >>> r = evaluate_faces(x[:16], x[16:], {"mean": Mean()}, config=ConvConfig(8, (2,), (2,)), epochs=1,
        ...                    fine_tune_epochs=1, gibbs_steps=1)
        >>> r.pca_components, round(r.scores["mean"].generated_spread, 3), r.best_two_sample
        (16, 0.0, 'mean')
    """
    # two of each at least: the scaler needs a spread, the two-sample test two folds
    train, test = _faces("train", train, 2), _faces("test", test, 2)
    if train.shape[1:] != test.shape[1:] or train.shape[1] != train.shape[2]:
        raise ValueError(f"Expected train and test to hold square faces of one size, got shapes {train.shape} "
                         f"and {test.shape}.")
    code_models = _check_code_models(code_models)
    gibbs_steps = positive_int("gibbs_steps", gibbs_steps)
    seed = bounded_int("seed", seed, 0, 2**32 - 1)  # scikit-learn's range, for the two-sample folds
    settings = (epochs, fine_tune_epochs, learning_rate, fine_tune_rate, batch_size, device, progress, log)
    _training_settings(*settings)
    if autoencoder is None:
        autoencoder, training = train_autoencoder(
            train, config, epochs=epochs, fine_tune_epochs=fine_tune_epochs, learning_rate=learning_rate,
            fine_tune_rate=fine_tune_rate, batch_size=batch_size, seed=seed, device=device, progress=progress,
            log=log)
    else:
        instance_of("autoencoder", autoencoder, ConvAutoencoder)
        if config is not None:
            raise ValueError("Expected config only without autoencoder (it shapes a network to train), got both.")
        if autoencoder.config.size != train.shape[1]:
            raise ValueError(f"Expected autoencoder to take the {train.shape[1]} x {train.shape[1]} faces of train "
                             f"and test, got one for {autoencoder.config.size} x {autoencoder.config.size} faces.")
        training = []
    autoencoder.eval()
    cnn_mse = mean_squared_error(autoencoder.reconstruct(test), test)
    pca_mse, k = pca_reconstruction_error(train, test, autoencoder.config.code_size)
    verdict = "beats" if cnn_mse < pca_mse else "does NOT beat"
    _say(log, f"held-out reconstruction error: CNN ({autoencoder.config.code_size} codes) {cnn_mse:.5f}, PCA ({k} "
              f"components) {pca_mse:.5f}: the CNN {verdict} PCA ({pca_mse / cnn_mse:.2f}x)")
    ctr, cte = autoencoder.encode(train), autoencoder.encode(test)
    scores, stacked, generated = {}, {}, {}
    for name, code_model in code_models.items():
        stacked[name], generated[name], s = _measure(code_model, autoencoder, test, ctr, cte, gibbs_steps, seed)
        scores[name] = s
        ll = None if s.log_likelihood is None else s.log_likelihood["log_likelihood_codes"]
        _say(log, f"{name}: image error through the machine {s.image_mse:.5f}, code error "
                  f"{s.code_mse_relative:.3f} of the variance, held-out log-likelihood "
                  f"{'n/a (no energy)' if ll is None else f'{ll:.1f} nats'}, two-sample accuracy "
                  f"{s.two_sample_accuracy:.3f} (with squares {s.two_sample_accuracy_quadratic:.3f}), "
                  f"spread of generated codes {s.generated_spread:.2f} of the real "
                  f"({s.generated_spread_within_2x:.0%} of the units within 2x)")
    return FacesEvaluation(autoencoder, training, cnn_mse, pca_mse, k, scores, stacked, generated)
